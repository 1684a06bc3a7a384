/**
 * `strongroom/browser`: the HSM from a web page, through a Strongroom relay.
 *
 * `await connectRelay(url, { username, password })` opens a WebSocket to the relay, agrees on a
 * protocol version, logs in and returns a standard `Crypto`: its `subtle` is the same WebCrypto
 * door as `session.crypto` in Node (the same code, bundled), so every method, algorithm,
 * `CryptoKey` handle and `DOMException` name behaves as it does there. Keys stay in the HSM; the
 * page holds handles.
 *
 * @example
 * ```js
 * import { connectRelay } from '/strongroom-browser.js';
 * const hsm = await connectRelay('ws://127.0.0.1:8787/ws', { username: 'app', password: 'strongroom-app' });
 * const key = await hsm.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
 * ```
 *
 * @module
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { HsmError, perTurn, withField, type KeyInfo, type Results, type UserRole } from '../hsm-core/face.js';
import { HsmSession } from '../app/session.js';
import type { SessionChannel } from '../cluster-client/channel.js';
import type { HsmCrypto } from '../subtle/crypto.js';
import { RELAY_BATCH_MAX, RELAY_BATCH_VERSION, RELAY_PROTOCOL_VERSIONS, type RelayAnswer, type RelayCapabilities } from '../relay/protocol.js';

/** The WebSocket constructor to use: the browser's, or (in Node) the `ws` package's. */
export type WebSocketConstructor = new (url: string) => WebSocket;

export interface RelayOptions {
  /** Default: `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** `crypto-user` (default) or `admin` (the audit log). */
  role?: 'crypto-user' | 'admin';
  /** Protocol versions to offer (for tests of version skew). Default: this build's. */
  versions?: number[];
}

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

const encoder = new Encoder();
const decoder = new Decoder();

/**
 * Schedules a function in a later turn of the event loop, after the current one's promise jobs:
 * Node's setImmediate, or in a page a MessageChannel message (setTimeout would wait a clamped
 * delay). One at a time, as {@link perTurn} asks.
 */
function nextTurn(): (end: () => void) => void {
  if (typeof setImmediate === 'function') return (end) => void setImmediate(end);
  const channel = new MessageChannel();
  let waiting: (() => void) | null = null;
  (channel.port1 as unknown as { onmessage: () => void }).onmessage = () => waiting!();
  return (end) => {
    waiting = end;
    channel.port2.postMessage(null);
  };
}

/** One WebSocket to the relay: request ids, answers, and a clear error when it closes. */
class RelayLink {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #closedWith: HsmError | null = null;
  /** Under protocol version 2, the messages made in one turn, sent together when it ends. */
  readonly #sendBatched = perTurn<Record<string, unknown>>((batch) => {
    if (!this.#closedWith) this.#send(batch);
  }, nextTurn(), RELAY_BATCH_MAX);
  #batching = false;
  #maxMessageBytes = Infinity;

  constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', (event: MessageEvent) => {
      let decoded: unknown;
      try {
        decoded = decoder.decode(new Uint8Array(event.data as ArrayBuffer));
      } catch {
        return;
      }
      for (const answer of (Array.isArray(decoded) ? decoded : [decoded]) as RelayAnswer[]) this.#settle(answer);
    });
    ws.addEventListener('close', (event: { code: number; reason: string }) => {
      this.#closedWith = new HsmError('MEMBER_UNAVAILABLE', `the relay connection closed${event.reason ? `: ${event.reason}` : ` (code ${event.code})`}`);
      for (const w of this.#pending.values()) w.reject(this.#closedWith);
      this.#pending.clear();
    });
  }

  /** Sends later messages in batches of at most `maxMessageBytes` when the relay agreed on a version that takes them. */
  useVersion(version: number, maxMessageBytes: number): void {
    this.#batching = version >= RELAY_BATCH_VERSION;
    this.#maxMessageBytes = maxMessageBytes;
  }

  call(message: Record<string, unknown>): Promise<unknown> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const full = withField(message, 'id', id);
      if (this.#batching) this.#sendBatched(full);
      else this.#ws.send(encoder.encode(full));
    });
  }

  close(): void {
    this.#ws.close(1000, 'logout');
  }

  /** Sends a batch, halved until each part fits the relay's message limit (a lone message goes as it is). */
  #send(batch: Record<string, unknown>[]): void {
    const bytes = encoder.encode(batch.length === 1 ? batch[0] : batch);
    if (bytes.byteLength <= this.#maxMessageBytes || batch.length === 1) return this.#ws.send(bytes);
    const half = batch.length >> 1;
    this.#send(batch.slice(0, half));
    this.#send(batch.slice(half));
  }

  #settle(answer: RelayAnswer): void {
    const waiter = this.#pending.get(answer?.id);
    if (!waiter) return;
    this.#pending.delete(answer.id);
    if (answer.ok) waiter.resolve(answer.result);
    else waiter.reject(new HsmError(answer.error.code as never, answer.error.message));
  }
}

/** A session whose requests travel through the relay. */
class RelayChannel implements SessionChannel {
  constructor(
    readonly link: RelayLink,
    readonly username: string,
    readonly role: UserRole,
  ) {}

  send(request: Record<string, unknown> & { op: string }): Promise<unknown> {
    return this.link.call({ type: 'request', request });
  }

  sendToMember(): Promise<unknown> {
    return Promise.reject(new HsmError('BAD_REQUEST', 'the relay chooses the member; per-member requests are not offered to pages'));
  }

  everyMember(): Promise<unknown[]> {
    return Promise.reject(new HsmError('BAD_REQUEST', 'the relay chooses the member; per-member requests are not offered to pages'));
  }

  async logout(): Promise<void> {
    try {
      await this.link.call({ type: 'logout' });
    } finally {
      this.link.close();
    }
  }
}

/** A page's connection to the HSM through a relay. */
export class RelayConnection {
  readonly #session: HsmSession;
  readonly #link: RelayLink;

  /** @internal */
  constructor(session: HsmSession, link: RelayLink, readonly capabilities: RelayCapabilities, readonly protocolVersion: number) {
    this.#session = session;
    this.#link = link;
  }

  /** A standard `Crypto` whose keys live in the HSM. */
  get crypto(): HsmCrypto {
    return this.#session.crypto;
  }

  get username(): string {
    return this.#session.username;
  }

  get role(): UserRole {
    return this.#session.role;
  }

  /** One member request (see the relay's capabilities for which). */
  send<O extends keyof Results>(request: Record<string, unknown> & { op: O }): Promise<Results[O]> {
    return this.#session.send(request as never) as Promise<Results[O]>;
  }

  /** The keys the user can see, with their CloudHSM attributes and cluster coverage. */
  listKeys(request: Record<string, unknown> = {}): Promise<{ keys: (KeyInfo & { clusterCoverage: string })[]; nextToken: string | null }> {
    return this.#link.call({ type: 'listKeys', request }) as Promise<{ keys: (KeyInfo & { clusterCoverage: string })[]; nextToken: string | null }>;
  }

  /** Has the relay's CA (its key in the HSM) sign a PKCS #10 request; PEM certificate and chain. */
  issueCertificate(csr: Uint8Array | string): Promise<{ certificate: string; chain: string[] }> {
    return this.#link.call({ type: 'issueCertificate', csr }) as Promise<{ certificate: string; chain: string[] }>;
  }

  /** Logs out; the session keys of this connection are destroyed. */
  logout(): Promise<void> {
    return this.#session.logout();
  }
}

/**
 * Connects to a relay and logs in. Refused with an `HsmError` whose message says why: a relay
 * that speaks no common protocol version, a wrong password, a closed connection.
 */
export async function connectRelay(url: string, credentials: { username: string; password: string }, options: RelayOptions = {}): Promise<RelayConnection> {
  const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Socket) throw new HsmError('BAD_REQUEST', 'no WebSocket here: pass options.WebSocket (in Node, the ws package)');
  const ws = new Socket(url);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new HsmError('MEMBER_UNAVAILABLE', `cannot open a WebSocket to ${url} (is the relay running, and does it allow this page's origin?)`)), { once: true });
  });
  const link = new RelayLink(ws);
  try {
    const hello = (await link.call({ type: 'hello', versions: options.versions ?? [...RELAY_PROTOCOL_VERSIONS] })) as { version: number };
    const capabilities = (await link.call({ type: 'capabilities' })) as RelayCapabilities;
    link.useVersion(hello.version, capabilities.limits.maxMessageBytes);
    const who = (await link.call({ type: 'login', username: credentials.username, password: credentials.password, role: options.role ?? 'crypto-user' })) as { username: string; role: UserRole };
    const session = new HsmSession(new RelayChannel(link, who.username, who.role));
    return new RelayConnection(session, link, capabilities, hello.version);
  } catch (e) {
    link.close();
    throw e;
  }
}

export { HsmError };
export type { RelayCapabilities };
