/**
 * An application on the PKCS #11 door that opens connections or sessions in a loop: the door
 * serves at most maxConnections connections and maxSessions sessions per connection, turns away
 * the one over (the connection closed and logged; C_OpenSession refused CKR_SESSION_COUNT), and
 * its other applications carry on. Without the limits each would grow the door's memory (and its
 * open files) without bound.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import type { LocalCluster } from '../../src/index.js';
import { servePkcs11, type Pkcs11Door } from '../../src/pkcs11/index.js';
import { CKF, CKR } from '../../src/pkcs11/constants.js';
import { RpcClient, openTestDoor, type TestDoor } from '../helpers/p11-rpc.js';
import { refusal, rejection } from '../helpers/refusal.js';
import { waitUntil } from '../helpers/wait.js';

const bytes = (b: Buffer) => ({ data: b, length: b.length });
const INIT = [bytes(Buffer.from('PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1')), 0, bytes(Buffer.from([0]))];
const SERIAL = BigInt(CKF.SERIAL_SESSION);

describe('security: the PKCS #11 door limits connections and sessions', function () {
  this.timeout(60_000);
  let fixture: TestDoor;
  let cluster: LocalCluster;
  let door: Pkcs11Door;
  let dir: string;
  const logged: string[] = [];
  const clients: RpcClient[] = [];

  before(async () => {
    fixture = await openTestDoor('strongroom-p11-limits-', { maxConnections: 2, maxSessions: 3, log: (line) => logged.push(line) });
    ({ cluster, door, dir } = fixture);
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });
  after(() => fixture.close());

  async function client(): Promise<RpcClient> {
    const c = await RpcClient.connect(door.socket, 'p11-kit-0.24');
    clients.push(c);
    await c.call('C_Initialize', INIT);
    return c;
  }

  /** A raw connection that sends the version byte: what it receives before the door closes it, if the door does. */
  function rawConnection(): Promise<{ socket: Socket; received: () => number; closed: () => boolean }> {
    return new Promise((resolve, reject) => {
      let received = 0;
      let closed = false;
      const socket = createConnection(door.socket, () => {
        socket.write(Buffer.from([0]));
        resolve({ socket, received: () => received, closed: () => closed });
      });
      socket.once('close', () => (closed = true));
      socket.on('data', (d: Buffer) => (received += d.length));
      socket.on('error', () => undefined);
      socket.once('error', reject);
    });
  }

  it('turns away a connection over maxConnections, says why in its log, and serves the open ones and a later one', async () => {
    const [a, b] = [await client(), await client()];
    await waitUntil(() => door.connections === 2, 'two connections open');
    const third = await rawConnection();
    await waitUntil(third.closed, 'the door closing the connection over its limit');
    expect(third.received(), 'bytes the door sent the connection over its limit').to.equal(0);
    expect(logged).to.include("refused a PKCS #11 connection: 2 are open, the door's limit (maxConnections); an application must close one first");
    expect(door.connections).to.equal(2);
    // The two open connections carry on.
    for (const c of [a, b]) expect(await c.call('C_OpenSession', [1n, SERIAL])).to.have.length(1);
    // Once one closes, another is served.
    a.close();
    await waitUntil(() => door.connections === 1, 'the closed connection gone');
    const d = await client();
    expect(await d.call('C_OpenSession', [1n, SERIAL])).to.have.length(1);
  });

  it('refuses a session over maxSessions with CKR_SESSION_COUNT, reports the limit in C_GetTokenInfo, and opens one again once one closes', async () => {
    const c = await client();
    const sessions: bigint[] = [];
    for (let i = 0; i < 3; i++) sessions.push(((await c.call('C_OpenSession', [1n, SERIAL])) as [bigint])[0]);
    expect(await c.refusal('C_OpenSession', [1n, SERIAL])).to.equal(CKR.SESSION_COUNT);
    const info = await c.call('C_GetTokenInfo', [1n]);
    // ulMaxSessionCount, ulSessionCount, ulMaxRwSessionCount.
    expect(info.slice(5, 8)).to.deep.equal([3n, 3n, 3n]);
    // Another connection has sessions of its own.
    const other = await client();
    expect(await other.call('C_OpenSession', [1n, SERIAL])).to.have.length(1);
    await c.call('C_CloseSession', [sessions[0]!]);
    expect(await c.call('C_OpenSession', [1n, SERIAL])).to.have.length(1);
    expect(await c.refusal('C_OpenSession', [1n, SERIAL])).to.equal(CKR.SESSION_COUNT);
  });

  it('refuses limits that are not positive integers, before it makes the socket', async () => {
    const socket = join(dir, 'bad', 'pkcs11.sock');
    for (const [options, message] of [
      [{ maxConnections: 0 }, 'maxConnections: a positive integer, got 0'],
      [{ maxSessions: 1.5 }, 'maxSessions: a positive integer, got 1.5'],
    ] as const) {
      expect(await refusal(servePkcs11({ cluster, socket, ...options }))).to.include({ code: 'BAD_REQUEST', message });
    }
    expect(existsSync(dirname(socket))).to.equal(false);
  });

  it('strongroom pkcs11 serve refuses --max-connections and --max-sessions out of range, naming the flag', async () => {
    const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'src', 'cli', 'main.js');
    const socket = join(dir, 'cli', 'pkcs11.sock');
    for (const [flag, value, message] of [
      ['--max-connections', '0', '--max-connections: an integer from 1 to 65536, got "0"'],
      ['--max-sessions', 'many', '--max-sessions: an integer from 1 to 1000000, got "many"'],
    ] as const) {
      const run = (await rejection(promisify(execFile)(process.execPath, [bin, 'pkcs11', 'serve', '--socket', socket, flag, value]))) as Error & { code: number; stderr: string };
      expect(run.code).to.equal(1);
      expect(run.stderr).to.include(message);
    }
    expect(existsSync(dirname(socket))).to.equal(false);
  });
});
