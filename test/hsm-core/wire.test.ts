import { expect } from 'chai';
import { createServer, connect, type Socket } from 'node:net';
import { BATCH_LIMIT, FrameReader, encodeFrame, tickBatched } from '../../src/hsm-core/wire.js';
import { perTurn } from '../../src/hsm-core/face.js';

/** A socket that records what leaves together: writes made while corked leave at the last uncork. */
class CorkRecorder {
  depth = 0;
  held: number[] = [];
  /** Each entry: the sizes of the frames that left in one write. */
  sent: number[][] = [];
  cork(): void {
    this.depth += 1;
  }
  uncork(): void {
    this.depth -= 1;
    if (this.depth === 0 && this.held.length) this.sent.push(this.held.splice(0));
  }
  write(chunk: Uint8Array): boolean {
    if (this.depth > 0) this.held.push(chunk.byteLength);
    else this.sent.push([chunk.byteLength]);
    return true;
  }
}

const tick = () => new Promise<void>((resolve) => process.nextTick(resolve));

describe('hsm-core: wire batching', () => {
  it('frames written within one tick leave together when the tick ends', async () => {
    const socket = new CorkRecorder();
    const send = tickBatched(socket);
    for (let i = 0; i < 5; i++) send(new Uint8Array(10));
    expect(socket.sent).to.deep.equal([]);
    await tick();
    expect(socket.sent).to.deep.equal([[10, 10, 10, 10, 10]]);
    send(new Uint8Array(7));
    await tick();
    expect(socket.sent).to.deep.equal([[10, 10, 10, 10, 10], [7]]);
    expect(socket.depth).to.equal(0);
  });

  it(`a tick's batch leaves early every ${BATCH_LIMIT.frames} frames or ${BATCH_LIMIT.bytes} bytes, so the other side can start on it`, async () => {
    const socket = new CorkRecorder();
    const send = tickBatched(socket);
    const count = BATCH_LIMIT.frames * 2 + 3;
    for (let i = 0; i < count; i++) send(new Uint8Array(10));
    expect(socket.sent.map((w) => w.length)).to.deep.equal([BATCH_LIMIT.frames, BATCH_LIMIT.frames]);
    await tick();
    expect(socket.sent.map((w) => w.length)).to.deep.equal([BATCH_LIMIT.frames, BATCH_LIMIT.frames, 3]);

    const big = new CorkRecorder();
    const sendBig = tickBatched(big);
    const size = BATCH_LIMIT.bytes / 4;
    for (let i = 0; i < 6; i++) sendBig(new Uint8Array(size));
    expect(big.sent).to.deep.equal([[size, size, size, size]]);
    await tick();
    expect(big.sent).to.deep.equal([[size, size, size, size], [size, size]]);
    expect(big.depth).to.equal(0);
  });

  it('over a real connection, a tick of many frames arrives whole and in order', async () => {
    const received: number[] = [];
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const count = BATCH_LIMIT.frames * 5 + 1;
    const server = createServer((socket: Socket) => {
      const reader = new FrameReader();
      socket.on('data', (chunk: Buffer) => {
        for (const { id, body } of reader.push(chunk)) {
          expect((body as { n: number }).n).to.equal(id);
          received.push(id);
        }
        if (received.length === count) done();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const client = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => client.once('connect', resolve));
    const send = tickBatched(client);
    for (let id = 1; id <= count; id++) send(encodeFrame(id, { n: id, pad: new Uint8Array(id * 7) }));
    await all;
    expect(received).to.deep.equal(Array.from({ length: count }, (_, i) => i + 1));
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

describe('hsm-core: perTurn (batches of a worker port, a relay connection)', () => {
  it('hands a turn\'s items over together; with a maximum, a full batch leaves at once and the rest when the turn ends, with one end of turn scheduled', () => {
    const batches: number[][] = [];
    const ends: (() => void)[] = [];
    const push = perTurn<number>((items) => batches.push(items), (end) => ends.push(end), 3);
    for (let i = 1; i <= 7; i++) push(i);
    expect(batches).to.deep.equal([[1, 2, 3], [4, 5, 6]]);
    expect(ends).to.have.length(1);
    ends[0]!();
    expect(batches).to.deep.equal([[1, 2, 3], [4, 5, 6], [7]]);
    // Exactly a full batch: it leaves at once, and the end of the turn has nothing left to send.
    for (let i = 8; i <= 10; i++) push(i);
    expect(ends).to.have.length(2);
    ends[1]!();
    expect(batches.slice(3)).to.deep.equal([[8, 9, 10]]);
    const unlimited: number[][] = [];
    const later: (() => void)[] = [];
    const all = perTurn<number>((items) => unlimited.push(items), (end) => later.push(end));
    for (let i = 0; i < 100; i++) all(i);
    later[0]!();
    expect(unlimited.map((b) => b.length)).to.deep.equal([100]);
    expect(later).to.have.length(1);
  });
});
