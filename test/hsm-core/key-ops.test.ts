/**
 * Key management's own rules (ops/key-ops.ts), each refusal by its message: the parameters of key
 * generation, who may share and unshare, how pages of findKeys run, what a deletion leaves
 * behind, and the checks of wrap, unwrap and derive that the extraction tests do not reach.
 */
import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { filterPredicate } from '../../src/hsm-core/attributes.js';
import { activatedMember, freshMember, PASSWORDS, snapshot, type Fixture } from '../helpers/member.js';
import { seeded, testSeed } from '../helpers/random.js';

const FIND_SEED = testSeed(2025);

const ref = (handle: number) => `0x${handle.toString(16).padStart(16, '0')}`;

/** Sends each request (with alice's session unless it names one) and checks its refusal and message; nothing may change. */
async function refusals(f: Fixture, cases: [Record<string, unknown>, string, string][]): Promise<void> {
  const before = await snapshot(f);
  for (const [request, code, message] of cases) {
    const e = await f.m.fail({ session: f.alice, ...request }, code as 'BAD_REQUEST');
    expect(e.message, `${String(request.op)} ${code}`).to.equal(message);
  }
  expect(await snapshot(f)).to.equal(before);
}

describe('hsm-core: key management rules', () => {
  it('key generation names a parameter that is missing or does not belong', async () => {
    const f = await activatedMember();
    await refusals(f, [
      [{ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 0 }, 'KEY_SIZE_INVALID', "a generic secret is 1–800 bytes under the cloudhsm profile, not 0 (CloudHSM's limit; start the cluster with profile: 'unlimited' to lift it)"],
      [{ op: 'generateKeyPair', keyType: 'rsa' }, 'BAD_REQUEST', 'modulusBits: required for an RSA key pair'],
      [{ op: 'generateKeyPair', keyType: 'rsa', modulusBits: 2048, curve: 'secp256r1' }, 'BAD_REQUEST', 'curve: not a parameter of rsa key pairs'],
      [{ op: 'generateKeyPair', keyType: 'ec' }, 'BAD_REQUEST', 'curve: required for an EC key pair'],
      [{ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', modulusBits: 2048 }, 'BAD_REQUEST', 'modulusBits: not a parameter of ec key pairs'],
      [{ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', publicExponent: 3 }, 'BAD_REQUEST', 'publicExponent: not a parameter of ec key pairs'],
      [{ op: 'generateKeyPair', keyType: 'ed25519', curve: 'secp256r1' }, 'BAD_REQUEST', 'curve: not a parameter of ed25519 key pairs'],
    ]);
    const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'rsa', modulusBits: 2048, publicExponent: 65539 });
    expect((await f.m.ok({ op: 'getAttributes', session: f.alice, handle: pair.publicHandle })).attributes['public-exponent']).to.equal(65539);
    // Without the profile's limits, the member's own floor still holds.
    const unlimited = await activatedMember({ profile: 'unlimited' });
    const e = await unlimited.m.fail({ op: 'generateKey', session: unlimited.alice, keyType: 'generic-secret', lengthBytes: 0 }, 'KEY_SIZE_INVALID');
    expect(e.message).to.equal('lengthBytes: a generated generic secret has at least 1 byte');
  });

  it('sharing: only token secret and private keys, only with other crypto users who exist; unsharing keeps enough approvers', async () => {
    const f = await activatedMember();
    const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, 'use-key-quorum-value': 2 } })).handle;
    const session = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { token: true }, publicAttributes: { token: true } });
    expect(await f.m.ok({ op: 'shareKey', session: f.alice, handle: key, username: 'Carol' })).to.deep.equal({ handle: key, sharedUsers: ['carol'] });
    await refusals(f, [
      [{ op: 'shareKey', handle: key, username: 'nobody' }, 'USER_NOT_FOUND', 'no user named nobody on this member'],
      [{ op: 'shareKey', handle: key, username: 'admin2' }, 'KEY_NOT_SHAREABLE', 'admin2 is an admin; keys are shared with crypto users only'],
      [{ op: 'shareKey', handle: key, username: 'alice' }, 'KEY_NOT_SHAREABLE', `alice owns key ${ref(key)} already`],
      [{ op: 'shareKey', handle: pair.publicHandle, username: 'bob' }, 'KEY_NOT_SHAREABLE', `key ${ref(pair.publicHandle)} is a public key; every crypto user can already use it`],
      [{ op: 'shareKey', handle: session, username: 'bob' }, 'KEY_NOT_SHAREABLE', `key ${ref(session)} is a session key; set token=true before sharing it`],
      [{ op: 'shareKey', session: f.carol, handle: key, username: 'bob' }, 'NOT_KEY_OWNER', `only the owner of key ${ref(key)} (alice) can share it`],
      [{ op: 'unshareKey', session: f.carol, handle: key, username: 'carol' }, 'NOT_KEY_OWNER', `only the owner of key ${ref(key)} (alice) can unshare it`],
      [{ op: 'unshareKey', handle: key, username: 'carol' }, 'QUORUM_VALUE_INVALID', `key ${ref(key)} needs 2 approvers and would keep 1 (its owner and the users it is shared with); it cannot be unshared from carol`],
    ]);
  });

  it('shareWith shares a new key as it is made, so a manage quorum of 2 needs no approval it could never get; a bad name makes nothing', async () => {
    const f = await activatedMember();
    const managed = { token: true, sign: true, 'manage-key-quorum-value': 2, 'use-key-quorum-value': 2 } as const;
    const { handle } = await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: managed, shareWith: ['Carol'] });
    expect((await f.m.ok({ op: 'getAttributes', session: f.alice, handle })).sharedUsers).to.deep.equal(['carol']);
    const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: managed, publicAttributes: { token: true }, shareWith: ['bob', 'carol'] });
    expect((await f.m.ok({ op: 'getAttributes', session: f.alice, handle: pair.privateHandle })).sharedUsers).to.deep.equal(['bob', 'carol']);
    expect((await f.m.ok({ op: 'getAttributes', session: f.alice, handle: pair.publicHandle })).sharedUsers).to.deep.equal([]);
    // Each refusal comes before anything is made.
    await refusals(f, [
      [{ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: managed, shareWith: ['nobody'] }, 'USER_NOT_FOUND', 'shareWith: no user named nobody on this member'],
      [{ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: managed, shareWith: ['admin2'] }, 'KEY_NOT_SHAREABLE', 'shareWith: admin2 is an admin; keys are shared with crypto users only'],
      [{ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: managed, shareWith: ['alice'] }, 'KEY_NOT_SHAREABLE', "shareWith: alice is the key's owner"],
      [{ op: 'generateKey', keyType: 'aes', lengthBytes: 16, shareWith: ['bob'] }, 'KEY_NOT_SHAREABLE', 'shareWith: a session key is not shared; make a token key (token=true) to share it'],
      [{ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { token: true }, shareWith: ['nobody'] }, 'USER_NOT_FOUND', 'shareWith: no user named nobody on this member'],
    ]);
  });

  it("asymmetric keys report CloudHSM's key-length-bytes: the point or twice the modulus when public, the PKCS #8 encoding when private", async () => {
    const f = await activatedMember({ mode: 'non-fips' }) // with Ed25519;
    let pair: { publicHandle: number; privateHandle: number };
    const sizes = async (req: Record<string, unknown>) => {
      pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, privateAttributes: { sensitive: false }, ...req } as never) as { publicHandle: number; privateHandle: number };
      const of = async (handle: number) => (await f.m.ok({ op: 'getAttributes', session: f.alice, handle })).attributes['key-length-bytes'];
      return [await of(pair.publicHandle), await of(pair.privateHandle)];
    };
    // AWS's examples: 57 and 122 on secp224r1, 512 and about 1217 for RSA-2048.
    expect(await sizes({ keyType: 'ec', curve: 'secp224r1' })).to.deep.equal([57, 122]);
    expect(await sizes({ keyType: 'ec', curve: 'secp384r1' })).to.deep.equal([97, 185]);
    const [rsaPublic, rsaPrivate] = await sizes({ keyType: 'rsa', modulusBits: 2048 });
    expect(rsaPublic).to.equal(512);
    // An RSA key's PKCS #8 length depends on the key (an integer with a leading zero byte is a byte
    // shorter): 1214-1219 for random 2048-bit keys; it is this key's own encoding.
    const pkcs8 = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: pair!.privateHandle, format: 'pkcs8' })).keyData as Uint8Array;
    expect(rsaPrivate).to.equal(pkcs8.length);
    expect(rsaPrivate).to.be.within(1210, 1219);
    expect(await sizes({ keyType: 'ed25519' })).to.deep.equal([32, 48]);
  });

  it('shares come back sorted; unsharing someone who never had it needs no spare approver', async () => {
    const f = await activatedMember();
    const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, 'use-key-quorum-value': 2 } })).handle;
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: key, username: 'carol' });
    expect(await f.m.ok({ op: 'shareKey', session: f.alice, handle: key, username: 'bob' })).to.deep.equal({ handle: key, sharedUsers: ['bob', 'carol'] });
    // Alice and carol remain: enough for a quorum of 2.
    expect(await f.m.ok({ op: 'unshareKey', session: f.alice, handle: key, username: 'bob' })).to.deep.equal({ handle: key, sharedUsers: ['carol'] });
    const lonely = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, 'use-key-quorum-value': 2 } })).handle;
    expect(await f.m.ok({ op: 'unshareKey', session: f.alice, handle: lonely, username: 'bob' })).to.deep.equal({ handle: lonely, sharedUsers: [] });
  });

  it('findKeys: pages in handle order whatever order the keys arrived in; a full last page has no next token; a made-up token is refused', async () => {
    const serviceKey = new Uint8Array(32).fill(6);
    const f = await activatedMember({ serviceKey });
    const g = await freshMember({ serviceKey, memberIndex: 1 });
    await g.ok({ op: 'restoreBackup', backup: (await f.m.ok({ op: 'createBackup', session: f.admin })).backup });
    const gAppliance = await g.login('app_user', PASSWORDS.app_user);
    const made: number[] = [];
    for (let i = 0; i < 4; i++) made.push((await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'page' } })).handle);
    for (const handle of [...made].reverse()) {
      await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject });
    }
    const gAlice = await g.login('alice', PASSWORDS.alice);
    const filter = { attributes: { label: 'page' } };
    const first = await g.ok({ op: 'findKeys', session: gAlice, filter, maxItems: 2 });
    expect([first.keys.map((k) => k.handle), first.nextToken]).to.deep.equal([made.slice(0, 2), String(made[1])]);
    const second = await g.ok({ op: 'findKeys', session: gAlice, filter, maxItems: 2, startingToken: first.nextToken! });
    expect([second.keys.map((k) => k.handle), second.nextToken]).to.deep.equal([made.slice(2), null]);
    expect((await g.ok({ op: 'findKeys', session: gAlice, filter, maxItems: 4 })).nextToken).to.equal(null);
    for (const token of ['abc', '-1', '12345678901234567', '1.5']) {
      expect((await g.fail({ op: 'findKeys', session: gAlice, startingToken: token }, 'BAD_REQUEST')).message, token).to.equal('startingToken: pass the nextToken of the previous page unchanged');
    }
  });

  it(`findKeys by label or handle finds what a look at every key finds, through creations, relabels, deletions, logouts and masked copies (seed ${FIND_SEED})`, async () => {
    const r = seeded(FIND_SEED);
    const f = await activatedMember();
    const LABELS = ['a', 'b', '', '0xAB', '0xab', 'A'];
    // Now and then a label no other key has yet: labels of one key and of many are kept apart.
    const pick = () => (r.below(4) === 0 ? `only-${handles.length}` : LABELS[r.below(LABELS.length)]!);
    let sessions = [f.alice, f.bob, await f.m.login('alice', PASSWORDS.alice)];
    const handles: number[] = [];
    const owner = new Map<number, string>();
    const token = new Set<number>();
    for (let step = 0; step < 160; step++) {
      const session = sessions[r.below(sessions.length)]!;
      const what = r.below(10);
      const mine = handles.filter((h) => owner.get(h) === session);
      if (what < 5 || !mine.length) {
        const isToken = r.below(2) === 0;
        const { handle } = await f.m.ok({ op: 'generateKey', session, keyType: 'aes', lengthBytes: 16, attributes: { token: isToken, label: pick() } });
        handles.push(handle);
        owner.set(handle, session);
        if (isToken) token.add(handle);
      } else if (what < 7) {
        const handle = mine[r.below(mine.length)]!;
        const makeToken = r.below(4) === 0;
        await f.m.ok({ op: 'setAttributes', session, handle, attributes: { label: pick(), ...(makeToken ? { token: true } : {}) } });
        if (makeToken) token.add(handle);
      } else if (what < 9) {
        const handle = mine[r.below(mine.length)]!;
        await f.m.ok({ op: 'deleteKey', session, handle });
        owner.delete(handle);
      } else if (session !== f.bob) {
        // A logout: this session's session keys go; its token keys stay, now the other alice session's to manage.
        await f.m.ok({ op: 'logout', session });
        const again = await f.m.login('alice', PASSWORDS.alice);
        sessions = sessions.map((s) => (s === session ? again : s));
        for (const [h, s] of owner) {
          if (s === session && token.has(h)) owner.set(h, again);
          else if (s === session) owner.delete(h);
        }
      }
      if (step % 20 !== 19) continue;
      for (const viewer of [sessions[0]!, f.bob, f.admin]) {
        const all = (await f.m.ok({ op: 'findKeys', session: viewer, maxItems: 10_000 })).keys;
        for (const label of [...LABELS, '0XaB', 'none']) {
          const want = all.filter((k) => filterPredicate({ label })(k.attributes)).map((k) => k.handle);
          const found = (await f.m.ok({ op: 'findKeys', session: viewer, filter: { attributes: { label } }, maxItems: 10_000 })).keys.map((k) => k.handle);
          expect(found, `step ${step}, label ${JSON.stringify(label)}`).to.deep.equal(want);
        }
        for (const key of all.slice(0, 3)) {
          expect((await f.m.ok({ op: 'findKeys', session: viewer, filter: { handle: key.handle, attributes: { label: key.attributes.label } } })).keys.map((k) => k.handle)).to.deep.equal([key.handle]);
        }
      }
    }
    // A masked copy of a token key arriving on another member is found there by its label.
    const serviceKey = new Uint8Array(32).fill(6);
    const source = await activatedMember({ serviceKey });
    const target = await freshMember({ serviceKey, memberIndex: 1 });
    await target.ok({ op: 'restoreBackup', backup: (await source.m.ok({ op: 'createBackup', session: source.admin })).backup });
    const made = (await source.m.ok({ op: 'generateKey', session: source.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'copied' } })).handle;
    await target.ok({ op: 'insertMaskedObject', session: await target.login('app_user', PASSWORDS.app_user), maskedObject: (await source.m.ok({ op: 'extractMaskedObject', session: source.appliance, handle: made })).maskedObject });
    const targetAlice = await target.login('alice', PASSWORDS.alice);
    expect((await target.ok({ op: 'findKeys', session: targetAlice, filter: { attributes: { label: 'copied' } } })).keys.map((k) => k.handle)).to.deep.equal([made]);
  });

  it('changing a session key\'s label keeps it a session key; deleting it leaves no tombstone', async () => {
    const f = await activatedMember();
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    await f.m.ok({ op: 'setAttributes', session: f.alice, handle, attributes: { label: 'still a session key' } });
    expect(await f.m.ok({ op: 'deleteKey', session: f.alice, handle })).to.deep.equal({ handle });
    expect((await f.m.ok({ op: 'getSyncStatus', session: f.appliance })).deletedKeys).to.deep.equal([]);
    const other = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    await f.m.ok({ op: 'setAttributes', session: f.alice, handle: other, attributes: { label: 'x' } });
    await f.m.ok({ op: 'logout', session: f.alice });
    await f.m.fail({ op: 'getAttributes', session: await f.m.login('alice', PASSWORDS.alice), handle: other }, 'KEY_NOT_FOUND');
  });

  it('copyKey (C_CopyObject): the copy signs as the original; a session key copied as a token key outlives the logout; changes as setAttributes allows them, by the owner only', async () => {
    const f = await activatedMember();
    const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true, extractable: true }, publicAttributes: { verify: true } });
    const copy = await f.m.ok({ op: 'copyKey', session: f.alice, handle: pair.privateHandle, attributes: { token: true, id: '0x01', label: 'kept' } });
    expect(copy.handle).to.not.equal(pair.privateHandle);
    expect(copy.key.sessionKey).to.equal(false);
    expect(copy.key.attributes).to.include({ token: true, id: '0x01', label: 'kept', extractable: true, sign: true, sensitive: true });
    const data = new Uint8Array([1, 2, 3]);
    const { signature } = await f.m.ok({ op: 'sign', session: f.alice, handle: copy.handle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data });
    expect((await f.m.ok({ op: 'verify', session: f.alice, handle: pair.publicHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data, signature })).valid).to.equal(true);
    await refusals(f, [
      [{ op: 'copyKey', handle: copy.handle, attributes: { extractable: false } }, 'ATTRIBUTE_READ_ONLY', 'attribute extractable can never change after the key is created'],
      [{ op: 'copyKey', handle: copy.handle, attributes: { token: false } }, 'ATTRIBUTE_READ_ONLY', 'attribute token can only change from false to true'],
    ]);
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: copy.handle, username: 'bob' });
    await refusals(f, [[{ op: 'copyKey', session: f.bob, handle: copy.handle }, 'NOT_KEY_OWNER', `only the owner of key ${ref(copy.handle)} (alice) can copy it`]]);
    await f.m.ok({ op: 'logout', session: f.alice });
    const again = await f.m.login('alice', PASSWORDS.alice);
    await f.m.fail({ op: 'getAttributes', session: again, handle: pair.privateHandle }, 'KEY_NOT_FOUND');
    expect((await f.m.ok({ op: 'getAttributes', session: again, handle: copy.handle })).attributes.label).to.equal('kept');
  });

  it('export: only private keys as encrypted PKCS #8; a public key needs no approvals to leave', async () => {
    const f = await activatedMember();
    const aes = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', publicAttributes: { token: true, 'manage-key-quorum-value': 2 } });
    await refusals(f, [
      [{ op: 'exportEncryptedKey', handle: aes, password: 'a-long-password' }, 'KEY_TYPE_INCONSISTENT', `key ${ref(aes)} is a secret-key; only private keys are exported as encrypted PKCS #8`],
      [{ op: 'exportEncryptedKey', handle: pair.publicHandle, password: 'a-long-password' }, 'KEY_TYPE_INCONSISTENT', `key ${ref(pair.publicHandle)} is a public-key; only private keys are exported as encrypted PKCS #8`],
    ]);
    expect((await f.m.ok({ op: 'exportKey', session: f.bob, handle: pair.publicHandle, format: 'spki' })).keyData).to.have.length(91);
  });

  it('an encrypted PKCS #8 key of a kind the HSM does not hold is refused by name', async () => {
    const f = await activatedMember();
    const dsa = generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).privateKey;
    const der = dsa.export({ format: 'der', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'a-long-password' });
    await refusals(f, [[{ op: 'importEncryptedKey', encryptedPrivateKeyInfo: new Uint8Array(der), password: 'a-long-password' }, 'KEY_TYPE_INCONSISTENT', 'encryptedPrivateKeyInfo: a dsa key, which the HSM does not hold']]);
  });

  it('wrap and unwrap name the mechanism, key and format they refuse', async () => {
    const f = await activatedMember();
    const kek = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { wrap: true, unwrap: true, encrypt: true, decrypt: true } })).handle;
    const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    const notJson = (await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-gcm' }, wrappingHandle: kek, payloadHandle: payload })).wrapped;
    const encryptJson = async (text: string) => {
      const out = await f.m.ok({ op: 'encrypt', session: f.alice, handle: kek, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12).fill(1) }, data: new TextEncoder().encode(text) });
      return { wrapped: out.data, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12).fill(1) } };
    };
    const unwrapJwk = async (text: string, attributes: Record<string, unknown> = {}) => {
      const { wrapped, mechanism } = await encryptJson(text);
      return { op: 'unwrapKey', mechanism, unwrappingHandle: kek, wrapped, keyClass: 'secret-key', keyType: 'aes', format: 'jwk', attributes };
    };
    const jwk = '{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAA"';
    await refusals(f, [
      [{ op: 'wrapKey', mechanism: { name: 'aes-ecb' }, wrappingHandle: kek, payloadHandle: payload }, 'MECHANISM_PARAM_INVALID', 'mechanism: aes-ecb does not wrap keys (it encrypts data only); wrap with aes-gcm, cloudhsm-aes-gcm, aes-cbc-pad, aes-no-pad, aes-pkcs5-pad, aes-zero-pad, rsa-oaep, rsa-pkcs, rsa-aes'],
      [
        { op: 'wrapKey', mechanism: { name: 'aes-ctr', counter: new Uint8Array(16) }, wrappingHandle: kek, payloadHandle: payload },
        'NOT_SUPPORTED_BY_PROFILE',
        "mechanism: aes-ctr wraps keys only under the unlimited profile (CloudHSM's limit; start the cluster with profile: 'unlimited' to lift it); wrap with aes-gcm, cloudhsm-aes-gcm, aes-cbc-pad, aes-no-pad, aes-pkcs5-pad, aes-zero-pad, rsa-oaep, rsa-pkcs, rsa-aes",
      ],
      [{ op: 'wrapKey', mechanism: { name: 'rsa-oaep', hash: 'sha256' }, wrappingHandle: kek, payloadHandle: payload }, 'KEY_TYPE_INCONSISTENT', `mechanism rsa-oaep takes rsa keys, but key ${ref(kek)} is aes`],
      [{ op: 'wrapKey', mechanism: { name: 'aes-gcm' }, wrappingHandle: kek, payloadHandle: payload, format: 'raw', jwkExtras: { ext: true } }, 'BAD_REQUEST', 'jwkExtras: only with format jwk, not raw'],
      [{ op: 'unwrapKey', mechanism: { name: 'rsa-oaep', hash: 'sha256' }, unwrappingHandle: kek, wrapped: notJson, keyClass: 'secret-key', keyType: 'aes' }, 'KEY_TYPE_INCONSISTENT', `mechanism rsa-oaep takes rsa keys, but key ${ref(kek)} is aes`],
      [await unwrapJwk('not json'), 'KEY_DATA_INVALID', 'wrapped: the unwrapped bytes are not a JSON Web Key'],
      [await unwrapJwk('[1,2]'), 'KEY_DATA_INVALID', 'wrapped: the unwrapped bytes are not a JSON Web Key'],
      [await unwrapJwk('null'), 'KEY_DATA_INVALID', 'wrapped: the unwrapped bytes are not a JSON Web Key'],
      [await unwrapJwk('{"k":"AAAAAAAAAAAAAAAAAAAAAA"}'), 'KEY_DATA_INVALID', 'wrapped: the unwrapped bytes are not a JSON Web Key'],
      [await unwrapJwk(`${jwk},"ext":false}`, { extractable: true }), 'KEY_DATA_INVALID', 'wrapped: the JWK says ext=false, so the unwrapped key cannot have extractable=true'],
      [await unwrapJwk(`${jwk},"key_ops":"encrypt"}`), 'KEY_DATA_INVALID', 'wrapped: the JWK key_ops is not a list'],
      [await unwrapJwk(`${jwk},"key_ops":["encrypt","sign"]}`, { encrypt: true, decrypt: true }), 'KEY_DATA_INVALID', 'wrapped: the JWK key_ops ["encrypt","sign"] do not allow decrypt=true'],
      [await unwrapJwk(`${jwk},"key_ops":["wrapKey"]}`, { unwrap: true }), 'KEY_DATA_INVALID', 'wrapped: the JWK key_ops ["wrapKey"] do not allow unwrap=true'],
    ]);
    // What the JWK allows goes through: ext=false with extractable=false, key_ops naming each usage asked for.
    const ok = await f.m.ok({ session: f.alice, ...(await unwrapJwk(`${jwk},"ext":false,"key_ops":["encrypt","decrypt","unwrapKey"]}`, { extractable: false, encrypt: true, decrypt: true, unwrap: true })) } as never);
    expect((ok as { key: { attributes: Record<string, unknown> } }).key.attributes).to.include({ extractable: false, encrypt: true, decrypt: true, unwrap: true });
    await f.m.ok({ session: f.alice, ...(await unwrapJwk(`${jwk},"ext":true}`, { extractable: true })) } as never);
  });

  it('a wrapped JWK carries only the extras given, in WebCrypto\'s order', async () => {
    const f = await activatedMember();
    const kek = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { wrap: true, decrypt: true } })).handle;
    const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    const open = async (jwkExtras?: Record<string, unknown>) => {
      const out = await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-gcm' }, wrappingHandle: kek, payloadHandle: payload, format: 'jwk', ...(jwkExtras ? { jwkExtras } : {}) });
      const plain = await f.m.ok({ op: 'decrypt', session: f.alice, handle: kek, mechanism: { name: 'aes-gcm', iv: out.iv! }, data: out.wrapped });
      return Object.keys(JSON.parse(new TextDecoder().decode(plain.data)) as object);
    };
    expect(await open()).to.deep.equal(['kty', 'k']);
    expect(await open({ alg: 'A128GCM', ext: true, key_ops: ['encrypt'] })).to.deep.equal(['key_ops', 'ext', 'kty', 'k', 'alg']);
  });

  it('ECDH names a peer given twice, not at all, or as a private key; a derived key is no longer than the shared secret', async () => {
    const f = await activatedMember();
    const ours = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { derive: true } });
    const theirs = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1' });
    const spki = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: theirs.publicHandle, format: 'spki' })).keyData as Uint8Array;
    const base = { op: 'deriveBits', baseHandle: ours.privateHandle };
    await refusals(f, [
      [{ ...base, mechanism: { name: 'ecdh' } }, 'MECHANISM_PARAM_INVALID', 'mechanism: give the peer as exactly one of publicHandle and publicKey'],
      [{ ...base, mechanism: { name: 'ecdh', publicHandle: theirs.publicHandle, publicKey: spki } }, 'MECHANISM_PARAM_INVALID', 'mechanism: give the peer as exactly one of publicHandle and publicKey'],
      [{ ...base, mechanism: { name: 'ecdh', publicHandle: theirs.privateHandle } }, 'KEY_TYPE_INCONSISTENT', `mechanism.publicHandle: key ${ref(theirs.privateHandle)} is not a public key`],
      [{ op: 'deriveKey', baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: theirs.publicHandle }, keyType: 'generic-secret', lengthBytes: 48 }, 'DATA_INVALID', 'length: the shared secret has 256 bits, fewer than the 384 asked for'],
    ]);
    expect((await f.m.ok({ ...base, session: f.alice, mechanism: { name: 'ecdh', publicKey: spki } } as never) as { bits: Uint8Array }).bits).to.have.length(32);
    const derived = (await f.m.ok({ op: 'deriveKey', session: f.alice, baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: theirs.publicHandle }, keyType: 'aes', lengthBytes: 32 })).handle;
    expect((await f.m.ok({ op: 'getAttributes', session: f.alice, handle: derived })).attributes['key-length-bytes']).to.equal(32);
  });

  it('only RSA PKCS #1 v1.5 unwraps hide why they failed; the others say it', async () => {
    const f = await activatedMember();
    const kek = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { wrap: true, unwrap: true, encrypt: true } })).handle;
    const other = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { unwrap: true } })).handle;
    const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    const { wrapped } = await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, wrappingHandle: kek, payloadHandle: payload });
    const wrongKey = await f.m.fail({ op: 'unwrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, unwrappingHandle: other, wrapped, keyClass: 'secret-key', keyType: 'aes' }, 'DECRYPTION_FAILED');
    expect(wrongKey.message).to.not.contain('rsa-pkcs');
    const five = await f.m.ok({ op: 'encrypt', session: f.alice, handle: kek, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12) }, data: new Uint8Array(5) });
    const wrongLength = await f.m.fail({ op: 'unwrapKey', session: f.alice, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12) }, unwrappingHandle: kek, wrapped: five.data, keyClass: 'secret-key', keyType: 'aes' }, 'KEY_SIZE_INVALID');
    expect(wrongLength.message).to.match(/\b5\b/);
  });

  it('a key with manage-key-quorum-value 2 needs approvals for each way it is managed (not for use); an admin sets trusted without them', async () => {
    const f = await activatedMember();
    const managed = { token: true, extractable: true, sensitive: false, wrap: true, unwrap: true, 'manage-key-quorum-value': 2 } as const;
    const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { ...managed, encrypt: true } })).handle;
    const plain = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, wrap: true, unwrap: true } })).handle;
    const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { token: true, 'manage-key-quorum-value': 2 } });
    const { wrapped } = await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, wrappingHandle: plain, payloadHandle: plain });
    const needed = 'Quorum approval is required for this operation (key-management service: 2 approvals; generate a token with quorum token-sign generate)';
    const cases: Record<string, unknown>[] = [
      { op: 'unshareKey', handle: key, username: 'bob' },
      { op: 'setAttributes', handle: key, attributes: { label: 'x' } },
      { op: 'exportKey', handle: key, format: 'raw' },
      { op: 'exportEncryptedKey', handle: pair.privateHandle, password: 'a-long-password' },
      { op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: key, payloadHandle: plain },
      { op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: plain, payloadHandle: key },
      { op: 'unwrapKey', mechanism: { name: 'aes-no-pad' }, unwrappingHandle: key, wrapped, keyClass: 'secret-key', keyType: 'aes' },
    ];
    for (const request of cases) {
      expect((await f.m.fail({ session: f.alice, ...request }, 'QUORUM_APPROVAL_REQUIRED')).message, String(request.op)).to.equal(needed);
    }
    // Using it needs none, and an admin marks it trusted without approvals (admins give no key approvals).
    await f.m.ok({ op: 'encrypt', session: f.alice, handle: key, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(1) });
    expect((await f.m.ok({ op: 'setAttributes', session: f.admin, handle: key, attributes: { trusted: true } })).attributes.trusted).to.equal(true);
  });

  it('only the owner exports, wraps or changes a key; a user it is shared with is told so', async () => {
    const f = await activatedMember();
    const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, sensitive: false } })).handle;
    const kek = (await f.m.ok({ op: 'generateKey', session: f.bob, keyType: 'aes', lengthBytes: 16, attributes: { wrap: true } })).handle;
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: key, username: 'bob' });
    await refusals(f, [
      [{ session: f.bob, op: 'exportKey', handle: key, format: 'raw' }, 'NOT_KEY_OWNER', `only the owner of key ${ref(key)} (alice) can export it`],
      [{ session: f.bob, op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: kek, payloadHandle: key }, 'NOT_KEY_OWNER', `only the owner of key ${ref(key)} (alice) can wrap it`],
      [{ session: f.bob, op: 'setAttributes', handle: key, attributes: { label: 'x' } }, 'NOT_KEY_OWNER', `only the owner of key ${ref(key)} (alice) can change the attributes of it`],
      [{ session: f.bob, op: 'deleteKey', handle: key }, 'NOT_KEY_OWNER', `only the owner of key ${ref(key)} (alice) can delete it`],
    ]);
  });
});
