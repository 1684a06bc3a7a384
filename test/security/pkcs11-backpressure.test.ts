/**
 * An application that never reads its answers from the PKCS #11 door: the door stops taking its
 * requests while its answers back up, so the door does not buffer without bound (and its other
 * applications carry on); once the application reads, every request is answered. As
 * tls-backpressure.test.ts holds a TLS member host to it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { servePkcs11, type Pkcs11Door } from '../../src/pkcs11/index.js';
import { CALLS, ERROR_CALL, type CallName } from '../../src/pkcs11/calls.js';
import { FrameReader, encodeFrame, readMessage, writeMessage, type Value } from '../../src/pkcs11/codec.js';
import { CKF } from '../../src/pkcs11/constants.js';
import { RpcClient } from '../helpers/p11-rpc.js';
import { waitUntil } from '../helpers/wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bytes = (b: Buffer) => ({ data: b, length: b.length });

describe('security: a PKCS #11 application that stops reading', function () {
  this.timeout(60_000);
  let dir: string;
  let cluster: LocalCluster;
  let door: Pkcs11Door;
  /** Random requests the door has handed to the HSM. */
  let taken = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-p11-backpressure-'));
    cluster = await startLocalCluster({ adminPassword: 'admin-password', passwordCost: 10, users: [{ username: 'cu1', password: 'cu1-password', role: 'crypto-user' }] });
    const counting = {
      login: async (...args: Parameters<LocalCluster['login']>) => {
        const s = await cluster.login(...args);
        const send = s.send.bind(s);
        s.send = ((request: { op: string }) => {
          if (request.op === 'generateRandom') taken += 1;
          return send(request as never);
        }) as typeof s.send;
        return s;
      },
    };
    door = await servePkcs11({ cluster: counting, socket: join(dir, 'run', 'pkcs11.sock') });
  });
  after(async () => {
    await door.close();
    await cluster.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('has its requests left unread while its answers back up, and all answered once it reads', async () => {
    const REQUESTS = 3000;
    const socket = createConnection(door.socket);
    await new Promise((r) => socket.once('connect', r));
    socket.write(Buffer.from([0]));
    const reader = new FrameReader();
    const answers = new Map<number, Buffer>();
    let versionSeen = false;
    socket.on('data', (d: Buffer) => {
      for (const { code, body } of reader.push(versionSeen ? d : d.subarray(1))) answers.set(code, body);
      versionSeen = true;
    });
    const request = (code: number, name: CallName, args: Value[]) => socket.write(encodeFrame(code, writeMessage(CALLS[name][0], CALLS[name][1], args, 'p11-kit-0.24')));
    const answer = (code: number, name: CallName) => {
      const message = readMessage(answers.get(code)!, (call) => (call === ERROR_CALL ? 'u' : CALLS[name][2]), 'p11-kit-0.24');
      expect(message.call, `${name} (frame ${code}) refused`).to.equal(CALLS[name][0]);
      return message.args;
    };
    const call = async (code: number, name: CallName, args: Value[]) => {
      request(code, name, args);
      await waitUntil(() => answers.has(code), `${name} answered`);
      return answer(code, name);
    };
    await call(1, 'C_Initialize', [bytes(Buffer.from('PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1')), 0, bytes(Buffer.from([0]))]);
    const [session] = (await call(2, 'C_OpenSession', [1n, BigInt(CKF.SERIAL_SESSION)])) as [bigint];
    await call(3, 'C_Login', [session, 1n, bytes(Buffer.from('cu1:cu1-password'))]);
    const start = taken;
    // 3,000 requests for 64 KiB each (190 MB of answers), and the application stops reading.
    socket.pause();
    for (let code = 10; code < REQUESTS + 10; code++) request(code, 'C_GenerateRandom', [session, 65_536]);
    // Wait until the door stops taking requests: the count stays still for a while.
    let last = -1;
    for (let still = 0; still < 5; ) {
      await sleep(40);
      still = taken === last ? still + 1 : 0;
      last = taken;
    }
    const took = taken - start;
    expect(took, `${took} requests taken while the application did not read`).to.be.below(REQUESTS / 3);
    // Another application is served meanwhile.
    const other = await RpcClient.connect(door.socket, 'p11-kit-0.24');
    await other.call('C_Initialize', [bytes(Buffer.from('PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1')), 0, bytes(Buffer.from([0]))]);
    const [otherSession] = (await other.call('C_OpenSession', [1n, BigInt(CKF.SERIAL_SESSION)])) as [bigint];
    const [random] = (await other.call('C_GenerateRandom', [otherSession, 32])) as unknown as [{ data: Buffer }];
    expect(random.data).to.have.length(32);
    other.close();
    socket.resume();
    await waitUntil(() => answers.size === REQUESTS + 3, 'every request answered', 60_000);
    for (let code = 10; code < REQUESTS + 10; code++) expect((answer(code, 'C_GenerateRandom')[0] as { data: Buffer }).data).to.have.length(65_536);
    socket.destroy();
  });
});
