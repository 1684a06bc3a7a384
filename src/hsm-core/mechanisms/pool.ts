/**
 * Asymmetric signatures on libuv's thread pool (node:crypto's callback forms of sign and verify),
 * so that one member uses every core under concurrent load, as Node's own WebCrypto does. Fast
 * symmetric operations stay synchronous: a hop to the pool would cost more than they do.
 *
 * The hop costs more than a cheap signature: handing a 40 µs signature to another thread and
 * being woken for its answer takes longer than the signature (on a virtual machine whose idle
 * cores sleep, several times longer). So in each turn of the event loop, one operation that is
 * cheap (anything but an RSA private-key operation) runs here, on this thread; the others go to
 * the pool. Its answer is given in the next turn (setImmediate), so that a caller awaiting one
 * operation after another still lets timers and I/O run between them, as with the pool, and the
 * loop is held up by at most one such operation a turn. One at a time, every signature runs here;
 * with a few callers, this thread signs beside the pool instead of waiting for it, and under heavy
 * load it signs once a turn between handing out the pool's answers. Until 2026-12-03 it ran here
 * only when nothing of this thread was on the pool, so that a second caller sent everything to
 * the pool: ECDSA P-256 with 2 callers went from 7,500-10,800 to 14,300-21,900 signatures a
 * second (from 4 callers up the two rules are within this VM's noise of each other).
 *
 * But once {@link HERE_MAX_OUT} of this thread's operations are out, none runs here: this thread
 * is then the busier one, handing every answer out and every next operation in, and an operation
 * it makes itself holds all of that up while the pool's threads could take it. Through the
 * WebCrypto door, this rule against the one before it in one process, with native WebCrypto,
 * 12 stretches of 0.5 s each taking turns (2026-12-03, night, two runs), ratios to native: with
 * 32 in flight Ed25519 0.859-0.886 before and 0.897-0.936 after, ECDSA P-256 verify 0.968-0.986
 * and 0.999-1.030, sign 0.937-1.009 and 0.989-0.995; with 64, 0.843-0.876 and 0.943-0.972,
 * 0.928-0.939 and 0.993-1.003, 0.924-0.999 and 0.994-1.033. With up to 16 in flight
 * it changes nothing, as 16 are never out (8 in flight: 1.136 and 1.157, 1.087 and 1.083, 1.323
 * and 1.330). Per-thread CPU showed why: with 32 in flight and one signature a turn made here,
 * this thread spent 16-18 µs a call on Ed25519 against native's 6-7 and was seldom idle.
 *
 * An RSA private-key operation costs far more (about 0.5 ms for RSA-2048 on the machines these
 * figures come from, 1.5 for RSA-3072, 4 for RSA-4096). It runs here only if its key has at most
 * {@link HERE_RSA_MAX_BITS} bits, so that the loop is never held up longer than about half a
 * millisecond a turn, and only as the turn's one operation here, in two cases:
 * - when it is alone: no other RSA private-key operation of this thread's is out. Native WebCrypto
 *   hands even a lone one to the pool, and the hop there and back costs this VM 50-300 µs.
 *   RSA-2048 signatures through the door awaited one after another, both rules alternating in one
 *   process (three runs): 0.87-0.95 of native's rate always on the pool, 1.04-1.18 alone here.
 * - when at least {@link HERE_MAX_OUT} of this thread's operations are out (the reverse of the
 *   rule for cheap ones): the pool then has work queued for all its threads, and this thread,
 *   which would otherwise sleep between the pool's answers and be woken for each (about 20 µs of
 *   its CPU a wake-up, measured per thread), makes one and hands out in one go the answers that
 *   came meanwhile. RSA-2048 signatures through the door, the rule before this one (everything
 *   to the pool once another RSA operation is out) and this one taking turns in one process with
 *   native WebCrypto, 16 stretches of 0.4 s each a run (2026-12-04), ratios to native: with 32 in
 *   flight 0.967-0.980 before and 1.009-1.021 after (four runs), with 64 0.965-0.971 and
 *   1.029-1.033 (two); RSA-OAEP decryption with 32 in flight (on the RSA threads, below)
 *   1.549-1.575 and 1.769-1.773 (two). With 1, 8 or 16 in flight, where fewer are out, the two
 *   are within noise of each other (1.160 and 1.155, 0.974 and 0.979, 0.989 and 0.998).
 * Every other one goes to the pool.
 *
 * RSA's private-key operation over bytes already padded (a signature over the caller's digest,
 * PKCS #11's CKM_RSA_PKCS) and RSA decryption have no callback form in node:crypto: when they
 * cannot run here they go to threads of this module's own instead of the pool (rsa-threads.ts;
 * see {@link privateEncryptAsync}).
 *
 * A member that has a thread of its own (a worker, or a `strongroom hsm serve` process) signs on
 * that thread instead: the thread pool is shared by the whole process, so members that all used
 * it would share its cores rather than each bring one. `useThreadPool(false)` says so; it applies
 * to the calling thread's members.
 *
 * @module
 */
import { KeyObject, privateDecrypt, privateEncrypt, sign, verify, type SignKeyObjectInput, type VerifyKeyObjectInput } from 'node:crypto';
import { onRsaThread, type RsaOptions } from './rsa-threads.js';

let threadPool = true;
/** Whether this turn of the event loop may still run a cheap operation here (see above). */
let inlineFree = true;
const use = { here: 0, pool: 0 };

/** Whether this thread's members sign and verify on libuv's thread pool (default) or on this thread. */
export function useThreadPool(on: boolean): void {
  threadPool = on;
}

/** Whether this thread's members hand work to other threads (false: they have a thread of their own). */
export function usesThreadPool(): boolean {
  return threadPool;
}

/**
 * How many keys a member that shares its thread with the application (see {@link usesThreadPool})
 * works through in a turn of the event loop when it works through all of them: a backup packed or
 * restored, sync digests made. About 5 to 20 ms of work.
 */
export const KEYS_A_TURN = 500;

/**
 * `items` in pieces of `size` (default {@link KEYS_A_TURN}), each after the first in a later turn
 * of the event loop on a member that shares its thread with the application, all at once on one
 * with a thread of its own.
 */
export async function* inTurns<T>(items: readonly T[], size = KEYS_A_TURN): AsyncGenerator<T[]> {
  for (let at = 0; at < items.length; at += size) {
    if (at > 0 && threadPool) await nextTurn();
    yield items.slice(at, at + size);
  }
}

/** A later turn of the event loop, in which timers and I/O run first. */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** Who waits for a turn of their own (see {@link turnOfItsOwn}), in order. */
const ownTurns: (() => void)[] = [];

/**
 * A later turn of the event loop that no other caller of this function gets: one a turn, in the
 * order they asked. For work that cannot be cut up and takes long (a member's whole sync status),
 * so that two such pieces, asked at once of two members that share this thread, hold up its timers
 * and I/O one at a time instead of back to back.
 */
export function turnOfItsOwn(): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ownTurns.push(resolve) === 1) setImmediate(nextOwnTurn);
  });
}

function nextOwnTurn(): void {
  ownTurns.shift()!();
  // Set from inside a setImmediate callback, the next runs in the next turn, after timers and I/O.
  if (ownTurns.length > 0) setImmediate(nextOwnTurn);
}

/** Answers given in a later turn of the event loop than their request's (see {@link answersInLaterTurns}). */
let laterTurnAnswers = 0;

/**
 * How many answers this thread's operations have given in a later turn of the event loop than
 * their request's: from the pool's callback or an RSA thread, or made here and given in the next
 * turn. Each is counted just before it is given, so the first answer a caller sees after the count
 * moves is normally that one, which comes after the loop has run its timers and I/O (the
 * in-process transport's budget for answers given at once, cluster-client/transport.ts, leaves it
 * out).
 */
export function answersInLaterTurns(): number {
  return laterTurnAnswers;
}

/** How many operations of this thread ran here and on the pool (or an RSA thread) so far, and how many of the latter are out now (diagnostics and tests). */
export function poolUse(): { here: number; pool: number; out: number } {
  return { ...use, out };
}

type KeyInput = KeyObject | SignKeyObjectInput | VerifyKeyObjectInput;

/** The largest RSA key whose private-key operation may run here (see above). */
const HERE_RSA_MAX_BITS = 2048;

/**
 * How many of this thread's operations may be out, on the pool or the RSA threads, for a cheap one
 * to run here; and from how many out an RSA private-key one may (see above).
 */
const HERE_MAX_OUT = 16;

/** This thread's operations on the pool or the RSA threads, not answered yet. */
let out = 0;

/** Of those, the RSA private-key operations. */
let rsaOut = 0;

/** The modulus length of RSA private keys seen (a KeyObject's details are read from OpenSSL each time). */
const modulusBits = new WeakMap<KeyObject, number>();

/** The modulus length of `key` if it is an RSA private key, else 0. */
function rsaPrivateBits(key: KeyInput): number {
  const object = key instanceof KeyObject ? key : (key.key as KeyObject);
  if (object.type !== 'private' || (object.asymmetricKeyType !== 'rsa' && object.asymmetricKeyType !== 'rsa-pss')) return 0;
  let bits = modulusBits.get(object);
  if (bits === undefined) modulusBits.set(object, (bits = object.asymmetricKeyDetails!.modulusLength!));
  return bits;
}

/** Whether an operation runs here now (see above): `bits` is its key's size if that is an RSA private key, else 0. */
function mayRunHere(bits: number): boolean {
  if (!inlineFree) return false;
  if (bits === 0) return out < HERE_MAX_OUT;
  return bits <= HERE_RSA_MAX_BITS && (rsaOut === 0 || out >= HERE_MAX_OUT);
}

/** Counts an operation out (an RSA private-key one also as such); the function returned counts it back. */
function countOut(rsa: boolean): () => void {
  out += 1;
  if (rsa) rsaOut += 1;
  return () => {
    out -= 1;
    if (rsa) rsaOut -= 1;
  };
}

/**
 * Counts an RSA private-key operation on an RSA thread out until `done` settles, and then its
 * answer among those given in a later turn (see {@link answersInLaterTurns}): this reaction is
 * registered before any caller's, so it runs first.
 */
function rsaOutUntil<T>(done: Promise<T>): Promise<T> {
  const back = countOut(true);
  const settled = () => {
    back();
    laterTurnAnswers += 1;
  };
  void done.then(settled, settled);
  return done;
}

/** Runs `compute` here, now, as this turn's one operation on this thread; answered in the next turn. */
function here<T>(compute: () => T): Promise<T> {
  inlineFree = false;
  use.here += 1;
  return new Promise((resolve, reject) => {
    let settle: () => void;
    try {
      const value = compute();
      settle = () => resolve(value);
    } catch (e) {
      settle = () => reject(e);
    }
    setImmediate(() => {
      inlineFree = true;
      laterTurnAnswers += 1;
      settle();
    });
  });
}

/** Runs `compute` on this thread or on the pool (`start`), as described above. */
function run<T>(key: KeyInput, compute: () => T, start: (done: (err: Error | null, value: T) => void) => void): Promise<T> {
  if (!threadPool) return new Promise((resolve) => resolve(compute()));
  const bits = rsaPrivateBits(key);
  if (mayRunHere(bits)) return here(compute);
  use.pool += 1;
  const back = countOut(bits > 0);
  return new Promise<T>((resolve, reject) => {
    try {
      start((err, value) => {
        back();
        laterTurnAnswers += 1;
        if (err) reject(err);
        else resolve(value);
      });
    } catch (e) {
      // node:crypto refused it before it went (a digest or key it cannot take).
      back();
      throw e;
    }
  });
}

export function signAsync(algorithm: string | null, data: Uint8Array, key: KeyObject | SignKeyObjectInput): Promise<Buffer> {
  return run(key, () => sign(algorithm, data, key), (done) => sign(algorithm, data, key, done));
}

export function verifyAsync(algorithm: string | null, data: Uint8Array, key: KeyObject | VerifyKeyObjectInput, signature: Uint8Array): Promise<boolean> {
  return run(key, () => verify(algorithm, data, key, signature), (done) => verify(algorithm, data, key, signature, done));
}

/**
 * RSA's private-key operation over bytes the caller padded, which node:crypto has only in a
 * synchronous form. Several at once go to the RSA threads (rsa-threads.ts), so that they use every
 * core; one alone (of at most {@link HERE_RSA_MAX_BITS} bits) is made here, as this turn's one
 * operation on this thread, because handing it to another thread and being woken for its answer
 * costs this VM about 300 µs on top of its 500; and so is one a turn while at least
 * {@link HERE_MAX_OUT} of this thread's operations are out (see above).
 * RSA-2048 CKM_RSA_PKCS with 8 in flight, alternating in one process (two runs): 2,211-2,624 a
 * second all made here, 3,425-3,813 on the threads; one at a time, 1,981-2,561 here against
 * 1,230-1,515 always on a thread. When this thread's members sign on their own thread (a worker,
 * a member process), it is made here always.
 */
export function privateEncryptAsync(key: KeyObject, padding: number, data: Uint8Array): Promise<Buffer> {
  return rsaPrivate(false, key, { padding }, data);
}

/** RSA decryption (`privateDecrypt`) as {@link privateEncryptAsync} places it. Not for key unwrapping: see rsa-threads.ts. */
export function privateDecryptAsync(key: KeyObject, options: RsaOptions, data: Uint8Array): Promise<Buffer> {
  return rsaPrivate(true, key, options, data);
}

function rsaPrivate(decrypt: boolean, key: KeyObject, options: RsaOptions, data: Uint8Array): Promise<Buffer> {
  const compute = () => (decrypt ? privateDecrypt : privateEncrypt)({ ...options, key }, data);
  if (!threadPool) return new Promise((resolve) => resolve(compute()));
  if (mayRunHere(rsaPrivateBits(key))) return here(compute);
  use.pool += 1;
  return rsaOutUntil(onRsaThread(decrypt, key, options, data));
}
