/**
 * A client that never reads its answers (issue 14, smaller items): the TLS host stops taking its
 * requests while its answers back up, so the member does not buffer without bound; once the
 * client reads, every request is answered.
 */
import { rmSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { expect } from 'chai';
import { encodeFrame, FrameReader } from '../../src/hsm-core/index.js';
import { startMember, type Fixture } from '../helpers/tls-member.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('security: a TLS client that stops reading', function () {
  this.timeout(60_000);
  let f: Fixture;
  before(async () => {
    f = await startMember();
  });
  after(async () => {
    await f.served.close();
    await f.member.close();
    rmSync(f.dir, { recursive: true, force: true });
  });

  it('has its requests left unread while its answers back up, and all answered once it reads', async () => {
    const REQUESTS = 3000;
    const socket = tlsConnect({ host: '127.0.0.1', port: f.served.port, ca: f.anchor.pem, cert: f.client.cert, key: f.client.key, minVersion: 'TLSv1.3' });
    const reader = new FrameReader(1 << 24);
    const answers = new Map<number, { ok: boolean }>();
    let session: string | undefined;
    socket.on('data', (chunk: Buffer) => {
      for (const { id, body } of reader.push(chunk)) {
        answers.set(id, body as { ok: boolean });
        if (id === 1) session = (body as { result: { session: string } }).result.session;
      }
    });
    await new Promise((r) => socket.once('secureConnect', r));
    socket.write(encodeFrame(1, { op: 'login', username: 'app', password: 'app-password' }));
    while (session === undefined) await sleep(5);
    const start = f.handled.count;
    // 3,000 requests for 64 KiB each (190 MB of answers), and the client stops reading.
    socket.pause();
    for (let id = 2; id < REQUESTS + 2; id++) socket.write(encodeFrame(id, { op: 'generateRandom', session, length: 65_536 }));
    // Wait until the member stops taking requests: the count stays still for a while.
    let last = -1;
    for (let still = 0; still < 5; ) {
      await sleep(40);
      const now = f.handled.count;
      still = now === last ? still + 1 : 0;
      last = now;
    }
    const taken = f.handled.count - start;
    expect(taken, `${taken} requests taken while the client did not read`).to.be.below(REQUESTS / 3);
    socket.resume();
    while (answers.size < REQUESTS + 1) await sleep(20);
    expect([...answers.values()].every((a) => a.ok)).to.equal(true);
    socket.destroy();
  });
});
