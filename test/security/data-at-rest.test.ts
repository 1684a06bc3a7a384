/**
 * Data at rest (issue 14, items 10 and 11): with a passphrase, a copy of the cluster folder opens
 * no key and no backup — its files hold no backup key in the clear, and neither a start on the
 * copy nor a restore of its backups onto a member the copier runs gets anywhere without the
 * passphrase. Without one, the folder is the secret, and that is said. A private key exported
 * under a password is PBES2 with at least 100,000 PBKDF2 iterations, and short passwords are
 * refused.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { createMember } from '../../src/hsm-core/index.js';
import { BackupStore } from '../../src/cluster-client/index.js';
import { activatedMember } from '../helpers/member.js';
import { refusal } from '../helpers/refusal.js';

/** Every file under `dir`, with its bytes. */
function filesOf(dir: string): { path: string; bytes: Buffer }[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => ({ path, bytes: readFileSync(path) }));
}

describe('security: a copy of the data folder', function () {
  this.timeout(60_000);
  const passphrase = 'correct horse battery';
  let root: string;
  let folder: string;
  let backupId: string;
  let handle: number;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'strongroom-rest-'));
    folder = join(root, 'cluster');
    const cluster: LocalCluster = await startLocalCluster({
      dataDir: folder,
      passphrase,
      passwordCost: 10,
      adminPassword: 'admin-password',
      users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }],
    });
    try {
      expect(cluster.keyProtection).to.equal('passphrase');
      const app = await cluster.login('app', 'app-password');
      ({ handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, extractable: false, encrypt: true } }));
      backupId = (await cluster.takeBackup()).backupId;
    } finally {
      await cluster.close();
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('item 10: with a passphrase, the folder holds no backup key or storage key in the clear', () => {
    const names = filesOf(folder).map((f) => f.path.slice(folder.length + 1));
    expect(names).to.include('installation-keys.json');
    expect(names).not.to.include('service.key');
    expect(names).not.to.include('manufacturer.key');
    expect(names.filter((n) => n.endsWith('storage-key'))).to.deep.equal([]);
    expect(names.filter((n) => n.endsWith('storage-key.json'))).to.have.length(1);
  });

  it('item 10: a start on a copy of the folder without the passphrase, or with a wrong one, opens nothing', async () => {
    const copy = join(root, 'copy');
    cpSync(folder, copy, { recursive: true });
    rmSync(join(copy, '.lock'), { force: true });
    const none = await refusal(startLocalCluster({ dataDir: copy, passwordCost: 10, adminPassword: 'admin-password' }));
    expect(none.message).to.contain('protected by a passphrase');
    const wrong = await refusal(startLocalCluster({ dataDir: copy, passphrase: 'not the passphrase', passwordCost: 10, adminPassword: 'admin-password' }));
    expect(wrong.message).to.contain('wrong passphrase');
    // A member the copier runs on a copied member folder does not open either.
    const member = await refusal(createMember({ dataDir: join(copy, 'member-0'), passwordCost: 10 }));
    expect(member.message).to.contain('protected by a passphrase');
  });

  it('item 10: a backup from the copy does not restore onto a member the copier runs, with any keys the folder gives', async () => {
    const backup = new BackupStore(join(folder, 'backups')).read(backupId);
    // What a copier has: the folder's files. No 32-byte file there is a key the backup opens with.
    const candidates = filesOf(folder).map((f) => f.bytes).filter((b) => b.length === 32);
    for (const serviceKey of [...candidates, new Uint8Array(32)]) {
      for (const manufacturerKey of [...candidates, new Uint8Array(32)]) {
        const target = await createMember({ passwordCost: 10, serviceKey, manufacturerKey });
        const r = await target.handle({ op: 'restoreBackup', backup });
        expect(r.ok).to.equal(false);
        await target.close();
      }
    }
    // The installation itself (its wrapped keys and the passphrase) restores it.
    const restored = join(root, 'restored');
    mkdirSync(restored);
    copyFileSync(join(folder, 'installation-keys.json'), join(restored, 'installation-keys.json'));
    const without = await refusal(startLocalCluster({ dataDir: restored, passwordCost: 10, fromBackup: { dir: join(folder, 'backups'), backupId } }));
    expect(without.message).to.contain('protected by a passphrase');
    const cluster = await startLocalCluster({ dataDir: restored, passphrase, passwordCost: 10, fromBackup: { dir: join(folder, 'backups'), backupId } });
    try {
      const app = await cluster.login('app', 'app-password');
      expect((await app.send({ op: 'getAttributes', handle })).attributes.extractable).to.equal(false);
    } finally {
      await cluster.close();
    }
  });

  it('item 10: without a passphrase the backup keys are files only their owner reads (and strongroom up says the folder is the secret: test/cli/up)', async () => {
    const plain = join(root, 'plain');
    const cluster = await startLocalCluster({ dataDir: plain, passwordCost: 10, adminPassword: 'admin-password' });
    await cluster.close();
    expect(cluster.keyProtection).to.equal('files');
    for (const name of ['service.key', 'manufacturer.key']) expect(statSync(join(plain, name)).mode & 0o777).to.equal(0o600);
  });
});

describe('security: a private key exported under a password', () => {
  it('item 11: is PBES2 with PBKDF2 at 100,000 iterations or more, refuses short passwords, and opens in openssl', async () => {
    const f = await activatedMember();
    const { privateHandle } = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true, extractable: true }, publicAttributes: {} });
    const short = await f.m.fail({ op: 'exportEncryptedKey', session: f.alice, handle: privateHandle, password: 'abcd' }, 'BAD_REQUEST');
    expect(short.message).to.equal('exportEncryptedKey.password: at least 8 characters');
    const { encryptedPrivateKeyInfo } = await f.m.ok({ op: 'exportEncryptedKey', session: f.alice, handle: privateHandle, password: 'eight-or-more' });
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-p8-'));
    try {
      const file = join(dir, 'key.p8');
      writeFileSync(file, encryptedPrivateKeyInfo);
      const parsed = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-in', file], { encoding: 'utf8' });
      expect(parsed).to.contain('PBES2');
      expect(parsed).to.contain('PBKDF2');
      expect(parsed).to.contain('hmacWithSHA256');
      expect(parsed).to.contain('aes-256-cbc');
      const iterations = parseInt(/PBKDF2[\s\S]*?INTEGER\s+:([0-9A-F]+)/.exec(parsed)![1]!, 16);
      expect(iterations).to.be.at.least(100_000);
      const pem = execFileSync('openssl', ['pkcs8', '-inform', 'DER', '-in', file, '-passin', 'pass:eight-or-more'], { encoding: 'utf8' });
      expect(pem).to.contain('BEGIN PRIVATE KEY');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
