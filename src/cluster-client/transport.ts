/**
 * How a client reaches a member. A transport carries plain protocol requests and answers; it
 * never interprets them. In-process is the first; worker and mutual-TLS transports follow the
 * same interface.
 *
 * @module
 */
import type { Member, Response } from '../hsm-core/index.js';

export interface Transport {
  /** A short description for messages and observability, e.g. `in-process member 0`. */
  readonly description: string;
  send(request: unknown): Promise<Response>;
  close(): Promise<void>;
}

/** A member in this process: requests are passed as they are, with no copy or encoding. */
export class InProcessTransport implements Transport {
  readonly description: string;
  readonly #member: Member;

  constructor(member: Member, index = 0) {
    this.#member = member;
    this.description = `in-process member ${index}`;
  }

  send(request: unknown): Promise<Response> {
    return this.#member.handle(request);
  }

  async close(): Promise<void> {
    this.#member.close();
  }
}
