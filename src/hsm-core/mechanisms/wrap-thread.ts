/**
 * RFC 5649 key wrap and unwrap of a large payload — a backup's whole content — on a thread of
 * hsm-core's own, when the member shares its thread with the application (an in-process member;
 * see pool.ts's `useThreadPool`). Key wrap runs six AES operations per 8 bytes one after another:
 * a backup of 20,000 token keys held the event loop for about 170 ms in the wrap alone (47 % of
 * the backup), and a restore as long again in the unwrap; here the application's calls go on
 * meanwhile. A member with a thread of its own (a worker, a member process) does both in place.
 *
 * The key goes as a KeyObject, which node:crypto clones to the thread as a handle to the same
 * native key: its bytes never enter JavaScript there. What goes to be wrapped, the backup's
 * content, is moved there, not copied: none of it is left on the member's thread, and the thread
 * zeroes it once wrapped. What comes back unwrapped is the caller's to zero; the thread zeroes
 * its own copy once posted.
 *
 * @module
 */
import type { KeyObject } from 'node:crypto';
import { HsmError } from '../errors.js';
import { usesThreadPool } from './pool.js';
import { JobThread } from './threads.js';
import { decryptionFailed, kwCipher, kwZeroPadUnwrap, kwZeroPadWrap } from './aes.js';

/** The thread's code (threads.ts). An unwrap that fails its integrity check is refused with code UNWRAP_FAILED. */
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createCipheriv, createDecipheriv } = require('node:crypto');
parentPort.on('message', ({ id, unwrap, key, cipher, iv, data, prefix }) => {
  let answer;
  let value = null;
  try {
    const c = (unwrap ? createDecipheriv : createCipheriv)(cipher, key, iv);
    const body = c.update(data);
    const last = c.final();
    // A buffer of its own (Buffer.concat could give a view into this thread's pool), after the
    // bytes the caller puts before the wrapped ones.
    const before = prefix ? prefix.length : 0;
    value = new Uint8Array(before + body.length + last.length);
    if (prefix) value.set(prefix);
    value.set(body, before);
    value.set(last, before + body.length);
    body.fill(0);
    last.fill(0);
    answer = { id, ok: true, value };
  } catch (e) {
    answer = unwrap ? { id, ok: false, message: 'the key-wrap integrity check failed', code: 'UNWRAP_FAILED' } : { id, ok: false, message: String((e && e.message) || e), code: e && e.code };
  }
  data.fill(0);
  // Moved to the caller, not copied: nothing of what was unwrapped is left here, and the caller's
  // thread is not held up copying it (40 MB for a backup of 100,000 keys, about 30 ms).
  parentPort.postMessage(answer, value ? [value.buffer] : []);
});
`;

let thread: JobThread<Uint8Array> | null = null;
const use = { away: 0, here: 0 };

/** How many wraps and unwraps went to the thread and how many were made in place so far (tests). */
export function wrapThreadUse(): { away: number; here: number } {
  return { ...use };
}

/** Runs a job on the thread (made again if it stopped); a thread that stops is the member's INTERNAL_ERROR. */
async function away(job: { unwrap: boolean; key: KeyObject; data: Uint8Array; prefix?: Uint8Array }): Promise<Buffer> {
  if (!thread || thread.failed) thread = new JobThread(SOURCE, 'the key-wrap thread');
  use.away += 1;
  const { name: cipher, iv } = kwCipher(job.key, true);
  try {
    // The IV is copied into a buffer of its own: a view would take all of its buffer (Node's 8 KiB pool) along.
    const value = await thread.run({ ...job, cipher, iv: new Uint8Array(iv) }, [job.data.buffer as ArrayBuffer]);
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  } catch (e) {
    if ((e as { code?: string }).code === 'UNWRAP_FAILED') throw decryptionFailed('aes-zero-pad unwrap');
    throw new HsmError('INTERNAL_ERROR', `the key-wrap thread failed (${(e as Error).message})`);
  }
}

/** Whether `bytes` is all of its own buffer, as a buffer that is moved to the thread must be. */
function ownsBuffer(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
}

/**
 * `prefix` followed by `kwZeroPadWrap(key, payload)`, in a buffer of its own, made on the wrap
 * thread when this thread's members share it with the application (so that a large answer is
 * not copied again here to put its header before it). `payload` must own its whole buffer: it is
 * moved there (left empty here) or, when wrapped in place, zeroed afterwards.
 */
export async function kwZeroPadWrapAway(key: KeyObject, payload: Uint8Array, prefix: Uint8Array = new Uint8Array(0)): Promise<Buffer> {
  if (!ownsBuffer(payload)) throw new Error('kwZeroPadWrapAway: the payload must own its whole buffer');
  if (!usesThreadPool() || payload.length === 0) {
    // An empty payload is refused by kwZeroPadWrap, with its own message.
    use.here += 1;
    try {
      const wrapped = kwZeroPadWrap(key, payload);
      // Of its own, as the thread's answer is (Buffer.concat gives a small result in Node's shared pool).
      const whole = Buffer.allocUnsafeSlow(prefix.length + wrapped.length);
      whole.set(prefix);
      whole.set(wrapped, prefix.length);
      return whole;
    } finally {
      payload.fill(0);
    }
  }
  return away({ unwrap: false, key, data: payload, prefix: new Uint8Array(prefix) });
}

/**
 * `kwZeroPadUnwrap(key, wrapped)`, on the wrap thread when this thread's members share it with the
 * application: the payload, in a buffer of its own, for the caller to zero. A copy of `wrapped`
 * goes to the thread; `wrapped` is left as it is.
 */
export async function kwZeroPadUnwrapAway(key: KeyObject, wrapped: Uint8Array): Promise<Buffer> {
  if (!usesThreadPool() || wrapped.length < 16 || wrapped.length % 8 !== 0) {
    // A length key wrap cannot have is refused by kwZeroPadUnwrap, with its own message.
    use.here += 1;
    return kwZeroPadUnwrap(key, wrapped);
  }
  return away({ unwrap: true, key, data: new Uint8Array(wrapped) });
}
