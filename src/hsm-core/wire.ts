/**
 * The wire format between a client and a network member: length-prefixed binary frames.
 *
 * A frame is a 4-byte big-endian length, then that many bytes: a 4-byte big-endian request id
 * and a MessagePack body (a request, or the member's `{ ok, result | error }` answer). Byte arrays
 * travel as MessagePack `bin`, never as base64. Many requests are in flight on one connection;
 * answers carry the id of their request and may come back in any order.
 *
 * A frame longer than the limit, or whose body does not decode, is a protocol error: the side
 * that reads it closes that connection (and only that one).
 *
 * @module
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { HsmError } from './errors.js';

/** The largest frame either side accepts: 8 MiB, well above the profile's largest data limit. */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024;

const encoder = new Encoder({ ignoreUndefined: true });

function decoderFor(maxBytes: number): Decoder {
  return new Decoder({
    maxStrLength: maxBytes,
    maxBinLength: maxBytes,
    maxArrayLength: 65_536,
    maxMapLength: 1024,
    maxExtLength: 0,
  });
}

/** One frame: `[length][id][body]`. */
export function encodeFrame(id: number, body: unknown): Buffer {
  // A view of the encoder's own buffer, copied once, into the frame, before the next encode.
  const payload = encoder.encodeSharedRef(body);
  const frame = Buffer.allocUnsafe(8 + payload.byteLength);
  frame.writeUInt32BE(4 + payload.byteLength, 0);
  frame.writeUInt32BE(id >>> 0, 4);
  frame.set(payload, 8);
  return frame;
}

export interface Frame {
  id: number;
  body: unknown;
}

/** Reassembles frames from a byte stream. `push` throws an HsmError(BAD_REQUEST) on a bad frame. */
export class FrameReader {
  readonly #max: number;
  readonly #decoder: Decoder;
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    this.#max = maxFrameBytes;
    this.#decoder = decoderFor(maxFrameBytes);
  }

  push(chunk: Buffer): Frame[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const frames: Frame[] = [];
    while (this.#buffered >= 4) {
      const head = this.#peek(4);
      const length = head.readUInt32BE(0);
      if (length < 4) throw new HsmError('BAD_REQUEST', `frame: length ${length} is shorter than a request id`);
      if (length > this.#max) {
        throw new HsmError('BAD_REQUEST', `frame: ${length} bytes is over the ${this.#max}-byte limit`);
      }
      if (this.#buffered < 4 + length) break;
      const frame = this.#take(4 + length);
      const id = frame.readUInt32BE(4);
      let body: unknown;
      try {
        // Decoded byte arrays are views of what they were decoded from: give each frame memory of
        // its own, so that no answer can reach another answer's bytes through `.buffer`.
        body = this.#decoder.decode(new Uint8Array(frame.subarray(8)));
      } catch (e) {
        throw new HsmError('BAD_REQUEST', `frame ${id}: the body is not valid MessagePack (${e instanceof Error ? e.message : String(e)})`);
      }
      frames.push({ id, body });
    }
    return frames;
  }

  #peek(n: number): Buffer {
    if (this.#chunks[0]!.length < n) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0]!;
  }

  #take(n: number): Buffer {
    let all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const out = all.subarray(0, n);
    all = all.subarray(n);
    this.#chunks = all.length ? [all] : [];
    this.#buffered -= n;
    return out;
  }
}

/** How much of a tick's writing may wait for the tick's end: past this, what is waiting leaves at once. */
export const BATCH_LIMIT = { frames: 16, bytes: 16 * 1024 } as const;

/**
 * A writer for a socket under which what is written within one tick leaves together: the first
 * write of a tick corks the socket and the next tick uncorks it, so answers (or requests) finished
 * together share a TLS record and a system call. A batch leaves early once it holds
 * {@link BATCH_LIMIT} frames or bytes, so that with many requests in flight the other side starts
 * on the first of them while this side is still making the rest: the two processes work at the
 * same time rather than in turns (64 digests in flight: 30 -> 21 µs a request). Returns `write`'s
 * own result (false: the socket's buffer is full; wait for 'drain').
 */
export function tickBatched(socket: { cork(): void; uncork(): void; write(chunk: Uint8Array): boolean }): (chunk: Uint8Array) => boolean {
  let corked = false;
  let frames = 0;
  let bytes = 0;
  return (chunk) => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(() => {
        corked = false;
        frames = 0;
        bytes = 0;
        socket.uncork();
      });
    }
    const ok = socket.write(chunk);
    frames += 1;
    bytes += chunk.byteLength;
    if (frames >= BATCH_LIMIT.frames || bytes >= BATCH_LIMIT.bytes) {
      frames = 0;
      bytes = 0;
      socket.uncork();
      socket.cork();
    }
    return ok;
  };
}
