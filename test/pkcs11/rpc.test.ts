/**
 * The door spoken to frame by frame, as p11-kit's client speaks (test/helpers/p11-rpc.ts): what
 * Debian 12's client cannot carry (p11-kit 0.25's parameters: ECDH, AES key wrap, AES-GCM,
 * SHA-x RSA-PSS) and the session rules no tool here exercises (read-only sessions, single-part
 * mechanisms). Checked against node:crypto.
 */
import { constants, createCipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, publicDecrypt, publicEncrypt, verify } from 'node:crypto';
import { expect } from 'chai';
import type { LocalCluster } from '../../src/index.js';
import type { ByteArray, Dialect, Mechanism } from '../../src/pkcs11/codec.js';
import { CKA, CKD, CKF, CKG, CKK, CKM, CKO, CKR } from '../../src/pkcs11/constants.js';
import type { Pkcs11Door } from '../../src/pkcs11/index.js';
import { RpcClient, attr, openTestDoor, type TestDoor } from '../helpers/p11-rpc.js';

const PIN = 'cu1:cu1-password';
const bytes = (b: Buffer): ByteArray => ({ data: b, length: b.length });
const mech = (type: number, param: Mechanism['param'] = null): Mechanism => ({ type, param });
const out = (v: unknown): Buffer => (v as ByteArray).data!;

describe('pkcs11: the door frame by frame (both p11-kit dialects)', function () {
  this.timeout(60_000);
  let fixture: TestDoor | undefined;
  let cluster: LocalCluster;
  let door: Pkcs11Door;
  before(async () => {
    fixture = await openTestDoor('strongroom-p11-rpc-');
    ({ cluster, door } = fixture);
  });
  after(() => fixture?.close());

  /** A logged-in connection and a read-write session. */
  async function open(dialect: Dialect): Promise<{ c: RpcClient; rw: bigint }> {
    const c = await RpcClient.connect(door.socket, dialect);
    await c.call('C_Initialize', [bytes(Buffer.from('PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1')), 0, bytes(Buffer.from([0]))]);
    const [rw] = (await c.call('C_OpenSession', [1n, BigInt(CKF.SERIAL_SESSION | CKF.RW_SESSION)])) as [bigint];
    await c.call('C_Login', [rw, 1n, bytes(Buffer.from(PIN))]);
    return { c, rw };
  }
  const aesKey = (c: RpcClient, session: bigint, ...template: ReturnType<typeof attr.bool>[]) =>
    c.call('C_GenerateKey', [session, mech(CKM.AES_KEY_GEN), [attr.ulong(CKA.VALUE_LEN, 32), ...template]]).then(([h]) => h as bigint);
  const crypt = async (c: RpcClient, session: bigint, kind: 'Encrypt' | 'Decrypt', m: Mechanism, key: bigint, data: Buffer) => {
    await c.call(`C_${kind}Init`, [session, m, key]);
    return out((await c.call(`C_${kind}`, [session, bytes(data), 4096]))[0]);
  };
  /** Attributes of an object, as bytes. */
  const read = async (c: RpcClient, session: bigint, key: bigint, ...wanted: [number, number][]): Promise<Buffer[]> => {
    const [attributes] = (await c.call('C_GetAttributeValue', [session, key, wanted.map(([type, length]) => ({ type, length }))])) as unknown as [{ value: { bytes: Buffer } }[]];
    return attributes.map((a) => a.value.bytes);
  };
  /** CKA_VALUE of a key: its bytes, or the CK_RV the door answers instead. */
  const value = async (c: RpcClient, session: bigint, key: bigint): Promise<Buffer | number> => {
    const [attributes, rv] = (await c.call('C_GetAttributeValue', [session, key, [{ type: CKA.VALUE, length: 64 }]])) as [{ value: { bytes: Buffer } | null }[], bigint];
    return rv === 0n ? attributes[0]!.value!.bytes : Number(rv);
  };

  it('C_FindObjects by CKA_LABEL finds the keys labelled so, byte for byte, with the rest of the template; a label no key can have finds none', async () => {
    const { c, rw } = await open('p11-kit-0.24');
    const find = async (...template: ReturnType<typeof attr.bool>[]) => {
      await c.call('C_FindObjectsInit', [rw, template]);
      const [found] = (await c.call('C_FindObjects', [rw, 100])) as unknown as [{ values: bigint[] }];
      await c.call('C_FindObjectsFinal', [rw]);
      return found.values;
    };
    const same = [await aesKey(c, rw, attr.label('find-same'), attr.bool(CKA.TOKEN, true)), await aesKey(c, rw, attr.label('find-same'), attr.bool(CKA.ENCRYPT, true))];
    const upper = await aesKey(c, rw, attr.label('0xAB'));
    const lower = await aesKey(c, rw, attr.label('0xab'));
    expect(await find(attr.label('find-same'))).to.have.members(same);
    expect(await find(attr.label('find-same'), attr.bool(CKA.TOKEN, true))).to.deep.equal([same[0]]);
    expect(await find(attr.label('find-same'), attr.ulong(CKA.CLASS, CKO.PRIVATE_KEY))).to.deep.equal([]);
    // The member matches a 0x… label in any case; PKCS #11 matches bytes.
    expect(await find(attr.label('0xAB'))).to.deep.equal([upper]);
    expect(await find(attr.label('0xab'))).to.deep.equal([lower]);
    expect(await find(attr.label('find-'))).to.deep.equal([]);
    expect(await find(attr.label('x'.repeat(200)))).to.deep.equal([]);
    expect(await find(attr.bytes(CKA.LABEL, Buffer.from([0xff, 0xfe])))).to.deep.equal([]);
    expect(await find(attr.bytes(CKA.LABEL, Buffer.alloc(0)))).to.not.include.members(same);
    c.close();
  });

  it('C_FindObjects by CKA_LABEL finds a key whose label has a lone surrogate (U+FFFD in UTF-8), as a full match would', async () => {
    const user = await cluster.login('cu1', 'cu1-password');
    const { handle } = await user.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: '\uD800find' } });
    await user.logout();
    const { c, rw } = await open('p11-kit-0.24');
    await c.call('C_FindObjectsInit', [rw, [attr.bytes(CKA.LABEL, Buffer.from('\uD800find', 'utf8'))]]);
    const [found] = (await c.call('C_FindObjects', [rw, 100])) as unknown as [{ values: bigint[] }];
    await c.call('C_FindObjectsFinal', [rw]);
    expect(found.values).to.deep.equal([BigInt(handle)]);
    c.close();
  });

  it('a read-only session makes session keys but no token objects, and destroys none (CKR_SESSION_READ_ONLY); nothing changes in the HSM', async () => {
    const { c, rw } = await open('p11-kit-0.24');
    const [ro] = (await c.call('C_OpenSession', [1n, BigInt(CKF.SERIAL_SESSION)])) as [bigint];
    const kept = await aesKey(c, rw, attr.bool(CKA.TOKEN, true), attr.label('kept'));
    const before = (await cluster.hsmInfo())[0]!.keys;
    expect(await c.refusal('C_GenerateKey', [ro, mech(CKM.AES_KEY_GEN), [attr.ulong(CKA.VALUE_LEN, 32), attr.bool(CKA.TOKEN, true)]])).to.equal(CKR.SESSION_READ_ONLY);
    expect(await c.refusal('C_DestroyObject', [ro, kept])).to.equal(CKR.SESSION_READ_ONLY);
    expect(await c.refusal('C_SetAttributeValue', [ro, kept, [attr.label('renamed')]])).to.equal(CKR.SESSION_READ_ONLY);
    expect(await c.refusal('C_CreateObject', [ro, [attr.ulong(CKA.CLASS, CKO.DATA), attr.bool(CKA.TOKEN, true), attr.bytes(CKA.VALUE, Buffer.from('x'))]])).to.equal(CKR.SESSION_READ_ONLY);
    expect((await cluster.hsmInfo())[0]!.keys).to.equal(before);
    // A session key is the session's own business.
    const mine = await aesKey(c, ro);
    await c.call('C_DestroyObject', [ro, mine]);
    c.close();
  });

  it('single-part mechanisms (CKM_ECDSA, CKM_RSA_PKCS, AES-GCM) refuse C_*Update and end the operation, as CloudHSM runs them', async () => {
    const { c, rw } = await open('p11-kit-0.24');
    const [, priv] = (await c.call('C_GenerateKeyPair', [rw, mech(CKM.EC_KEY_PAIR_GEN), [attr.bytes(CKA.EC_PARAMS, Buffer.from('06082a8648ce3d030107', 'hex'))], [attr.bool(CKA.SIGN, true)]])) as [bigint, bigint];
    await c.call('C_SignInit', [rw, mech(CKM.ECDSA), priv]);
    expect(await c.refusal('C_SignUpdate', [rw, bytes(Buffer.alloc(32, 1))])).to.equal(CKR.FUNCTION_NOT_SUPPORTED);
    expect(await c.refusal('C_Sign', [rw, bytes(Buffer.alloc(32, 1)), 128])).to.equal(CKR.OPERATION_NOT_INITIALIZED);
    // A hash-and-sign mechanism takes its data in parts.
    await c.call('C_SignInit', [rw, mech(CKM.ECDSA_SHA1), priv]);
    await c.call('C_SignUpdate', [rw, bytes(Buffer.from('in '))]);
    await c.call('C_SignUpdate', [rw, bytes(Buffer.from('parts'))]);
    expect(out((await c.call('C_SignFinal', [rw, 128]))[0])).to.have.length(64);
    c.close();
  });

  it('raw RSA (CKM_RSA_X_509): encryption and decryption round-trip, a signature is the raw private operation, and CKM_RSA_PKCS signs bytes that are not a DigestInfo', async () => {
    const { c, rw } = await open('p11-kit-0.24');
    const [pub, priv] = (await c.call('C_GenerateKeyPair', [
      rw,
      mech(CKM.RSA_PKCS_KEY_PAIR_GEN),
      [attr.ulong(CKA.MODULUS_BITS, 2048), attr.bool(CKA.ENCRYPT, true), attr.bool(CKA.VERIFY, true)],
      [attr.bool(CKA.DECRYPT, true), attr.bool(CKA.SIGN, true)],
    ])) as [bigint, bigint];
    const [n, e] = await read(c, rw, pub, [CKA.MODULUS, 256], [CKA.PUBLIC_EXPONENT, 3]);
    const publicKey = createPublicKey({ key: { kty: 'RSA', n: n!.toString('base64url'), e: e!.toString('base64url') }, format: 'jwk' });
    const block = Buffer.concat([Buffer.from([0]), createHash('sha512').update('block').digest(), Buffer.alloc(191, 7)]);
    const encrypted = await crypt(c, rw, 'Encrypt', mech(CKM.RSA_X_509), pub, block);
    expect(encrypted).to.deep.equal(publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, block));
    expect(await crypt(c, rw, 'Decrypt', mech(CKM.RSA_X_509), priv, encrypted)).to.deep.equal(block);
    await c.call('C_SignInit', [rw, mech(CKM.RSA_X_509), priv]);
    const signature = out((await c.call('C_Sign', [rw, bytes(block), 256]))[0]);
    expect(publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, signature)).to.deep.equal(block);
    await c.call('C_VerifyInit', [rw, mech(CKM.RSA_X_509), pub]);
    expect(await c.refusal('C_Verify', [rw, bytes(Buffer.from(block).fill(8, 100, 101)), bytes(signature)])).to.equal(CKR.SIGNATURE_INVALID);
    const tls10 = Buffer.concat([createHash('md5').update('handshake').digest(), createHash('sha1').update('handshake').digest()]);
    await c.call('C_SignInit', [rw, mech(CKM.RSA_PKCS), priv]);
    const md5sha1 = out((await c.call('C_Sign', [rw, bytes(tls10), 256]))[0]);
    expect(publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, md5sha1)).to.deep.equal(tls10);
    expect(await c.refusal('C_EncryptInit', [rw, mech(CKM.RSA_X_509), 0xffffn])).to.equal(CKR.OBJECT_HANDLE_INVALID);
    c.close();
  });

  it('p11-kit 0.25: ECDH1_DERIVE with an X9.63 KDF derives in the HSM the key Node derives from the same pair', async () => {
    const { c, rw } = await open('p11-kit-0.25');
    const [pub, priv] = (await c.call('C_GenerateKeyPair', [rw, mech(CKM.EC_KEY_PAIR_GEN), [attr.bytes(CKA.EC_PARAMS, Buffer.from('06082a8648ce3d030107', 'hex'))], [attr.bool(CKA.DERIVE, true)]])) as [bigint, bigint];
    const [point] = await read(c, rw, pub, [CKA.EC_POINT, 67]);
    const raw = point!.subarray(2);
    const peer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = peer.publicKey.export({ format: 'jwk' });
    const peerPoint = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
    const sharedInfo = Buffer.from('strongroom ecdh test');
    const [derived] = (await c.call('C_DeriveKey', [
      rw,
      mech(CKM.ECDH1_DERIVE, { kind: 'ecdh', kdf: BigInt(CKD.SHA256_KDF), sharedData: sharedInfo, publicData: peerPoint }),
      priv,
      [attr.ulong(CKA.CLASS, CKO.SECRET_KEY), attr.ulong(CKA.KEY_TYPE, CKK.AES), attr.ulong(CKA.VALUE_LEN, 32), attr.bool(CKA.SENSITIVE, false), attr.bool(CKA.EXTRACTABLE, true)],
    ])) as [bigint];
    const hsmPublic = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') }, format: 'jwk' });
    const z = diffieHellman({ privateKey: peer.privateKey, publicKey: hsmPublic });
    const expected = createHash('sha256').update(Buffer.concat([z, Buffer.from([0, 0, 0, 1]), sharedInfo])).digest();
    expect(await value(c, rw, derived)).to.deep.equal(expected);
    // A KDF the HSM does not have is named.
    expect(await c.refusal('C_DeriveKey', [rw, mech(CKM.ECDH1_DERIVE, { kind: 'ecdh', kdf: 0x99n, sharedData: null, publicData: peerPoint }), priv, [attr.ulong(CKA.KEY_TYPE, CKK.AES), attr.ulong(CKA.VALUE_LEN, 32)]])).to.equal(CKR.MECHANISM_PARAM_INVALID);
    c.close();
  });

  it('p11-kit 0.25: AES key wrap (RFC 3394 and RFC 5649), CloudHSM\'s AES-GCM and RSA-OAEP wrap a key that unwraps to the same key; an unextractable key does not leave', async () => {
    const { c, rw } = await open('p11-kit-0.25');
    const wrapping = await aesKey(c, rw, attr.bool(CKA.WRAP, true), attr.bool(CKA.UNWRAP, true));
    const payload = await aesKey(c, rw, attr.bool(CKA.SENSITIVE, false), attr.bool(CKA.EXTRACTABLE, true));
    const secret = await value(c, rw, payload);
    expect(secret).to.be.instanceOf(Buffer).with.length(32);
    const [rsaPub, rsaPriv] = (await c.call('C_GenerateKeyPair', [rw, mech(CKM.RSA_PKCS_KEY_PAIR_GEN), [attr.ulong(CKA.MODULUS_BITS, 2048), attr.bool(CKA.WRAP, true)], [attr.bool(CKA.UNWRAP, true)]])) as [bigint, bigint];
    const oaep = mech(CKM.RSA_PKCS_OAEP, { kind: 'oaep', hash: BigInt(CKM.SHA256), mgf: BigInt(CKG.MGF1_SHA256), source: 1n, sourceData: null });
    const unwrapTemplate = [attr.ulong(CKA.CLASS, CKO.SECRET_KEY), attr.ulong(CKA.KEY_TYPE, CKK.AES), attr.bool(CKA.SENSITIVE, false), attr.bool(CKA.EXTRACTABLE, true)];
    const cases: [string, Mechanism, bigint, bigint, number][] = [
      ['CKM_AES_KEY_WRAP', mech(CKM.AES_KEY_WRAP), wrapping, wrapping, 40],
      ['CKM_AES_KEY_WRAP_PAD', mech(CKM.AES_KEY_WRAP_PAD), wrapping, wrapping, 40],
      ['CKM_CLOUDHSM_AES_GCM', mech(CKM.CLOUDHSM_AES_GCM), wrapping, wrapping, 12 + 32 + 16],
      ['CKM_RSA_PKCS_OAEP', oaep, rsaPub, rsaPriv, 256],
    ];
    for (const [name, m, wrapKey, unwrapKey, length] of cases) {
      const [size] = (await c.call('C_WrapKey', [rw, m, wrapKey, payload, 0])) as [ByteArray];
      expect(size.length, name).to.equal(length);
      const wrapped = out((await c.call('C_WrapKey', [rw, m, wrapKey, payload, 4096]))[0]);
      const [unwrapped] = (await c.call('C_UnwrapKey', [rw, m, unwrapKey, bytes(wrapped), unwrapTemplate])) as [bigint];
      expect(await value(c, rw, unwrapped), name).to.deep.equal(secret);
    }
    // Both AES key wraps are OpenSSL's, with their default IVs (a wrapping key readable for the check).
    const readable = await aesKey(c, rw, attr.bool(CKA.WRAP, true), attr.bool(CKA.SENSITIVE, false), attr.bool(CKA.EXTRACTABLE, true));
    const openValue = (await value(c, rw, readable)) as Buffer;
    const kw = createCipheriv('id-aes256-wrap', openValue, Buffer.from('a6a6a6a6a6a6a6a6', 'hex'));
    expect(out((await c.call('C_WrapKey', [rw, mech(CKM.AES_KEY_WRAP), readable, payload, 4096]))[0])).to.deep.equal(Buffer.concat([kw.update(secret as Buffer), kw.final()]));
    const kwp = createCipheriv('id-aes256-wrap-pad', openValue, Buffer.from('a65959a6', 'hex'));
    expect(out((await c.call('C_WrapKey', [rw, mech(CKM.AES_KEY_WRAP_PAD), readable, payload, 4096]))[0])).to.deep.equal(Buffer.concat([kwp.update(secret as Buffer), kwp.final()]));
    const locked = await aesKey(c, rw, attr.bool(CKA.EXTRACTABLE, false));
    expect(await c.refusal('C_WrapKey', [rw, mech(CKM.AES_KEY_WRAP), wrapping, locked, 4096])).to.equal(CKR.KEY_UNEXTRACTABLE);
    expect(await value(c, rw, locked)).to.equal(CKR.ATTRIBUTE_SENSITIVE);
    c.close();
  });

  it('p11-kit 0.25: CKM_SHA256_RSA_PKCS_PSS signs what Node verifies; parameters naming another hash are refused', async () => {
    const { c, rw } = await open('p11-kit-0.25');
    const [pub, priv] = (await c.call('C_GenerateKeyPair', [rw, mech(CKM.RSA_PKCS_KEY_PAIR_GEN), [attr.ulong(CKA.MODULUS_BITS, 2048)], [attr.bool(CKA.SIGN, true)]])) as [bigint, bigint];
    const [n, e] = await read(c, rw, pub, [CKA.MODULUS, 256], [CKA.PUBLIC_EXPONENT, 3]);
    const publicKey = createPublicKey({ key: { kty: 'RSA', n: n!.toString('base64url'), e: e!.toString('base64url') }, format: 'jwk' });
    const pss = mech(CKM.SHA256_RSA_PKCS_PSS, { kind: 'pss', hash: BigInt(CKM.SHA256), mgf: BigInt(CKG.MGF1_SHA256), saltLength: 32n });
    await c.call('C_SignInit', [rw, pss, priv]);
    await c.call('C_SignUpdate', [rw, bytes(Buffer.from('signed '))]);
    await c.call('C_SignUpdate', [rw, bytes(Buffer.from('in two parts'))]);
    const signature = out((await c.call('C_SignFinal', [rw, 256]))[0]);
    expect(verify('sha256', Buffer.from('signed in two parts'), { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature)).to.equal(true);
    expect(await c.refusal('C_SignInit', [rw, mech(CKM.SHA256_RSA_PKCS_PSS, { kind: 'pss', hash: BigInt(CKM.SHA384), mgf: BigInt(CKG.MGF1_SHA384), saltLength: 48n }), priv])).to.equal(CKR.MECHANISM_PARAM_INVALID);
    c.close();
  });
});
