/**
 * Project Wycheproof vectors (test/vectors/wycheproof, copied unchanged from ../shared) run
 * through the member's own door: keys are imported with importKey, and every test's expected
 * result is checked. `valid` must succeed with the expected output, `invalid` must be refused or
 * produce a different output, `acceptable` may go either way; no vector may make the member fail
 * unexpectedly (INTERNAL_ERROR). Vectors that the HSM cannot express are skipped by name below.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import type { DeriveMechanism, HashName, Request, Response } from '../../src/hsm-core/index.js';
import { activatedMember, bytes, hex, type Fixture } from '../helpers/member.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors', 'wycheproof');

/** Whole files the HSM has no key type or mechanism for (none: Ed448 and X448 run under the unlimited profile). */
const SKIPPED_FILES: Record<string, string> = {};

/** The OKP key type and the PKCS #8 header of a bare private key, per Wycheproof curve name. */
const OKP: Record<string, { sign?: 'ed25519' | 'ed448'; agree?: 'x25519' | 'x448'; pkcs8?: string }> = {
  edwards25519: { sign: 'ed25519' },
  edwards448: { sign: 'ed448' },
  curve25519: { agree: 'x25519', pkcs8: '302e020100300506032b656e04220420' },
  curve448: { agree: 'x448', pkcs8: '3046020100300506032b656f043a0438' },
};

/** Individual vectors skipped, with the reason. */
function skipReason(group: Group, test: Vector): string | null {
  if (test.flags?.includes('LargeIterationCount')) return 'PBKDF2 with millions of iterations: minutes of run time for nothing the smaller counts do not cover';
  if (group.mgfSha && group.sha && group.mgfSha !== group.sha) return 'an MGF1 hash different from the message hash cannot be expressed (as in WebCrypto)';
  if (group.mgf && group.mgf !== 'MGF1') return `MGF ${group.mgf} is not supported`;
  if (group.sha && !HASH[group.sha]) return `hash ${group.sha} is not supported`;
  if (group.type === 'AeadTest' && typeof test.iv === 'string' && test.iv.length / 2 > 255) {
    return 'AES-GCM IVs of 256 bytes or more: OpenSSL 3.0 refuses them (so does Node’s WebCrypto); the member answers MECHANISM_PARAM_INVALID';
  }
  return null;
}

const HASH: Record<string, HashName> = { 'SHA-1': 'sha1', 'SHA-224': 'sha224', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

interface Group {
  type: string;
  keySize?: number;
  tagSize?: number;
  sha?: string;
  mgf?: string;
  mgfSha?: string;
  sLen?: number;
  curve?: string;
  publicKey?: { curve?: string };
  publicKeyDer?: string;
  privateKeyPkcs8?: string;
  tests: Vector[];
}

interface Vector {
  tcId: number;
  result: 'valid' | 'invalid' | 'acceptable';
  flags?: string[];
  [k: string]: unknown;
}

type Outcome = 'pass' | 'refused' | 'mismatch';

let f: Fixture;
before(async () => {
  f = await activatedMember({ profile: 'unlimited' });
});

class Unexpected extends Error {}

/** Sends a request; a refusal becomes `null`, an INTERNAL_ERROR fails the test. */
async function send(request: Request): Promise<Record<string, unknown> | null> {
  const response: Response = await f.m.raw(request);
  if (response.ok) return response.result as unknown as Record<string, unknown>;
  if (response.error.code === 'INTERNAL_ERROR') throw new Unexpected(`${request.op}: ${response.error.message}`);
  return null;
}

const importCache = new Map<string, number | null>();
/** Imports a key once per (material, attributes), since many vectors share a key. */
async function importOnce(material: string, request: Request & { op: 'importKey' }): Promise<number | null> {
  const cacheKey = `${material}:${request.keyType}:${JSON.stringify(request.attributes)}`;
  if (!importCache.has(cacheKey)) {
    const r = await send(request);
    importCache.set(cacheKey, r ? (r.handle as number) : null);
  }
  return importCache.get(cacheKey)!;
}

const s = () => f.alice;
const secret = (raw: string, keyType: 'aes' | 'generic-secret', attributes: Record<string, boolean>) =>
  importOnce(raw, { op: 'importKey', session: s(), keyClass: 'secret-key', keyType, format: 'raw', keyData: bytes(raw), attributes: { ...attributes, extractable: true } });

const same = (a: unknown, b: string) => a instanceof Uint8Array && hex(a) === b;

/** One runner per Wycheproof schema: the outcome of a vector. */
const RUNNERS: Record<string, (g: Group, t: Vector) => Promise<Outcome>> = {
  async 'aead_test_schema_v1.json'(g, t) {
    const key = await secret(t.key as string, 'aes', { encrypt: true, decrypt: true });
    if (key === null) return 'refused';
    // IVs under 12 bytes and tags under 96 bits are outside the HSM's own bounds (test/security);
    // the vectors check the algorithm, so those run with WebCrypto's bounds, as the door asks.
    const short = (t.iv as string).length < 24 || g.tagSize! < 96;
    const mechanism = { name: 'aes-gcm', iv: bytes(t.iv as string), aad: bytes(t.aad as string), tagLengthBits: g.tagSize, ...(short ? { webcrypto: true } : {}) } as const;
    const sealed = (t.ct as string) + (t.tag as string);
    const dec = await send({ op: 'decrypt', session: s(), handle: key, mechanism: mechanism as never, data: bytes(sealed) });
    if (!dec) return 'refused';
    if (!same(dec.data, t.msg as string)) return 'mismatch';
    const enc = await send({ op: 'encrypt', session: s(), handle: key, mechanism: mechanism as never, data: bytes(t.msg as string) });
    return enc && same(enc.data, sealed) ? 'pass' : 'mismatch';
  },
  async 'ind_cpa_test_schema_v1.json'(_g, t) {
    const key = await secret(t.key as string, 'aes', { encrypt: true, decrypt: true });
    if (key === null) return 'refused';
    const mechanism = { name: 'aes-cbc-pad', iv: bytes(t.iv as string) } as const;
    const dec = await send({ op: 'decrypt', session: s(), handle: key, mechanism, data: bytes(t.ct as string) });
    if (!dec) return 'refused';
    if (!same(dec.data, t.msg as string)) return 'mismatch';
    const enc = await send({ op: 'encrypt', session: s(), handle: key, mechanism, data: bytes(t.msg as string) });
    return enc && same(enc.data, t.ct as string) ? 'pass' : 'mismatch';
  },
  async 'keywrap_test_schema_v1.json'(_g, t) {
    const kek = await secret(t.key as string, 'aes', { wrap: true, unwrap: true });
    if (kek === null) return 'refused';
    const unwrapped = await send({
      op: 'unwrapKey',
      session: s(),
      mechanism: { name: 'aes-no-pad' },
      unwrappingHandle: kek,
      wrapped: bytes(t.ct as string),
      keyClass: 'secret-key',
      keyType: 'generic-secret',
      attributes: { sensitive: false },
    });
    if (!unwrapped) return 'refused';
    const raw = await send({ op: 'exportKey', session: s(), handle: unwrapped.handle as number, format: 'raw' });
    if (!raw || !same(raw.keyData, t.msg as string)) return 'mismatch';
    const payload = await secret(t.msg as string, 'generic-secret', {});
    if (payload === null) return 'refused';
    const wrapped = await send({ op: 'wrapKey', session: s(), mechanism: { name: 'aes-no-pad' }, wrappingHandle: kek, payloadHandle: payload });
    return wrapped && same(wrapped.wrapped, t.ct as string) ? 'pass' : 'mismatch';
  },
  async 'mac_test_schema_v1.json'(g, t) {
    const key = await secret(t.key as string, 'generic-secret', { sign: true });
    if (key === null) return 'refused';
    const hash = hashOfFile();
    const tag = await send({ op: 'sign', session: s(), handle: key, mechanism: { name: 'hmac', hash }, data: bytes(t.msg as string) });
    if (!tag) return 'refused';
    return hex((tag.signature as Uint8Array).subarray(0, g.tagSize! / 8)) === t.tag ? 'pass' : 'mismatch';
  },
  async 'hkdf_test_schema_v1.json'(_g, t) {
    const mechanism = { name: 'hkdf', hash: hashOfFile(), salt: bytes(t.salt as string), info: bytes(t.info as string) } as const;
    return deriveFromSecret(t.ikm as string, mechanism, t.size as number, t.okm as string);
  },
  async 'pbkdf_test_schema.json'(_g, t) {
    const mechanism = { name: 'pbkdf2', hash: hashOfFile(), salt: bytes(t.salt as string), iterations: t.iterationCount as number } as const;
    return deriveFromSecret(t.password as string, mechanism, t.dkLen as number, t.dk as string);
  },
  async 'ecdsa_p1363_verify_schema_v1.json'(g, t) {
    return verifyWith(g, 'ec', { name: 'ecdsa', hash: HASH[g.sha!]! }, t);
  },
  async 'eddsa_verify_schema_v1.json'(g, t) {
    const type = OKP[g.publicKey!.curve!]!.sign!;
    return verifyWith(g, type, { name: type }, t);
  },
  async 'rsassa_pkcs1_verify_schema_v1.json'(g, t) {
    return verifyWith(g, 'rsa', { name: 'rsa-pkcs', hash: HASH[g.sha!]! }, t);
  },
  async 'rsassa_pss_verify_schema_v1.json'(g, t) {
    return verifyWith(g, 'rsa', { name: 'rsa-pkcs-pss', hash: HASH[g.sha!]!, saltLength: g.sLen! }, t);
  },
  async 'rsassa_pkcs1_generate_schema_v1.json'(g, t) {
    const key = await rsaPrivate(g, { sign: true });
    if (key === null) return 'refused';
    const out = await send({ op: 'sign', session: s(), handle: key, mechanism: { name: 'rsa-pkcs', hash: HASH[g.sha!]! }, data: bytes(t.msg as string) });
    if (!out) return 'refused';
    return same(out.signature, t.sig as string) ? 'pass' : 'mismatch';
  },
  async 'rsaes_oaep_decrypt_schema_v1.json'(g, t) {
    const key = await rsaPrivate(g, { decrypt: true });
    if (key === null) return 'refused';
    const label = bytes(t.label as string);
    const out = await send({
      op: 'decrypt',
      session: s(),
      handle: key,
      mechanism: { name: 'rsa-oaep', hash: HASH[g.sha!]!, ...(label.length ? { label } : {}) },
      data: bytes(t.ct as string),
    });
    if (!out) return 'refused';
    return same(out.data, t.msg as string) ? 'pass' : 'mismatch';
  },
  async 'ecdh_webcrypto_test_schema_v1.json'(_g, t) {
    // A file's hundreds of vectors share a few dozen private keys: each is imported once.
    const priv = await importOnce(JSON.stringify(t.private), { op: 'importKey', session: s(), keyClass: 'private-key', keyType: 'ec', format: 'jwk', keyData: t.private as never, attributes: { derive: true } });
    if (priv === null) return 'refused';
    const pub = await send({ op: 'importKey', session: s(), keyClass: 'public-key', keyType: 'ec', format: 'jwk', keyData: t.public as never });
    if (!pub) return 'refused';
    return agreement(priv, { name: 'ecdh', publicHandle: pub.handle as number }, t.shared as string);
  },
  async 'xdh_comp_schema_v1.json'(g, t) {
    const { agree, pkcs8 } = OKP[g.curve!]!;
    const priv = await send({ op: 'importKey', session: s(), keyClass: 'private-key', keyType: agree!, format: 'pkcs8', keyData: bytes(`${pkcs8!}${t.private as string}`), attributes: { derive: true } });
    if (!priv) return 'refused';
    const pub = await send({ op: 'importKey', session: s(), keyClass: 'public-key', keyType: agree!, format: 'raw', keyData: bytes(t.public as string) });
    if (!pub) return 'refused';
    return agreement(priv.handle as number, { name: 'ecdh', publicHandle: pub.handle as number }, t.shared as string);
  },
  async 'xdh_asn_comp_schema_v1.json'(g, t) {
    const priv = await send({ op: 'importKey', session: s(), keyClass: 'private-key', keyType: OKP[g.curve!]!.agree!, format: 'pkcs8', keyData: bytes(t.private as string), attributes: { derive: true } });
    if (!priv) return 'refused';
    return agreement(priv.handle as number, { name: 'ecdh', publicKey: bytes(t.public as string) }, t.shared as string);
  },
};

/** HKDF and PBKDF2: import the input as a generic secret and derive `bytes` bytes. */
async function deriveFromSecret(input: string, mechanism: DeriveMechanism, length: number, expected: string): Promise<Outcome> {
  const key = await secret(input, 'generic-secret', { derive: true });
  if (key === null) return 'refused';
  const out = await send({ op: 'deriveBits', session: s(), baseHandle: key, mechanism, lengthBits: length * 8 });
  if (!out) return 'refused';
  return same(out.bits, expected) ? 'pass' : 'mismatch';
}

function rsaPrivate(g: Group, attributes: { sign?: boolean; decrypt?: boolean }): Promise<number | null> {
  return importOnce(g.privateKeyPkcs8!, { op: 'importKey', session: s(), keyClass: 'private-key', keyType: 'rsa', format: 'pkcs8', keyData: bytes(g.privateKeyPkcs8!), attributes });
}

async function verifyWith(g: Group, keyType: 'ec' | 'ed25519' | 'ed448' | 'rsa', mechanism: Record<string, unknown>, t: Vector): Promise<Outcome> {
  const key = await importOnce(g.publicKeyDer!, {
    op: 'importKey',
    session: s(),
    keyClass: 'public-key',
    keyType,
    format: 'spki',
    keyData: bytes(g.publicKeyDer!),
    attributes: { verify: true },
  });
  if (key === null) return 'refused';
  const out = await send({ op: 'verify', session: s(), handle: key, mechanism: mechanism as never, data: bytes(t.msg as string), signature: bytes(t.sig as string) });
  if (!out) return 'refused';
  return out.valid === true ? 'pass' : 'mismatch';
}

async function agreement(handle: number, mechanism: Record<string, unknown>, shared: string): Promise<Outcome> {
  const out = await send({ op: 'deriveBits', session: s(), baseHandle: handle, mechanism: mechanism as never });
  if (!out) return 'refused';
  return same(out.bits, shared) ? 'pass' : 'mismatch';
}

let currentFile = '';
/** HMAC, HKDF and PBKDF2 files name their hash in the file name (hmac_sha256_test.json). */
function hashOfFile(): HashName {
  return HASH[`SHA-${/sha(\d+)_test/.exec(currentFile)![1]}`]!;
}

describe('hsm-core: Wycheproof vectors', function () {
  this.timeout(120_000);
  const files = readdirSync(DIR).filter((name) => name.endsWith('.json')).sort();

  it('runs every vector file it has a runner for', () => {
    const schemas = files.map((name) => (JSON.parse(readFileSync(join(DIR, name), 'utf8')) as { schema: string }).schema);
    const missing = files.filter((name, i) => !SKIPPED_FILES[name] && !RUNNERS[schemas[i]!]);
    expect(missing).to.deep.equal([]);
  });

  for (const name of files) {
    if (SKIPPED_FILES[name]) {
      it.skip(`${name}: ${SKIPPED_FILES[name]}`);
      continue;
    }
    it(name, async () => {
      currentFile = name;
      const file = JSON.parse(readFileSync(join(DIR, name), 'utf8')) as { schema: string; testGroups: Group[] };
      const run = RUNNERS[file.schema]!;
      const failures: string[] = [];
      let ran = 0;
      for (const group of file.testGroups) {
        for (const test of group.tests) {
          if (skipReason(group, test)) continue;
          ran += 1;
          const outcome = await run(group, test);
          if (test.result === 'valid' && outcome !== 'pass') failures.push(`tcId ${test.tcId} (valid): ${outcome}`);
          if (test.result === 'invalid' && outcome === 'pass') failures.push(`tcId ${test.tcId} (invalid): accepted`);
        }
      }
      expect(ran, 'no vector ran').to.be.greaterThan(0);
      expect(failures, failures.slice(0, 10).join('; ')).to.deep.equal([]);
    });
  }
});

/**
 * The signature vectors again with the digest in place of the message (`prehashed`: CloudHSM CLI's
 * `--data-type digest`, PKCS #11's CKM_ECDSA and CKM_RSA_PKCS over a DigestInfo), so signing a
 * digest the caller computed accepts and refuses exactly what signing the message does.
 */
describe('hsm-core: Wycheproof signature vectors as digests (prehashed)', function () {
  this.timeout(120_000);
  const PREHASHED: Record<string, (g: Group) => { keyType: 'ec' | 'rsa'; mechanism: Record<string, unknown> }> = {
    'ecdsa_p1363_verify_schema_v1.json': (g) => ({ keyType: 'ec', mechanism: { name: 'ecdsa', hash: HASH[g.sha!]!, prehashed: true } }),
    'rsassa_pkcs1_verify_schema_v1.json': (g) => ({ keyType: 'rsa', mechanism: { name: 'rsa-pkcs', hash: HASH[g.sha!]!, prehashed: true } }),
    'rsassa_pss_verify_schema_v1.json': (g) => ({ keyType: 'rsa', mechanism: { name: 'rsa-pkcs-pss', hash: HASH[g.sha!]!, saltLength: g.sLen!, prehashed: true } }),
  };
  // One file per kind keeps the run short; the message form above runs them all.
  const files = ['ecdsa_secp256r1_sha256_p1363_test.json', 'rsa_signature_2048_sha256_test.json', 'rsa_pss_2048_sha256_mgf1_32_test.json', 'rsa_pss_misc_test.json'];
  for (const name of files) {
    it(name, async () => {
      const file = JSON.parse(readFileSync(join(DIR, name), 'utf8')) as { schema: string; testGroups: Group[] };
      const shape = PREHASHED[file.schema]!;
      const failures: string[] = [];
      let ran = 0;
      for (const group of file.testGroups) {
        for (const test of group.tests) {
          if (skipReason(group, test)) continue;
          ran += 1;
          const { keyType, mechanism } = shape(group);
          const digest = createHash(mechanism.hash as HashName).update(bytes(test.msg as string)).digest();
          const outcome = await verifyWith(group, keyType, mechanism, { ...test, msg: hex(digest) });
          if (test.result === 'valid' && outcome !== 'pass') failures.push(`tcId ${test.tcId} (valid): ${outcome}`);
          if (test.result === 'invalid' && outcome === 'pass') failures.push(`tcId ${test.tcId} (invalid): accepted`);
        }
      }
      expect(ran, 'no vector ran').to.be.greaterThan(0);
      expect(failures, failures.slice(0, 10).join('; ')).to.deep.equal([]);
    });
  }
});
