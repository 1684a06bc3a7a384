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

const NO_FRAMES: readonly Frame[] = Object.freeze([]);

/**
 * Reassembles frames from a byte stream. `push` throws an HsmError(BAD_REQUEST) on a bad frame:
 * a length out of bounds as soon as its 4 bytes are in, a body that does not decode once it is.
 *
 * Chunks are kept as they come until the frame they complete is whole (so a large frame in many
 * chunks is copied once, not once a chunk); the frames whole by then are read where they lie in
 * that one buffer, each body copied into memory of its own before it is decoded.
 */
export class FrameReader {
  readonly #max: number;
  readonly #decoder: Decoder;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Bytes needed before the next frame can be read: its header's 4, then its whole length. */
  #needed = 4;

  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    this.#max = maxFrameBytes;
    this.#decoder = decoderFor(maxFrameBytes);
  }

  push(chunk: Buffer): readonly Frame[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (this.#buffered < this.#needed) return NO_FRAMES;
    const all = this.#chunks.length === 1 ? chunk : Buffer.concat(this.#chunks, this.#buffered);
    const frames: Frame[] = [];
    let at = 0;
    for (;;) {
      const left = all.length - at;
      if (left < 4) {
        this.#needed = 4;
        break;
      }
      const length = this.#length(all, at);
      if (left < 4 + length) {
        this.#needed = 4 + length;
        break;
      }
      const id = all.readUInt32BE(at + 4);
      // Decoded byte arrays are views of what they were decoded from: each body gets memory of
      // its own, so that no answer can reach another answer's bytes through `.buffer`.
      const body = new Uint8Array(all.buffer, all.byteOffset + at + 8, length - 4).slice();
      at += 4 + length;
      let decoded: unknown;
      try {
        decoded = this.#decoder.decode(body);
      } catch (e) {
        throw new HsmError('BAD_REQUEST', `frame ${id}: the body is not valid MessagePack (${e instanceof Error ? e.message : String(e)})`);
      }
      frames.push({ id, body: decoded });
    }
    const rest = at === all.length ? null : all.subarray(at);
    this.#chunks = rest ? [rest] : [];
    this.#buffered = rest ? rest.length : 0;
    return frames;
  }

  /** The length in the header at `at`, checked. */
  #length(bytes: Buffer, at: number): number {
    const length = bytes.readUInt32BE(at);
    if (length < 4) throw new HsmError('BAD_REQUEST', `frame: length ${length} is shorter than a request id`);
    if (length > this.#max) throw new HsmError('BAD_REQUEST', `frame: ${length} bytes is over the ${this.#max}-byte limit`);
    return length;
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

/** What {@link RequestFlow} needs of a connection: to stop and start reading it. */
export interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

/** Requests of one connection worked on at once, by default; more wait unread. */
export const CONNECTION_IN_FLIGHT = 256;

/**
 * Backpressure for one connection that answers requests as they complete: requests are taken only
 * while the client reads its answers. When the connection's answers back up ({@link full}, until
 * {@link drained}), or `limit` requests are being worked on, reading stops, and requests already
 * read wait their turn. So a client that never reads its answers holds at most a few of them in
 * this process's memory, however much it sends. A TLS member host, the PKCS #11 door (full when a
 * write does not fit the socket's buffer, drained on its 'drain') and the relay (by the bytes its
 * WebSocket has yet to write) serve their connections through one.
 */
export class RequestFlow<T> {
  readonly #connection: Pausable;
  readonly #limit: number;
  readonly #run: (request: T) => Promise<unknown> | void;
  readonly #waiting: T[] = [];
  #inFlight = 0;
  #writable = true;
  #closed = false;
  /** Whether the connection is being read: it is told to pause or resume only when this changes. */
  #reading = true;
  /** One request finished (one function for every request: this is on every request's path). */
  readonly #done = () => {
    this.#inFlight -= 1;
    this.#flow();
  };

  /**
   * `run` works on a request and writes its answer; its promise settles once it has. A `run` that
   * returns nothing is done with the request at once (the relay hands each on and answers later,
   * within its own in-flight limit).
   */
  constructor(connection: Pausable, run: (request: T) => Promise<unknown> | void, limit = CONNECTION_IN_FLIGHT) {
    this.#connection = connection;
    this.#limit = limit;
    this.#run = run;
  }

  /** Requests read from the connection, in order. */
  push(requests: readonly T[]): void {
    this.#waiting.push(...requests);
    this.#flow();
  }

  /** The connection's answers are backing up: take no more requests until {@link drained}. */
  full(): void {
    this.#writable = false;
  }

  /** The answers that backed up are written: go on. */
  drained(): void {
    this.#writable = true;
    this.#flow();
  }

  /** The connection is closing: the requests still waiting are dropped. */
  close(): void {
    this.#closed = true;
    this.#waiting.length = 0;
  }

  #flow(): void {
    while (!this.#closed && this.#writable && this.#inFlight < this.#limit && this.#waiting.length) {
      const running = this.#run(this.#waiting.shift()!);
      if (running) {
        this.#inFlight += 1;
        running.then(this.#done, this.#done);
      }
    }
    if (this.#closed) return;
    const read = this.#writable && this.#inFlight < this.#limit && this.#waiting.length === 0;
    if (read === this.#reading) return;
    this.#reading = read;
    if (read) this.#connection.resume();
    else this.#connection.pause();
  }
}
