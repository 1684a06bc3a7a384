/**
 * The MAC of PKCS #12 files (RFC 7292 appendix B.2's key, then HMAC), which the keystore's pkijs
 * engine makes with node:crypto a bounded number of hashes a turn of the event loop instead of
 * pkijs's own JavaScript hashing in one go. Held to pkijs's own engine, value by value; the files'
 * interop with openssl is in pkcs12.test.ts. And the iteration counts a file may ask for, of its
 * MAC and of the PBKDF2 that encrypts its content.
 */
import { webcrypto } from 'node:crypto';
import { expect } from 'chai';
import * as pkijs from 'pkijs';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { HASHES_PER_TURN, MAX_ITERATIONS, NodeEngine, readPkcs12, writePkcs12 } from '../../src/keystore/pkcs12.js';
import { refusal } from '../helpers/refusal.js';
import { turnCounter } from '../helpers/turns.js';

const engines = () => ({
  ours: new NodeEngine({ name: 'node', crypto: webcrypto as never }),
  pkijs: new pkijs.CryptoEngine({ name: 'pkijs', crypto: webcrypto as never }),
});
const buffer = (bytes: Uint8Array) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
const utf8 = (text: string) => buffer(new TextEncoder().encode(text));
const hex = (b: ArrayBuffer) => Buffer.from(b).toString('hex');

describe('keystore: the PKCS #12 MAC', () => {
  it('is the MAC pkijs makes, for every hash, password (ASCII, non-ASCII, not UTF-8, empty), salt and iteration count', async () => {
    const { ours, pkijs: theirs } = engines();
    const passwords = [utf8('store-password'), utf8('pässwörd-日本'), buffer(new Uint8Array([0xff, 0xfe, 0x41])), utf8(''), utf8('x'.repeat(70))];
    const salts = [buffer(new Uint8Array(8).fill(7)), buffer(new Uint8Array(20).map((_, i) => i)), buffer(new Uint8Array(65).fill(1))];
    const content = utf8('the authenticated safe');
    let compared = 0;
    for (const hashAlgorithm of ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512']) {
      for (const password of passwords) {
        for (const salt of salts) {
          for (const iterationCount of [1, 2, 3, 100]) {
            const params = { password, hashAlgorithm, salt, iterationCount, contentToStamp: content };
            const mine = await ours.stampDataWithPassword(params);
            expect(hex(mine), `${hashAlgorithm}, ${iterationCount} iterations`).to.equal(hex(await theirs.stampDataWithPassword(params)));
            compared += 1;
          }
        }
      }
    }
    expect(compared).to.equal(4 * 5 * 3 * 4);
  });

  it('checks a MAC: the right one passes, another password, a changed byte or a shorter MAC fails', async () => {
    const { ours, pkijs: theirs } = engines();
    const base = { password: utf8('store-password'), hashAlgorithm: 'SHA-256', salt: buffer(new Uint8Array(8).fill(9)), iterationCount: 2048 };
    const content = utf8('the authenticated safe');
    const mac = await theirs.stampDataWithPassword({ ...base, contentToStamp: content });
    const verify = (changes: Partial<typeof base> & { signatureToVerify?: ArrayBuffer }) =>
      ours.verifyDataStampedWithPassword({ ...base, contentToVerify: content, signatureToVerify: mac, ...changes });
    expect(await verify({})).to.equal(true);
    expect(await verify({ password: utf8('store-passwore') })).to.equal(false);
    const changed = new Uint8Array(mac.slice(0));
    changed[5]! ^= 1;
    expect(await verify({ signatureToVerify: buffer(changed) })).to.equal(false);
    expect(await verify({ signatureToVerify: mac.slice(0, 31) })).to.equal(false);
    expect(await verify({ iterationCount: 2047 })).to.equal(false);
  });

  it('refuses a MAC hash it does not know, naming it', async () => {
    const { ours } = engines();
    const params = { password: utf8('p'), hashAlgorithm: 'MD5', salt: buffer(new Uint8Array(8)), iterationCount: 1, contentToStamp: utf8('x') };
    const error = await refusal(ours.stampDataWithPassword(params));
    expect(error.code).to.equal('BAD_REQUEST');
    expect(error.message).to.equal('PKCS #12 MAC: hash MD5 is not one of SHA-1, SHA-256, SHA-384, SHA-512');
  });

  it(`lets the event loop turn every ${HASHES_PER_TURN} iterations of the key's hash rather than holding it for all of them`, async () => {
    const { ours } = engines();
    const turnsAtLeast = 4;
    const params = { password: utf8('p'), hashAlgorithm: 'SHA-256', salt: buffer(new Uint8Array(8)), iterationCount: HASHES_PER_TURN * turnsAtLeast + 1, contentToStamp: utf8('x') };
    const counter = turnCounter();
    await ours.stampDataWithPassword(params);
    counter.stop();
    expect(counter.turns()).to.be.at.least(turnsAtLeast);
  });

  it(`refuses a file whose MAC asks for more than ${MAX_ITERATIONS.toLocaleString('en-US')} iterations, saying so, without working through them`, async () => {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=MAC test', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000) }, webcrypto as never);
    const file = await writePkcs12([{ alias: 'root', kind: 'certificate', chain: [cert] }], 'store-password');
    expect((await readPkcs12(file, 'store-password')).map((e) => e.alias)).to.deep.equal(['root']);
    const pfx = pkijs.PFX.fromBER(Buffer.from(file));
    pfx.macData!.iterations = MAX_ITERATIONS + 1;
    const tampered = new Uint8Array(pfx.toSchema().toBER(false));
    const error = await refusal(readPkcs12(tampered, 'store-password'));
    expect(error.code).to.equal('BAD_REQUEST');
    expect(error.message).to.equal(`PKCS #12 MAC: ${MAX_ITERATIONS + 1} iterations is outside the 1 to 5,000,000 this keystore reads`);
  });
});

describe('keystore: the PBKDF2 of a PKCS #12 file\'s encrypted content', () => {
  it(`refuses a file whose encrypted content asks for more than ${MAX_ITERATIONS.toLocaleString('en-US')} PBKDF2 iterations, MAC intact, without deriving its key`, async () => {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=PBKDF2 test', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000) }, webcrypto as never);
    const password = 'store-password';
    const file = await writePkcs12([{ alias: 'root', kind: 'certificate', chain: [cert] }], password);
    // The certificates' SafeContents is encrypted (PBES2): its PBKDF2 count is raised, and the
    // MAC made again over the changed content, as a file crafted by someone who knows its password.
    const pfx = pkijs.PFX.fromBER(Buffer.from(file));
    const authSafe = pkijs.AuthenticatedSafe.fromBER((pfx.authSafe.content as asn1js.OctetString).getValue());
    const encrypted = authSafe.safeContents.filter((c) => c.contentType === pkijs.id_ContentType_EncryptedData);
    expect(encrypted).to.have.length(1);
    const data = new pkijs.EncryptedData({ schema: encrypted[0]!.content });
    const algorithm = data.encryptedContentInfo.contentEncryptionAlgorithm;
    const pbes2 = new pkijs.PBES2Params({ schema: algorithm.algorithmParams });
    const kdf = new pkijs.PBKDF2Params({ schema: pbes2.keyDerivationFunc.algorithmParams });
    expect(kdf.iterationCount).to.equal(100_000);
    kdf.iterationCount = MAX_ITERATIONS + 1;
    pbes2.keyDerivationFunc.algorithmParams = kdf.toSchema();
    algorithm.algorithmParams = pbes2.toSchema();
    encrypted[0]!.content = data.toSchema();
    const content = authSafe.toSchema().toBER(false);
    pfx.authSafe.content = new asn1js.OctetString({ valueHex: content });
    const mac = pfx.macData!;
    const stamp = await engines().ours.stampDataWithPassword({ password: utf8(password), hashAlgorithm: 'SHA-256', salt: mac.macSalt.getValue(), iterationCount: mac.iterations!, contentToStamp: content });
    mac.mac.digest = new asn1js.OctetString({ valueHex: stamp });
    const crafted = new Uint8Array(pfx.toSchema().toBER(false));
    const error = await refusal(readPkcs12(crafted, password));
    expect(error.code).to.equal('BAD_REQUEST');
    expect(error.message).to.equal(`PKCS #12 encryption (PBKDF2): ${MAX_ITERATIONS + 1} iterations is outside the 1 to 5,000,000 this keystore reads`);
  });
});
