/**
 * The PKCS #11 door against frames that are not quite right: captured requests with bytes
 * changed, cut short or lengthened, and frames whose lengths lie. Every one gets an answer or its
 * connection closed; the door keeps serving the others, and nothing in the HSM changes.
 */
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import type { LocalCluster } from '../../src/index.js';
import { FrameReader, encodeFrame, writeMessage } from '../../src/pkcs11/codec.js';
import type { Pkcs11Door } from '../../src/pkcs11/index.js';
import { openTestDoor, type TestDoor } from '../helpers/p11-rpc.js';
import { seeded, testSeed } from '../helpers/random.js';

const CAPTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors', 'pkcs11', 'mitm-keygen.txt');

/** The request bodies of a capture. */
function requests(): Buffer[] {
  const lines = readFileSync(CAPTURES, 'utf8').split('\n');
  const out: Buffer[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/C->S code=/.test(lines[i]!)) continue;
    let j = i + 1;
    while (!lines[j]!.trimStart().startsWith('body:')) j++;
    let hex = lines[j]!.trim().slice(5).trim();
    for (j += 1; j < lines.length && /^\s{8}[0-9a-f]+$/.test(lines[j]!); j++) hex += lines[j]!.trim();
    out.push(Buffer.from(hex, 'hex'));
  }
  return out;
}

/** Sends the version byte and frames on a new connection; resolves with the frames answered and whether the door closed it. */
function exchange(socket: string, frames: Buffer[], waitFor: number): Promise<{ answered: number[]; closed: boolean }> {
  return new Promise((resolve) => {
    const answered: number[] = [];
    const reader = new FrameReader();
    let first = true;
    const s = createConnection(socket, () => s.write(Buffer.concat([Buffer.from([0]), ...frames])));
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ answered, closed });
    };
    // A frame whose length promises more than was sent waits for bytes that never come: that is
    // not an answer, and the client gives up (as a real one's timeout would).
    const timer = setTimeout(() => done(false), 300);
    s.on('data', (d: Buffer) => {
      const frames = reader.push(first ? d.subarray(1) : d);
      first = false;
      answered.push(...frames.map((f) => f.code));
      if (answered.length >= waitFor) done(false);
    });
    s.on('close', () => done(true));
    s.on('error', () => done(true));
  });
}

describe('pkcs11: the door under malformed frames', function () {
  this.timeout(60_000);
  let fixture: TestDoor | undefined;
  let cluster: LocalCluster;
  let door: Pkcs11Door;
  before(async () => {
    fixture = await openTestDoor('strongroom-p11-fuzz-');
    ({ cluster, door } = fixture);
  });
  after(() => fixture?.close());

  const seed = testSeed(20261202);
  it(`answers or closes every mutated frame and keeps serving; the HSM is unchanged (seed ${seed})`, async () => {
    const r = seeded(seed);
    const bodies = requests();
    const before = JSON.stringify((await cluster.hsmInfo()).map((i) => [i.keys, i.users]));
    const init = writeMessage(1, 'ayyay', [{ data: Buffer.from('PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1'), length: 41 }, 0, { data: Buffer.from([0]), length: 1 }]);
    let closed = 0;
    let answered = 0;
    for (let i = 0; i < 300; i++) {
      const body = Buffer.from(bodies[r.below(bodies.length)]!);
      const mutation = r.below(4);
      let mutated: Buffer;
      if (mutation === 0) {
        for (let n = 1 + r.below(4); n > 0; n--) body[r.below(body.length)] = r.below(256);
        mutated = body;
      } else if (mutation === 1) mutated = body.subarray(0, r.below(body.length));
      else if (mutation === 2) mutated = Buffer.concat([body, r.bytes(1 + r.below(16))]);
      else mutated = r.bytes(r.below(64));
      const frame = encodeFrame(0x11, mutated);
      if (r.below(8) === 0) frame.writeUInt32BE(r.below(0xffffffff), 8); // a length that lies
      const out = await exchange(door.socket, [encodeFrame(0x10, init), frame], 2);
      if (out.closed) closed++;
      else answered++;
    }
    // Both outcomes happened, and the door still serves a well-formed client.
    expect(closed).to.be.greaterThan(0);
    expect(answered).to.be.greaterThan(0);
    const healthy = await exchange(door.socket, [encodeFrame(0x10, init), encodeFrame(0x11, writeMessage(3, '', []))], 2);
    expect(healthy.answered).to.deep.equal([0x10, 0x11]);
    expect(JSON.stringify((await cluster.hsmInfo()).map((i) => [i.keys, i.users]))).to.equal(before);
    expect(door.connections).to.be.lessThan(3);
  });
});
