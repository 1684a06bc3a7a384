/**
 * One member slot as the cluster client sees it: its state (up, down, repairing, removed), its
 * transport, the requests it has outstanding against its capacity, and its counters; and how
 * an answer becomes a result or a thrown refusal.
 *
 * @module
 */
import { HsmError, type Response, type Results } from '../hsm-core/face.js';
import type { Transport } from './transport.js';

export type MemberState = 'up' | 'down' | 'repairing' | 'removed';

export interface MemberStatus {
  index: number;
  description: string;
  state: MemberState;
  /** Requests sent and not yet answered. */
  outstanding: number;
  /** The member's queue limit: what load balancing divides by. */
  capacity: number;
  /** Since the cluster handle was opened. */
  counters: { requests: number; busy: number; retries: number; failovers: number; downs: number; repairs: number };
  /** Why it is down, when it is. */
  reason: string | null;
}

/** How to reach one member slot: returns a live transport (connects, or starts a new member). */
export type MemberStarter = () => Promise<Transport>;

/** The result of an answer, or its refusal thrown as an HsmError. */
export function resultOf<O extends keyof Results>(response: Response): Results[O] {
  if (!response.ok) throw HsmError.fromWire(response.error);
  return response.result as Results[O];
}

export class MemberLink {
  readonly index: number;
  state: MemberState = 'down';
  transport: Transport | null = null;
  outstanding = 0;
  capacity = 1;
  reason: string | null = 'not started';
  /** Bumped whenever the member's sessions are gone (restart, repair): sessions must log in again. */
  epoch = 0;
  /** While repairing: it holds the cluster's state and takes changes, but not yet reads. */
  accepting = false;
  readonly counters = { requests: 0, busy: 0, retries: 0, failovers: 0, downs: 0, repairs: 0 };
  readonly start: MemberStarter;
  description: string;

  constructor(index: number, start: MemberStarter, description: string) {
    this.index = index;
    this.start = start;
    this.description = description;
  }
}
