/**
 * The audit log (CLOUDHSM.md §6): management operations are recorded, successes and refusals,
 * with gap-free sequence numbers and a hash chain that verifies and that catches a changed,
 * removed or reordered record.
 */
import { expect } from 'chai';
import { GENESIS_HASH, verifyAuditChain, type AuditRecord } from '../../src/hsm-core/index.js';
import { activatedMember, bytes, freshMember, type Fixture } from '../helpers/member.js';

async function records(f: Fixture): Promise<AuditRecord[]> {
  return (await f.m.ok({ op: 'getAuditLog', session: f.admin, maxItems: 10_000 })).records;
}

async function after(f: Fixture, sequence: number): Promise<AuditRecord[]> {
  return (await records(f)).filter((r) => r.sequence > sequence);
}

async function head(f: Fixture): Promise<number> {
  return (await f.m.ok({ op: 'getHsmInfo' })).auditHead.sequence;
}

describe('hsm-core: audit log', () => {
  it('a new member starts with the initialisation records, chained from the genesis hash', async () => {
    const m = await freshMember();
    await m.ok({ op: 'activateCluster', password: 'admin-password' });
    const admin = await m.login('admin', 'admin-password');
    const log = (await m.ok({ op: 'getAuditLog', session: admin })).records;
    expect(log.slice(0, 6).map((r) => r.opcode)).to.deep.equal([
      'CN_INIT_TOKEN',
      'CN_GEN_PSWD_ENC_KEY',
      'CN_CREATE_APPLIANCE_USER',
      'CN_INIT_DONE',
      'CN_CHANGE_PSWD',
      'CN_LOGIN',
    ]);
    expect(log[0]!.previousHash).to.equal(GENESIS_HASH).and.to.equal('0'.repeat(64));
    expect(log[4]).to.include({ user: 'admin', userType: 'unactivated-admin', targetUser: 'admin', response: 'SUCCESS' });
    expect(log.map((r) => r.sequence)).to.deep.equal(log.map((_, i) => i));
    expect(verifyAuditChain(log)).to.deep.equal({ ok: true, records: log.length });
  });

  it('records management operations with who, on what, and the outcome; not crypto operations', async () => {
    const f = await activatedMember();
    const start = await head(f);
    const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true, wrap: true, token: true } })).handle;
    await f.m.ok({ op: 'encrypt', session: f.alice, handle: key, mechanism: { name: 'aes-gcm' }, data: bytes('00') });
    await f.m.ok({ op: 'digest', session: f.alice, hash: 'sha256', data: bytes('00') });
    await f.m.ok({ op: 'findKeys', session: f.alice });
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: key, username: 'bob' });
    const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1' });
    await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-zero-pad' }, wrappingHandle: key, payloadHandle: pair.privateHandle });
    await f.m.ok({ op: 'exportKey', session: f.alice, handle: pair.publicHandle, format: 'spki' });
    await f.m.ok({ op: 'setAttributes', session: f.admin, handle: key, attributes: { trusted: true } });
    await f.m.fail({ op: 'deleteKey', session: f.bob, handle: key }, 'NOT_KEY_OWNER');
    await f.m.fail({ op: 'login', username: 'alice', password: 'wrong-password' }, 'LOGIN_FAILED');
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle: key });
    const log = await after(f, start);
    const aliceSession = log[0]!.sessionHandle;
    expect(log.map((r) => [r.opcode, r.user, r.keyHandles, r.response, r.targetUser])).to.deep.equal([
      ['CN_GENERATE_KEY', 'alice', [key], 'SUCCESS', null],
      ['CN_SHARE_OBJECT', 'alice', [key], 'SUCCESS', 'bob'],
      ['CN_GENERATE_KEY_PAIR', 'alice', [pair.privateHandle, pair.publicHandle], 'SUCCESS', null],
      ['CN_NIST_AES_WRAP', 'alice', [pair.privateHandle, key], 'SUCCESS', null],
      ['SR_EXPORT_KEY', 'alice', [pair.publicHandle], 'SUCCESS', null],
      ['CN_MODIFY_OBJECT', 'admin', [key], 'SUCCESS', null],
      ['CN_DESTROY_OBJECT', 'bob', [key], 'NOT_KEY_OWNER', null],
      ['CN_LOGIN', 'alice', [], 'LOGIN_FAILED', null],
      ['CN_DESTROY_OBJECT', 'alice', [key], 'SUCCESS', null],
    ]);
    expect(log[0]!.userType).to.equal('crypto-user');
    expect(log.every((r) => r.sessionHandle === null || typeof r.sessionHandle === 'number')).to.equal(true);
    expect(log.filter((r) => r.user === 'alice' && r.opcode !== 'CN_LOGIN').every((r) => r.sessionHandle === aliceSession)).to.equal(true);
    expect(log[7]!.sessionHandle).to.equal(null);
    expect(verifyAuditChain(await records(f)).ok).to.equal(true);
  });

  it('records user management, logins and logouts, and never a session token', async () => {
    const f = await activatedMember();
    const start = await head(f);
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'eve', password: 'eve-password', role: 'admin' });
    const dave = await f.m.login('dave', 'dave-password');
    await f.m.ok({ op: 'logout', session: dave });
    await f.m.ok({ op: 'changePassword', session: f.admin, username: 'dave', password: 'dave-password2' });
    await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'dave' });
    await f.m.fail({ op: 'createUser', session: f.alice, username: 'mallory', password: 'mallory-pw', role: 'admin' }, 'PERMISSION_DENIED');
    const log = await after(f, start);
    expect(log.map((r) => [r.opcode, r.user, r.targetUser, r.response])).to.deep.equal([
      ['CN_CREATE_USER', 'admin', 'dave', 'SUCCESS'],
      ['CN_CREATE_CO', 'admin', 'eve', 'SUCCESS'],
      ['CN_LOGIN', 'dave', null, 'SUCCESS'],
      ['CN_LOGOUT', 'dave', null, 'SUCCESS'],
      ['CN_CHANGE_PSWD', 'admin', 'dave', 'SUCCESS'],
      ['CN_DELETE_USER', 'admin', 'dave', 'SUCCESS'],
      ['CN_CREATE_CO', 'alice', 'mallory', 'PERMISSION_DENIED'],
    ]);
    expect(log[2]!.sessionHandle).to.equal(log[3]!.sessionHandle).and.to.be.a('number');
    const text = JSON.stringify(await records(f));
    for (const token of [f.admin, f.alice, f.bob, dave]) expect(text).to.not.include(token);
    expect(text).to.not.include('dave-password');
  });

  it('detects a changed, removed, reordered or re-hashed record, and names it', async () => {
    const f = await activatedMember();
    await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 });
    const log = await records(f);
    expect(verifyAuditChain(log).ok).to.equal(true);

    const changed = log.map((r) => ({ ...r }));
    changed[5]!.response = 'SUCCESS' === changed[5]!.response ? 'PERMISSION_DENIED' : 'SUCCESS';
    expect(verifyAuditChain(changed)).to.deep.equal({ ok: false, sequence: 5, reason: 'its hash does not match its contents' });

    const removed = log.filter((r) => r.sequence !== 6);
    expect(verifyAuditChain(removed)).to.deep.include({ ok: false, sequence: 7 });

    const reordered = [...log];
    [reordered[3], reordered[4]] = [reordered[4]!, reordered[3]!];
    expect(verifyAuditChain(reordered)).to.deep.include({ ok: false, sequence: 4 });

    // Someone who rewrites a record and recomputes its hash still breaks the link to the next one.
    const { hashRecord } = await import('../../src/hsm-core/audit.js');
    const forged = log.map((r) => ({ ...r }));
    forged[5]!.user = 'mallory';
    const { hash: _old, ...rest } = forged[5]!;
    forged[5]!.hash = hashRecord(rest);
    expect(verifyAuditChain(forged)).to.deep.equal({ ok: false, sequence: 6, reason: 'it does not link to the record before it' });
  });

  it('a change to any field of a record breaks its hash, and a renumbered last record is a gap', async () => {
    const f = await activatedMember();
    await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 });
    const log = await records(f);
    const target = log.map((r) => r.keyHandles.length > 0 && r.targetUser === null).lastIndexOf(true);
    expect(target).to.be.greaterThan(0);
    const fields = Object.keys(log[target]!).filter((k) => k !== 'hash');
    expect(fields).to.have.members(['sequence', 'time', 'rebootCounter', 'opcode', 'sessionHandle', 'user', 'userType', 'targetUser', 'keyHandles', 'response', 'previousHash']);
    const altered = (v: unknown): unknown =>
      typeof v === 'number' ? v + 1 : typeof v === 'string' ? `${v.slice(0, -1)}${v.endsWith('0') ? '1' : '0'}` : Array.isArray(v) ? [...v, 7] : 'mallory';
    for (const field of fields) {
      const copy = log.map((r) => ({ ...r }));
      (copy[target] as Record<string, unknown>)[field] = altered(copy[target]![field as keyof AuditRecord]);
      expect(verifyAuditChain(copy), field).to.deep.equal({ ok: false, sequence: copy[target]!.sequence, reason: 'its hash does not match its contents' });
    }

    // The last record renumbered with a fresh hash still links to the one before: only the gap shows.
    const { hashRecord } = await import('../../src/hsm-core/audit.js');
    const renumbered = log.map((r) => ({ ...r }));
    const last = renumbered.at(-1)!;
    last.sequence += 1;
    const { hash: _old, ...rest } = last;
    last.hash = hashRecord(rest);
    expect(verifyAuditChain(renumbered)).to.deep.equal({ ok: false, sequence: last.sequence, reason: `a gap: it follows record ${last.sequence - 2}` });
  });

  it('can be read in pages, and a page verifies against the record before it', async () => {
    const f = await activatedMember();
    const all = await records(f);
    const page = (await f.m.ok({ op: 'getAuditLog', session: f.admin, fromSequence: 4, maxItems: 3 })).records;
    expect(page.map((r) => r.sequence)).to.deep.equal([4, 5, 6]);
    expect(verifyAuditChain(page, all[3]!.hash).ok).to.equal(true);
    expect(verifyAuditChain(page, all[2]!.hash)).to.deep.equal({ ok: false, sequence: 4, reason: 'it does not link to the record before it' });
    // Without the hash before it, a page is checked within itself; record 0 must start from the genesis hash.
    expect(verifyAuditChain(page)).to.deep.equal({ ok: true, records: 3 });
    const { hashRecord } = await import('../../src/hsm-core/audit.js');
    const { hash: _h, ...first } = { ...all[0]!, previousHash: 'f'.repeat(64) };
    const rebased = [{ ...first, hash: hashRecord(first) }, ...all.slice(1)];
    expect(verifyAuditChain(rebased.slice(0, 1))).to.deep.equal({ ok: false, sequence: 0, reason: 'it does not link to the record before it' });
  });

  it('a log over an archive (a durable member\'s folder) reads across it and memory, chains on from its last record, and lets archived records leave memory', async () => {
    const { AuditLog } = await import('../../src/hsm-core/audit.js');
    const event = (n: number) => ({ opcode: 'CN_LOGIN', sessionHandle: n, user: 'alice', userType: 'crypto-user' as const, targetUser: null, keyHandles: [n], response: 'success' as const });
    const first = new AuditLog(0);
    for (let i = 0; i < 6; i++) first.append(event(i));
    const disk = first.read(0, 100);
    const reads: [number, number][] = [];
    // The archive holds what has been written to disk; the log asks it only for that.
    let written = 6;
    const archive = { count: 6, last: disk[5]!, read: (from: number, max: number) => (reads.push([from, max]), disk.slice(from, Math.min(from + max, written)).map((r) => ({ ...r }))) };
    const log = new AuditLog(1, archive);
    expect(log.head).to.deep.equal({ sequence: 5, hash: disk[5]!.hash });
    for (let i = 6; i < 10; i++) disk.push(log.append(event(i)));
    expect(disk.slice(6).map((r) => r.previousHash)).to.deep.equal(disk.slice(5, 9).map((r) => r.hash));
    expect(verifyAuditChain(log.read(0, 100))).to.deep.equal({ ok: true, records: 10 });
    expect(log.read(4, 4).map((r) => r.sequence)).to.deep.equal([4, 5, 6, 7]);
    expect(reads.at(-1)).to.deep.equal([4, 2]);
    // Records 6 and 7 are written: the archive serves them from now on, memory only 8 and 9.
    written = 8;
    log.archived(8);
    reads.length = 0;
    expect(log.read(7, 2).map((r) => r.sequence)).to.deep.equal([7, 8]);
    expect(reads).to.deep.equal([[7, 1]]);
    expect(log.read(8, 100).map((r) => r.sequence)).to.deep.equal([8, 9]);
    expect(reads).to.have.length(1);
    // Appending goes on from the newest record, whether it is in memory or archived.
    log.archived(10);
    written = 10;
    const next = log.append(event(10));
    expect(next).to.include({ sequence: 10, previousHash: disk[9]!.hash });
    expect(verifyAuditChain(log.read(0, 100))).to.deep.equal({ ok: true, records: 11 });
    // A log with no archive keeps its records.
    first.archived(6);
    expect(first.read(0, 100)).to.have.length(6);
  });

  it('admins read it, and the appliance user (CloudHSM\'s side, which sends it to CloudWatch Logs); crypto users do not', async () => {
    const f = await activatedMember();
    await f.m.fail({ op: 'getAuditLog', session: f.alice }, 'PERMISSION_DENIED');
    const byAppliance = (await f.m.ok({ op: 'getAuditLog', session: f.appliance })).records;
    const byAdmin = await records(f);
    expect(byAppliance.length).to.be.greaterThan(3);
    expect(byAppliance.map((r) => r.hash)).to.deep.equal(byAdmin.slice(0, byAppliance.length).map((r) => r.hash));
  });
});
