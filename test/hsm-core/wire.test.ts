import { expect } from 'chai';
import { createServer, connect, type Socket } from 'node:net';
import { BATCH_LIMIT, FrameReader, RequestFlow, encodeFrame, tickBatched } from '../../src/hsm-core/wire.js';
import { HsmError, perTurn } from '../../src/hsm-core/face.js';

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

describe('hsm-core: FrameReader', () => {
  const two = () => [encodeFrame(1, { data: new Uint8Array([1, 2, 3]) }), encodeFrame(0xffff_fffe, { data: new Uint8Array(300).fill(7), op: 'x' })];

  it('reads the same frames however the stream is cut: whole, at every byte, and one frame over three chunks', () => {
    const stream = Buffer.concat(two());
    const read = (chunks: Buffer[]) => {
      const reader = new FrameReader();
      return chunks.flatMap((c) => [...reader.push(c)]);
    };
    const whole = read([stream]);
    expect(whole.map((f) => f.id)).to.deep.equal([1, 0xffff_fffe]);
    expect((whole[1]!.body as { data: Uint8Array }).data).to.deep.equal(new Uint8Array(300).fill(7));
    for (let cut = 1; cut < stream.length; cut++) expect(read([stream.subarray(0, cut), stream.subarray(cut)])).to.deep.equal(whole);
    expect(read(Array.from(stream, (_, i) => stream.subarray(i, i + 1)))).to.deep.equal(whole);
    const second = two()[1]!;
    expect(read([stream.subarray(0, 20), stream.subarray(20, 200), stream.subarray(200)])).to.deep.equal(whole);
    expect(read([second.subarray(0, 2), second.subarray(2, 9), second.subarray(9)]).map((f) => f.id)).to.deep.equal([0xffff_fffe]);
  });

  it('gives each frame\'s bytes memory of their own, apart from the stream and from the other frames', () => {
    const stream = Buffer.concat(two());
    const [a, b] = new FrameReader().push(stream) as readonly { body: { data: Uint8Array } }[];
    expect(a!.body.data.buffer).to.not.equal(b!.body.data.buffer);
    expect(a!.body.data.buffer).to.not.equal(stream.buffer);
    // Only this frame's body is behind its bytes: nothing of the other frame can be read through .buffer.
    expect(a!.body.data.buffer.byteLength).to.equal(two()[0]!.length - 8);
    stream.fill(0);
    expect(a!.body.data).to.deep.equal(new Uint8Array([1, 2, 3]));
  });

  it('copies a large frame that arrives in many chunks once, not once a chunk (a slow sender cannot make the reader work quadratically)', () => {
    const frame = encodeFrame(5, { data: new Uint8Array(4 << 20).fill(1) });
    const concat = Buffer.concat;
    let copied = 0;
    Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
      const out = concat(list, total);
      copied += out.length;
      return out;
    }) as typeof Buffer.concat;
    let frames: readonly unknown[] = [];
    try {
      const reader = new FrameReader();
      for (let at = 0; at < frame.length; at += 4096) frames = reader.push(frame.subarray(at, at + 4096));
    } finally {
      Buffer.concat = concat;
    }
    expect(frames).to.have.length(1);
    expect(copied).to.be.at.most(frame.length);
  });

  it('refuses a length out of bounds as soon as its header is in, before any body arrives', () => {
    const header = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
    expect(() => new FrameReader(1024).push(header(1025))).to.throw(HsmError, 'frame: 1025 bytes is over the 1024-byte limit');
    expect(() => new FrameReader().push(header(3))).to.throw(HsmError, 'frame: length 3 is shorter than a request id');
    const reader = new FrameReader(1024);
    expect(reader.push(header(1025).subarray(0, 3))).to.deep.equal([]);
    expect(() => reader.push(header(1025).subarray(3))).to.throw(HsmError, 'over the 1024-byte limit');
  });

  it('names the frame whose body is not MessagePack', () => {
    const bad = Buffer.from([0, 0, 0, 5, 0, 0, 0, 9, 0xc1]);
    expect(() => new FrameReader().push(bad)).to.throw(HsmError, /^frame 9: the body is not valid MessagePack/);
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

/** A connection for RequestFlow: whether it reads. */
class FakeConnection {
  reading = true;
  pause(): void {
    this.reading = false;
  }
  resume(): void {
    this.reading = true;
  }
}

describe('hsm-core: RequestFlow (backpressure of a connection)', () => {
  /** A flow whose requests finish when the test says: `finish(n)` settles the n-th started. */
  function flowOf(limit: number) {
    const connection = new FakeConnection();
    const started: number[] = [];
    const finishers: (() => void)[] = [];
    const flow = new RequestFlow<number>(
      connection,
      (n) => {
        started.push(n);
        return new Promise<void>((resolve) => finishers.push(resolve));
      },
      limit,
    );
    const finish = async (k: number) => {
      finishers[k]!();
      await new Promise((r) => setImmediate(r));
    };
    return { connection, started, flow, finish };
  }

  it('works on at most its limit at once, in order; stops reading while at the limit and reads again once below it', async () => {
    const { connection, started, flow, finish } = flowOf(2);
    flow.push([1, 2, 3, 4, 5]);
    expect(started).to.deep.equal([1, 2]);
    expect(connection.reading).to.equal(false);
    await finish(0);
    expect(started).to.deep.equal([1, 2, 3]);
    expect(connection.reading).to.equal(false);
    await finish(1);
    await finish(2);
    expect(started).to.deep.equal([1, 2, 3, 4, 5]);
    expect(connection.reading).to.equal(false);
    await finish(3);
    expect(connection.reading).to.equal(true);
  });

  it('takes nothing more once the answers back up, until they drain', async () => {
    const { connection, started, flow, finish } = flowOf(10);
    flow.push([1]);
    flow.full();
    await finish(0);
    flow.push([2, 3]);
    expect(started).to.deep.equal([1]);
    expect(connection.reading).to.equal(false);
    flow.drained();
    expect(started).to.deep.equal([1, 2, 3]);
    expect(connection.reading).to.equal(true);
  });

  it('drops what waits when the connection closes, and starts nothing after', async () => {
    const { started, flow, finish } = flowOf(1);
    flow.push([1, 2, 3]);
    flow.close();
    await finish(0);
    flow.push([4]);
    expect(started).to.deep.equal([1]);
  });

  it('goes on when a request fails', async () => {
    const connection = new FakeConnection();
    const started: number[] = [];
    const flow = new RequestFlow<number>(
      connection,
      (n) => {
        started.push(n);
        return Promise.reject(new Error(`request ${n} failed`));
      },
      1,
    );
    flow.push([1, 2]);
    await new Promise((r) => setImmediate(r));
    expect(started).to.deep.equal([1, 2]);
    expect(connection.reading).to.equal(true);
  });
});
