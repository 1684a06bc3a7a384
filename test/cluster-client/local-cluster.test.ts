/**
 * startLocalCluster: activation, provisioned users, sessions, typed requests and errors.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { open } from 'lmdb';
import { HsmError, startLocalCluster, type LocalCluster } from '../../src/index.js';
import { projectModule } from '../helpers/entry.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);

async function rejects(promise: Promise<unknown>, code: string): Promise<HsmError> {
  try {
    await promise;
  } catch (e) {
    expect(e).to.be.instanceOf(HsmError);
    expect((e as HsmError).code, (e as HsmError).message).to.equal(code);
    return e as HsmError;
  }
  return expect.fail(`expected a refusal with ${code}`);
}

describe('cluster-client: startLocalCluster', () => {
  let cluster: LocalCluster;
  afterEach(async () => cluster?.close());

  it('starts an activated one-member cluster with the users it was given', async () => {
    cluster = await startLocalCluster({
      adminPassword: 'admin-password',
      users: [
        { username: 'App', password: 'app-password', role: 'crypto-user' },
        { username: 'ops', password: 'ops-password', role: 'admin' },
      ],
    });
    const [info] = await cluster.hsmInfo();
    expect(info).to.include({ state: 'active', profile: 'cloudhsm', memberIndex: 0 });
    expect((await cluster.listUsers()).map((u) => `${u.username}:${u.role}`)).to.deep.equal([
      'admin:admin',
      'app:crypto-user',
      'app_user:appliance',
      'ops:admin',
    ]);
    const admin = await cluster.login('admin', 'admin-password', { role: 'admin' });
    expect(admin.role).to.equal('admin');
    const app = await cluster.login('app', 'app-password');
    expect(app).to.include({ username: 'app', role: 'crypto-user' });
  });

  it('a session sends typed requests and throws HsmError for refusals', async () => {
    cluster = await startLocalCluster({ adminPassword: 'admin-password', users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }] });
    const session = await cluster.login('app', 'app-password');
    const { handle } = await session.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true, decrypt: true } });
    const sealed = await session.send({ op: 'encrypt', handle, mechanism: { name: 'cloudhsm-aes-gcm' }, data: new Uint8Array([1, 2, 3]) });
    const opened = await session.send({ op: 'decrypt', handle, mechanism: { name: 'cloudhsm-aes-gcm' }, data: sealed.data });
    expect([...opened.data]).to.deep.equal([1, 2, 3]);
    const e = await rejects(session.send({ op: 'sign', handle, mechanism: { name: 'cmac' }, data: new Uint8Array(1) }), 'ATTRIBUTE_FORBIDS_OPERATION');
    expect(e.message).to.equal(`key 0x${handle.toString(16).padStart(16, '0')} has sign=false, so it cannot sign`);
    expect(e.name).to.equal('HsmError');
  });

  it('logout ends the session and its session keys', async () => {
    cluster = await startLocalCluster({ adminPassword: 'admin-password', users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }] });
    const session = await cluster.login('app', 'app-password');
    await session.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16 });
    expect((await cluster.hsmInfo())[0]!.keys).to.equal(1);
    await session.logout();
    expect(session.isOpen).to.equal(false);
    await rejects(session.send({ op: 'findKeys' }), 'NOT_LOGGED_IN');
    expect((await cluster.hsmInfo())[0]!.keys).to.equal(0);
  });

  it('refuses bad options with a clear error', async () => {
    await rejects(startLocalCluster({} as never), 'BAD_REQUEST');
    const e = await rejects(startLocalCluster({ adminPassword: 'admin-password', members: 0 }), 'BAD_REQUEST');
    expect(e.message).to.equal('members: 1–32, got 0');
    await rejects(startLocalCluster({ adminPassword: 'admin-password', transport: 'carrier-pigeon' as never }), 'BAD_REQUEST');
    await rejects(startLocalCluster({ adminPassword: 'short' }), 'INVALID_PASSWORD');
    await rejects(startLocalCluster({ adminPassword: 'admin-password', profile: 'fast' as never }), 'BAD_REQUEST');
    await rejects(startLocalCluster({ adminPassword: 'admin-password', users: [{ username: 'bad name', password: 'app-password', role: 'crypto-user' }] }), 'INVALID_USERNAME');
  });

  it('STRONGROOM_PASSWORD_COST sets the password cost of clusters started without passwordCost, and a bad value is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-cost-'));
    const costs = async (dataDir: string) => {
      const db = open({ path: join(dataDir, 'member-0', 'store'), compression: false, readOnly: true });
      try {
        return ['admin', 'app'].map((name) => (db.get(`user/${name}`) as { password: { log2N: number } }).password.log2N);
      } finally {
        await db.close();
      }
    };
    const was = process.env.STRONGROOM_PASSWORD_COST;
    try {
      process.env.STRONGROOM_PASSWORD_COST = '11';
      await (await startLocalCluster({ adminPassword: 'admin-password', dataDir: join(dir, 'a'), users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }] })).close();
      expect(await costs(join(dir, 'a'))).to.deep.equal([11, 11]);
      // An explicit option wins over the environment.
      await (await startLocalCluster({ adminPassword: 'admin-password', passwordCost: 10, dataDir: join(dir, 'b'), users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }] })).close();
      expect(await costs(join(dir, 'b'))).to.deep.equal([10, 10]);
      for (const bad of ['9', '21', 'cheap']) {
        process.env.STRONGROOM_PASSWORD_COST = bad;
        const e = await rejects(startLocalCluster({ adminPassword: 'admin-password', dataDir: join(dir, 'c') }), 'BAD_REQUEST');
        expect(e.message).to.equal(`STRONGROOM_PASSWORD_COST: a whole number 10–20, got "${bad}"`);
      }
    } finally {
      if (was === undefined) delete process.env.STRONGROOM_PASSWORD_COST;
      else process.env.STRONGROOM_PASSWORD_COST = was;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a closed cluster refuses logins; its sessions get MEMBER_CLOSED', async () => {
    cluster = await startLocalCluster({ adminPassword: 'admin-password', profile: 'unlimited' });
    const admin = await cluster.login('admin', 'admin-password');
    await cluster.close();
    await rejects(cluster.login('admin', 'admin-password'), 'MEMBER_CLOSED');
    await rejects(admin.send({ op: 'listUsers' }), 'MEMBER_CLOSED');
  });

  it('a TLS cluster without a data folder leaves no folder behind: at close, or when its process exits without closing it', async function () {
    this.timeout(60_000);
    const cluster = await startLocalCluster({ members: 1, transport: 'tls', passwordCost: 10, adminPassword: 'admin-password' });
    const closedDir = cluster.tls!.dataDir;
    expect(existsSync(join(closedDir, 'customerCA.key'))).to.equal(true);
    await cluster.close();
    expect(existsSync(closedDir)).to.equal(false);
    // A script that ends without close: the folder goes with the process.
    const { file, loader } = projectModule('index');
    const script = `import { startLocalCluster } from ${JSON.stringify(pathToFileURL(file).href)};\nconst c = await startLocalCluster({ members: 1, transport: 'tls', passwordCost: 10, adminPassword: 'admin-password' });\nconsole.log(c.tls.dataDir);\nprocess.exit(0);\n`;
    const { stdout } = await run(process.execPath, [...loader, '--input-type=module', '-e', script], { cwd: ROOT });
    const leftDir = stdout.trim();
    expect(leftDir.startsWith(join(tmpdir(), 'strongroom-cluster-')), stdout).to.equal(true);
    expect(existsSync(leftDir)).to.equal(false);
  });
});
