/**
 * The relay's floor: an operation of `session.crypto` behind a bare WebSocket on loopback, in the
 * relay table's arrangement (client and server in this process, on one thread; the requests made
 * in one turn leave together, at most {@link RELAY_BATCH_MAX} a frame, and so do the answers
 * finished in one turn), with nothing else: no codec (a request is a 4-byte slot and the data's
 * bytes, an answer a slot and the result's), no relay (no login, no checks, no session added) and
 * no page client: the WebCrypto checks, which a relayed call makes in the page's client, are made
 * once, by `session.crypto` on the server's side. Each answer is still copied into an ArrayBuffer
 * of its own, as a WebCrypto result must be. Whatever a relay does beyond carrying the bytes comes
 * on top, so the relay table prints this beside the relay as its floor, as the TLS table prints a
 * bare TLS echo beside a TLS member.
 *
 * @module
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { perTurn } from '../src/hsm-core/face.js';
import { RELAY_BATCH_MAX } from '../src/relay/protocol.js';

const SLOT = 4;
const nextTurn = (end: () => void) => void setImmediate(end);

export interface WsFloor {
  /** `data` (always `requestBytes` long) to the server's `serve`, and its answer back. */
  call(data: Uint8Array): Promise<ArrayBuffer>;
  close(): Promise<void>;
}

/** Frames of records, each a slot and `size` bytes, in one buffer. */
function frame(records: Array<{ slot: number; bytes: Uint8Array }>, size: number): Buffer {
  const out = Buffer.allocUnsafe(records.length * (SLOT + size));
  records.forEach(({ slot, bytes }, i) => {
    out.writeUInt32LE(slot, i * (SLOT + size));
    out.set(bytes, i * (SLOT + size) + SLOT);
  });
  return out;
}

/**
 * Starts the floor's server on 127.0.0.1 and connects its client. Every request is `requestBytes`
 * long and every answer `answerBytes` (an operation whose output has a fixed length).
 */
export async function startWsFloor(serve: (data: Uint8Array<ArrayBuffer>) => Promise<ArrayBuffer>, requestBytes: number, answerBytes: number): Promise<WsFloor> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  server.on('connection', (socket) => {
    const answer = perTurn<{ slot: number; bytes: Uint8Array }>((answers) => socket.send(frame(answers, answerBytes)), nextTurn, RELAY_BATCH_MAX);
    socket.on('message', (message: Buffer) => {
      for (let at = 0; at < message.length; at += SLOT + requestBytes) {
        const slot = message.readUInt32LE(at);
        void serve(new Uint8Array(message.buffer as ArrayBuffer, message.byteOffset + at + SLOT, requestBytes)).then((result) => answer({ slot, bytes: new Uint8Array(result) }));
      }
    });
  });
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.binaryType = 'arraybuffer';
  await once(client, 'open');
  const waiting = new Map<number, (answer: ArrayBuffer) => void>();
  let nextSlot = 0;
  client.on('message', (message: ArrayBuffer) => {
    const view = new DataView(message);
    for (let at = 0; at < message.byteLength; at += SLOT + answerBytes) {
      const slot = view.getUint32(at, true);
      const resolve = waiting.get(slot)!;
      waiting.delete(slot);
      resolve(message.slice(at + SLOT, at + SLOT + answerBytes));
    }
  });
  const request = perTurn<{ slot: number; bytes: Uint8Array }>((requests) => client.send(frame(requests, requestBytes)), nextTurn, RELAY_BATCH_MAX);
  return {
    call(data) {
      if (data.length !== requestBytes) throw new RangeError(`the floor's requests are ${requestBytes} bytes, not ${data.length}`);
      const slot = nextSlot;
      nextSlot = (nextSlot + 1) >>> 0;
      return new Promise<ArrayBuffer>((resolve) => {
        waiting.set(slot, resolve);
        request({ slot, bytes: data });
      });
    },
    async close() {
      client.close();
      await once(client, 'close');
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}
