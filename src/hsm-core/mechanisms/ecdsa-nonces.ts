/**
 * The nonces of ECDSA over a digest (prehashed.ts): for each, r = (k·G).x mod n and k⁻¹ mod n.
 * k·G is the costly part (OpenSSL's, through an ECDH object given k as its private key: about 30
 * µs for P-256 on the machines these figures come from, a signature's own arithmetic being 6). It
 * is made on a thread of hsm-core's own, 64 nonces at a time with one modular inversion for all
 * of them (Montgomery's trick), each k uniform (rejection sampling) and used once. The member's
 * thread keeps a reserve per curve and asks for the next batch whenever it holds no more than one
 * batch, so that signatures at one caller's pace never make a nonce themselves; a burst that
 * empties the reserve makes them 16 at a time on the member's thread (where all were made before).
 *
 * Through the PKCS #11 door, CKM_ECDSA with P-256: the door's thread spent about 210 µs of CPU a
 * signature with one in flight, 36 of them on nonces, and 150-165 after. Old and new taking turns
 * in one process (three runs of 6 rounds, geometric means of the paired ratios): one in flight
 * 1.17, 1.06, 1.25 × the old rate (all nonces made on the member's thread, 64 at a time); 8 in
 * flight 1.34, 1.23, 1.38 ×.
 *
 * A nonce is a secret as the key is: it crosses from that thread to the member's in a message
 * (both hsm-core's), is taken from the reserve once, and is never written anywhere.
 *
 * @module
 */
import { createECDH, randomBytes } from 'node:crypto';
import { JobThread } from './threads.js';

/**
 * `makeBatch(curve, n, count)` → `{ r: bigint[], kInverse: bigint[] }` (or null, see below), in
 * plain JavaScript given `createECDH` and `randomBytes`: the thread runs it, and so does the
 * member's thread when its reserve is empty (one copy of the code for both).
 */
const BATCH = `
const toBig = (b) => BigInt('0x' + (b.toString('hex') || '0'));
function invert(a, m) {
  let r0 = m, r1 = a % m, t0 = 0n, t1 = 1n;
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [t0, t1] = [t1, t0 - q * t1];
  }
  return ((t0 % m) + m) % m;
}
// One ECDH object per curve, given each k in turn (making one costs as much again as the k·G).
const ecdhs = new Map();
function makeBatch(curve, n, count) {
  const bits = n.toString(2).length;
  const bytes = Math.ceil(bits / 8);
  let ecdh = ecdhs.get(curve);
  if (!ecdh) ecdhs.set(curve, (ecdh = createECDH(curve)));
  const ks = [];
  const rs = [];
  const random = randomBytes(bytes * count * 2);
  let at = 0;
  while (ks.length < count) {
    if (at + bytes > random.length) { random.fill(0); return null; }
    const kBytes = random.subarray(at, (at += bytes));
    if (bits % 8) kBytes[0] &= 0xff >> (8 - (bits % 8));
    const k = toBig(kBytes);
    if (k === 0n || k >= n) continue;
    ecdh.setPrivateKey(kBytes);
    const point = ecdh.getPublicKey();
    const r = toBig(point.subarray(1, 1 + (point.length - 1) / 2)) % n;
    if (r === 0n) continue;
    ks.push(k);
    rs.push(r);
  }
  random.fill(0);
  // The object keeps no nonce: its key is 1 until the next batch.
  const one = Buffer.alloc(bytes);
  one[bytes - 1] = 1;
  ecdh.setPrivateKey(one);
  // One inversion for all: prefix products, the inverse of the last, then back down.
  const prefix = [];
  let acc = 1n;
  for (const k of ks) prefix.push((acc = (acc * k) % n));
  let inverse = invert(acc, n);
  const kInverse = new Array(count);
  for (let i = count - 1; i >= 0; i--) {
    kInverse[i] = i === 0 ? inverse : (inverse * prefix[i - 1]) % n;
    inverse = (inverse * ks[i]) % n;
  }
  return { r: rs, kInverse };
}
`;

/** The thread's code (threads.ts): a job `{ curve, n, count }` is answered with a batch. */
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createECDH, randomBytes } = require('node:crypto');
${BATCH}
parentPort.on('message', ({ id, curve, n, count }) => {
  let answer;
  try {
    let value = null;
    // Rejection takes more than twice the bytes drawn only with a probability far below 2^-64.
    while (!value) value = makeBatch(curve, n, count);
    answer = { id, ok: true, value };
  } catch (e) {
    answer = { id, ok: false, message: String((e && e.message) || e), code: e && e.code };
  }
  parentPort.postMessage(answer);
});
`;

export interface Nonce {
  r: bigint;
  kInverse: bigint;
}

type Batch = { r: bigint[]; kInverse: bigint[] };

/** Nonces the thread makes at a time; the reserve asks for the next batch when it holds no more than this. */
export const NONCE_BATCH = 64;
/** Nonces the member's thread makes at a time when its reserve is empty. */
const HERE_BATCH = 16;

let thread: JobThread<Batch> | null = null;
const reserve = new Map<string, Nonce[]>();
const coming = new Set<string>();
const made = new Map<string, { thread: number; here: number }>();
/** Threads that failed: after three, this process makes its nonces here only. */
let failures = 0;

/** Batches made so far for `curve` (OpenSSL's name) by the thread and on the member's thread (diagnostics and tests). */
export function nonceBatches(curve: string): { thread: number; here: number } {
  return { ...(made.get(curve) ?? { thread: 0, here: 0 }) };
}

function count(curve: string, where: 'thread' | 'here'): void {
  let counts = made.get(curve);
  if (!counts) made.set(curve, (counts = { thread: 0, here: 0 }));
  counts[where] += 1;
}

function keep(curve: string, { r, kInverse }: Batch): void {
  let ready = reserve.get(curve);
  if (!ready) reserve.set(curve, (ready = []));
  for (let i = 0; i < r.length; i++) ready.push({ r: r[i]!, kInverse: kInverse[i]! });
}

/** Asks the thread for a batch for `curve`, unless one is on its way. A thread that fails is replaced at the next ask. */
function refill(curve: string, n: bigint): void {
  if (coming.has(curve) || failures >= 3) return;
  coming.add(curve);
  if (!thread || thread.failed) thread = new JobThread(SOURCE, 'the ECDSA nonce thread');
  thread.run({ curve, n, count: NONCE_BATCH }).then(
    (batch) => {
      coming.delete(curve);
      count(curve, 'thread');
      keep(curve, batch);
    },
    // Nothing is lost: the member's thread makes its own until the next ask.
    () => {
      coming.delete(curve);
      failures += 1;
    },
  );
}

let makeBatch: ((curve: string, n: bigint, count: number) => Batch | null) | null = null;

/**
 * A nonce for `curve` (OpenSSL's name) of order `n`, never given out before: from the reserve,
 * which the thread refills in the background. When the reserve is empty (the first signature, or
 * a burst faster than the thread, which shares the machine's cores with everything else: a batch
 * took it 5-30 ms with 8 signatures in flight through the PKCS #11 door), a few are made here.
 */
export function nonce(curve: string, n: bigint): Nonce {
  let ready = reserve.get(curve);
  if (!ready || ready.length <= NONCE_BATCH) refill(curve, n);
  if (!ready?.length) {
    // The same code as the thread's, compiled once for this thread.
    makeBatch ??= new Function('createECDH', 'randomBytes', `${BATCH}\nreturn makeBatch;`)(createECDH, randomBytes) as typeof makeBatch;
    let batch: Batch | null = null;
    while (!batch) batch = makeBatch!(curve, n, HERE_BATCH);
    count(curve, 'here');
    keep(curve, batch);
    ready = reserve.get(curve)!;
  }
  return ready.pop()!;
}
