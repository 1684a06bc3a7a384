/**
 * How a client reaches a member. A transport carries plain protocol requests and answers; it
 * never interprets them. Three kinds, one unchanged member behind each:
 *
 * - in-process: the member's `handle` called directly;
 * - worker: the member in its own `worker_threads` worker (isolation of key material from the
 *   application's heap, and a core of its own);
 * - socket: a network member (`strongroom hsm serve`) behind mutual TLS, see tls.ts.
 *
 * A transport never throws for a member that is gone: it answers MEMBER_UNAVAILABLE, marks itself
 * dead and tells its `onDown` listeners, so that the cluster can route around it.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { entryPoint } from './entry-point.js';
import { BATCH_LIMIT, perTurn, type Response } from '../hsm-core/client.js';
import type { Member, MemberOptions } from '../hsm-core/index.js';

export interface Transport {
  /** A short description for messages and observability, e.g. `worker member 1`. */
  readonly description: string;
  /** False once the member is gone (worker exited, connection closed). */
  readonly alive: boolean;
  send(request: unknown): Promise<Response>;
  /** Called once, when the member goes away. */
  onDown(listener: (reason: string) => void): void;
  /** Treats the member as gone if a request waits longer than `ms` for its answer. */
  watchdog?(ms: number): void;
  close(): Promise<void>;
}

export function unavailable(description: string, why: string): Response {
  return { ok: false, error: { code: 'MEMBER_UNAVAILABLE', message: `${description}: ${why}` } };
}

/** Shared bookkeeping of transports that match answers to requests by id. */
export abstract class PendingTransport implements Transport {
  abstract readonly description: string;
  #alive = true;
  #nextId = 1;
  readonly #pending = new Map<number, (r: Response) => void>();
  /** When each request was sent: ids grow, so the oldest is first. */
  readonly #sentAt = new Map<number, number>();
  readonly #listeners: ((reason: string) => void)[] = [];
  #watchdog: NodeJS.Timeout | undefined;

  /** Every so often, checks the oldest request: one waiting longer than `ms` means the member is gone. */
  watchdog(ms: number): void {
    clearInterval(this.#watchdog);
    this.#watchdog = setInterval(() => {
      const oldest = this.#sentAt.values().next();
      if (!oldest.done && performance.now() - oldest.value > ms) this.down(`no answer in ${ms} ms`);
    }, Math.max(10, Math.min(1000, ms / 4)));
    this.#watchdog.unref();
  }

  get alive(): boolean {
    return this.#alive;
  }

  send(request: unknown): Promise<Response> {
    if (!this.#alive) return Promise.resolve(unavailable(this.description, 'the member is down'));
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_fffe ? 1 : this.#nextId + 1;
    return new Promise<Response>((resolve) => {
      this.#pending.set(id, resolve);
      if (this.#watchdog) this.#sentAt.set(id, performance.now());
      if (this.#pending.size === 1) this.hold(true);
      try {
        this.post(id, request);
      } catch (e) {
        this.#pending.delete(id);
        this.#sentAt.delete(id);
        resolve({ ok: false, error: { code: 'BAD_REQUEST', message: `request: cannot be sent to a member (${e instanceof Error ? e.message : String(e)})` } });
      }
    });
  }

  onDown(listener: (reason: string) => void): void {
    if (!this.#alive) listener('the member is down');
    else this.#listeners.push(listener);
  }

  /** How many requests are waiting for an answer. */
  get outstanding(): number {
    return this.#pending.size;
  }

  protected abstract post(id: number, request: unknown): void;

  /**
   * Keeps the process alive while answers are awaited (`true`), and lets it exit when nothing is
   * (`false`): an idle connection to the cluster must not keep an application running.
   */
  protected abstract hold(active: boolean): void;

  protected answer(id: number, response: Response): void {
    const resolve = this.#pending.get(id);
    if (!resolve) return;
    this.#pending.delete(id);
    this.#sentAt.delete(id);
    if (this.#pending.size === 0) this.hold(false);
    resolve(response);
  }

  /** The member is gone: every request in flight is answered MEMBER_UNAVAILABLE. */
  protected down(reason: string): void {
    if (!this.#alive) return;
    this.#alive = false;
    for (const resolve of this.#pending.values()) resolve(unavailable(this.description, reason));
    this.#pending.clear();
    this.#sentAt.clear();
    clearInterval(this.#watchdog);
    this.hold(false);
    for (const l of this.#listeners.splice(0)) l(reason);
  }

  abstract close(): Promise<void>;
}

/**
 * How long one turn of the event loop may go on taking answers from members in this process.
 *
 * Such a member answers what it does on its own thread (AES, HMAC, digests, attribute reads) at
 * once, in the caller's turn: a caller that awaits one call after another would never let the
 * loop reach its timers and I/O, where Node's WebCrypto, answering from the thread pool, lets
 * them run between any two calls. So answers are given at once for this long after the first of
 * a turn, and after that in the next turn (setImmediate): the loop is held up by at most about
 * this long, and a caller loses one hop per this long rather than one per call.
 *
 * An answer the member gives in a later turn than its request's (a signature from the pool or an
 * RSA thread, or one made on the member's thread and given in the next turn;
 * `Member.answersInLaterTurns` counts them) comes after the loop has run its timers and I/O: it is
 * given at once and starts no turn's count, so it costs no setImmediate. Answers given at once
 * after it, in its turn, count as above.
 * With 32 Ed25519 signatures in flight, whose answers come from the pool a few a turn, that
 * setImmediate was 0.6 µs of the application's thread a call (bench/HISTORY.md, 2026-12-04).
 */
const TURN_BUDGET_MS = 1;
/** When this turn's first in-process answer was given; -1 until then. */
let turnStarted = -1;
const endTurn = () => {
  turnStarted = -1;
};
/** The members' count of answers given in a later turn, as of the last answer given here. */
let laterTurnsSeen = 0;

/** `response` now or in the next turn, as above; `later` is the member's count of answers given in a later turn. */
function inTurn(response: Response, later: number): Response | Promise<Response> {
  // The first answer given after the count moved is normally the one it counted. When it is not
  // (a request that goes on after its operation came back from the pool), one answer given at
  // once is not counted against the turn: the count moves only in other turns, so a run of
  // answers given at once in one turn has at most one such answer.
  if (later !== laterTurnsSeen) {
    laterTurnsSeen = later;
    return response;
  }
  if (turnStarted < 0) {
    turnStarted = performance.now();
    setImmediate(endTurn);
    return response;
  }
  if (performance.now() - turnStarted < TURN_BUDGET_MS) return response;
  return new Promise((resolve) => setImmediate(resolve, response));
}

/** A member in this process: requests are passed as they are, with no copy or encoding; answers as described at TURN_BUDGET_MS. */
export class InProcessTransport implements Transport {
  readonly description: string;
  readonly #member: Member;
  #alive = true;
  readonly #listeners: ((reason: string) => void)[] = [];

  /** An answer of the member's, given now or in the next turn ({@link inTurn}). */
  readonly #given = (response: Response) => inTurn(response, this.#member.answersInLaterTurns());

  constructor(member: Member, index = 0) {
    this.#member = member;
    this.description = `in-process member ${index}`;
  }

  static async start(options: MemberOptions, index: number): Promise<InProcessTransport> {
    // Loaded here: a process that only connects to members (the CLI) never loads one.
    const { createMember } = await import('../hsm-core/index.js');
    return new InProcessTransport(await createMember(options), index);
  }

  get alive(): boolean {
    return this.#alive;
  }

  send(request: unknown): Promise<Response> {
    if (!this.#alive) return Promise.resolve(unavailable(this.description, 'the member is down'));
    return this.#member.handle(request).then(this.#given);
  }

  onDown(listener: (reason: string) => void): void {
    this.#listeners.push(listener);
  }

  #closing: Promise<void> | undefined;

  /** Resolves once the member has closed (its data folder, if any, released). */
  get closed(): Promise<void> {
    return this.#closing ?? Promise.resolve();
  }

  /** Stops the member as if it had failed (chaos tests). */
  kill(): void {
    this.#closing ??= this.#member.close();
    this.#alive = false;
    for (const l of this.#listeners.splice(0)) l('the member was stopped');
  }

  async close(): Promise<void> {
    this.#alive = false;
    this.#closing ??= this.#member.close();
    await this.#closing;
  }
}

/** The worker's entry: compiled, or its source under tsx (see entry-point.ts). Exported for tests. */
export function workerEntry(): { source: string | URL; eval: boolean } {
  const { file, typescript } = entryPoint(import.meta.url, '../hsm-core/hosts/worker');
  const entry = pathToFileURL(file);
  if (!typescript) return { source: entry, eval: false };
  // The worker registers tsx before loading the entry: tsx's ESM API, found through its
  // package.json (its `require` build cannot register hooks).
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('tsx/package.json');
  const api = (require(manifest) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api']!.import.default;
  const tsx = new URL(api, pathToFileURL(manifest)).href;
  return { source: `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry.href)}); })`, eval: true };
}

/** A member in a worker thread of its own. */
export class WorkerTransport extends PendingTransport {
  readonly description: string;
  readonly #worker: Worker;

  private constructor(worker: Worker, index: number) {
    super();
    this.#worker = worker;
    this.description = `worker member ${index}`;
    worker.on('message', (message: { id: number; response: Response }[] | { parked: true }) => {
      if (!Array.isArray(message)) return void this.#worker.terminate(); // see #stop
      for (const a of message) this.answer(a.id, a.response);
    });
    worker.on('error', (e) => this.down(`the worker failed: ${e.message}`));
    worker.on('exit', (code) => {
      this.#exited = true;
      this.down(`the worker exited (code ${code})`);
    });
    worker.unref();
  }

  protected hold(active: boolean): void {
    if (active) this.#worker.ref();
    else this.#worker.unref();
  }

  /** Starts a worker with a new member and waits until it is ready. */
  static start(options: MemberOptions, index: number): Promise<WorkerTransport> {
    const { source, eval: isEval } = workerEntry();
    const worker = new Worker(source, { eval: isEval, workerData: options });
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => reject(new Error(`worker member ${index} did not start: ${e.message}`));
      worker.once('error', fail);
      worker.once('message', (m: { ready?: boolean }) => {
        worker.off('error', fail);
        if (m.ready) resolve(new WorkerTransport(worker, index));
        else reject(new Error(`worker member ${index} did not start: unexpected first message`));
      });
    });
  }

  /**
   * Requests made in this tick, posted together when it ends: one message (one copy, one wake-up
   * of the worker) for them all, or for each {@link BATCH_LIMIT}`.frames` of them, so that the
   * worker starts on the first while this thread makes the rest. With the worker's answers in
   * groups of the same size, the two threads work at the same time rather than in turns (the
   * worker was idle 30 % of the time): 2 worker members, 64 signatures in flight, old and new
   * alternating in one process, 6 rounds each of three runs: ECDSA P-256 from 0.85-0.90 to
   * 0.90-1.04 of native WebCrypto's rate, RSA-2048 from 0.92-0.96 to 0.97-1.02.
   */
  readonly #post = perTurn<{ id: number; request: unknown }>((batch) => this.#worker.postMessage(batch), undefined, BATCH_LIMIT.frames);

  protected post(id: number, request: unknown): void {
    this.#post({ id, request });
  }

  #exited = false;
  #stopping: Promise<void> | undefined;

  /**
   * Stops the worker: at once, as a crash would (`crash`), or once its member has closed its data
   * folder (`close`). The worker is terminated only once it says it is parked (hosts/worker.ts:
   * blocked in `Atomics.wait`, in no call of anyone's). `worker.terminate()` stops a thread
   * wherever it is, and when that is inside a call of lmdb's (a commit it is starting, a
   * transaction's callback), lmdb's native code cannot throw into the stopping thread and aborts
   * the whole process ("FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw": once in a few
   * hundred kills of a worker member under writes, two such processes on two cores). The worker
   * cannot simply exit either: `process.exit` runs lmdb's exit hook, which closes every store of
   * the process, the other members' too (a segmentation fault at once). A worker that has not
   * parked after `graceMs` (one task that runs that long) is terminated anyway.
   */
  #stop(how: 'crash' | 'close', graceMs: number): Promise<void> {
    this.#stopping ??= new Promise<void>((resolve) => {
      if (this.#exited) return resolve();
      const timer = setTimeout(() => void this.#worker.terminate(), graceMs);
      this.#worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      // Until it has stopped: a closing member finishes writing its folder before the process ends.
      this.#worker.ref();
      this.#worker.postMessage({ stop: how });
    });
    return this.#stopping;
  }

  /** Resolves once the worker has stopped (its data folder, if any, released). */
  get closed(): Promise<void> {
    return this.#stopping ?? Promise.resolve();
  }

  /** Stops the worker as if the member had failed (chaos tests): what it held only in memory is gone. */
  kill(): void {
    void this.#stop('crash', 2_000);
  }

  async close(): Promise<void> {
    this.down('the cluster was closed');
    await this.#stop('close', 10_000);
  }
}
