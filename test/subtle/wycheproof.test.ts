/**
 * Project Wycheproof vectors through the WebCrypto door: every file in test/vectors/wycheproof
 * (a copy of ../shared/testvectors/wycheproof) whose algorithm WebCrypto has runs here with
 * `session.crypto.subtle` calls only — import, then decrypt/encrypt, sign/verify, deriveBits,
 * wrapKey/unwrapKey. `valid` vectors must give the expected result, `invalid` ones must not, and
 * every refusal must be a WebCrypto error (a DOMException with a spec name), never a crash.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { buf, openDoor, type CryptoKey, type DoorFixture, type SubtleCrypto } from '../helpers/door.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors', 'wycheproof');

/** Whole files with no WebCrypto algorithm at this door (none: Ed448 and X448 run under the unlimited profile). */
const SKIPPED_FILES: Record<string, string> = {};

/** The WebCrypto algorithm, PKCS #8 header of a bare private key and secret size, per Wycheproof curve name. */
const OKP: Record<string, { name: string; pkcs8?: string; bits?: number }> = {
  edwards25519: { name: 'Ed25519' },
  edwards448: { name: 'Ed448' },
  curve25519: { name: 'X25519', pkcs8: '302e020100300506032b656e04220420', bits: 256 },
  curve448: { name: 'X448', pkcs8: '3046020100300506032b656f043a0438', bits: 448 },
};

interface Group {
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

/** Vectors WebCrypto cannot express, with the reason (these are skipped, not failed). */
function skipReason(group: Group, test: Vector): string | null {
  if (test.flags?.includes('LargeIterationCount')) return 'PBKDF2 with millions of iterations: minutes of run time for nothing the smaller counts do not cover';
  if (group.sha && !HASHES.includes(group.sha)) return `${group.sha} is not a WebCrypto hash`;
  if (group.mgfSha && group.mgfSha !== group.sha) return 'WebCrypto uses the message hash for MGF1';
  if (group.mgf && group.mgf !== 'MGF1') return `MGF ${group.mgf} is not in WebCrypto`;
  if (typeof test.iv === 'string' && group.tagSize !== undefined && test.iv.length / 2 > 255) return 'AES-GCM IVs over 255 bytes: the HSM (and OpenSSL 3.0 under Node) refuse them';
  return null;
}

const HASHES = ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'];
const CURVES: Record<string, string> = { secp256r1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

const hex = (s: unknown) => Buffer.from(s as string, 'hex');
const same = (a: ArrayBuffer, expected: unknown) => buf(a).toString('hex') === expected;

type Outcome = 'pass' | 'refused' | 'mismatch';

let f: DoorFixture;
let s: SubtleCrypto;
before(async () => {
  f = await openDoor('unlimited');
  s = f.subtle;
});
after(() => f.close());

/** Runs a door call; a WebCrypto refusal is `null`, anything else that is thrown fails the test. */
async function attempt<T>(run: () => Promise<T>): Promise<T | null> {
  try {
    return await run();
  } catch (e) {
    const name = (e as Error).name;
    if (e instanceof DOMException && ['OperationError', 'DataError', 'InvalidAccessError', 'NotSupportedError', 'SyntaxError'].includes(name)) return null;
    throw new Error(`not a WebCrypto error: ${name}: ${(e as Error).message}`);
  }
}

/** One import per key, shared by the vectors that use it (they run concurrently, so the promise is kept). */
const cache = new Map<string, Promise<CryptoKey | null>>();
function once(id: string, make: () => Promise<CryptoKey>): Promise<CryptoKey | null> {
  if (!cache.has(id)) cache.set(id, attempt(make));
  return cache.get(id)!;
}

let currentFile = '';
const fileHash = () => `SHA-${/sha(\d+)_test/.exec(currentFile)![1]}`;

const RUNNERS: Record<string, (g: Group, t: Vector) => Promise<Outcome>> = {
  async 'aead_test_schema_v1.json'(g, t) {
    const key = await once(`gcm:${t.key as string}`, () => s.importKey('raw', hex(t.key), 'AES-GCM', false, ['encrypt', 'decrypt']));
    if (!key) return 'refused';
    const params = { name: 'AES-GCM', iv: hex(t.iv), additionalData: hex(t.aad), tagLength: g.tagSize };
    const sealed = (t.ct as string) + (t.tag as string);
    const opened = await attempt(() => s.decrypt(params, key, hex(sealed)));
    if (!opened) return 'refused';
    if (!same(opened, t.msg)) return 'mismatch';
    const ct = await attempt(() => s.encrypt(params, key, hex(t.msg)));
    return ct && same(ct, sealed) ? 'pass' : 'mismatch';
  },
  async 'ind_cpa_test_schema_v1.json'(_g, t) {
    const key = await once(`cbc:${t.key as string}`, () => s.importKey('raw', hex(t.key), 'AES-CBC', false, ['encrypt', 'decrypt']));
    if (!key) return 'refused';
    const params = { name: 'AES-CBC', iv: hex(t.iv) };
    const opened = await attempt(() => s.decrypt(params, key, hex(t.ct)));
    if (!opened) return 'refused';
    if (!same(opened, t.msg)) return 'mismatch';
    const ct = await attempt(() => s.encrypt(params, key, hex(t.msg)));
    return ct && same(ct, t.ct) ? 'pass' : 'mismatch';
  },
  async 'keywrap_test_schema_v1.json'(_g, t) {
    const kek = await once(`kw:${t.key as string}`, () => s.importKey('raw', hex(t.key), 'AES-KW', false, ['wrapKey', 'unwrapKey']));
    if (!kek) return 'refused';
    // The wrapped payload becomes an HMAC key (any length), extractable so it can be compared.
    const hmac = { name: 'HMAC', hash: 'SHA-256' };
    const unwrapped = await attempt(() => s.unwrapKey('raw', hex(t.ct), kek, 'AES-KW', hmac, true, ['sign']));
    if (!unwrapped) return 'refused';
    if (!same(await s.exportKey('raw', unwrapped), t.msg)) return 'mismatch';
    const wrapped = await attempt(() => s.wrapKey('raw', unwrapped, kek, 'AES-KW'));
    return wrapped && same(wrapped, t.ct) ? 'pass' : 'mismatch';
  },
  async 'mac_test_schema_v1.json'(g, t) {
    const hash = fileHash();
    const key = await once(`hmac:${hash}:${t.key as string}`, () => s.importKey('raw', hex(t.key), { name: 'HMAC', hash }, false, ['sign', 'verify']));
    if (!key) return 'refused';
    const tag = await attempt(() => s.sign('HMAC', key, hex(t.msg)));
    if (!tag) return 'refused';
    // WebCrypto HMAC has no truncated tags: compare the prefix, and verify only full-size tags.
    if (buf(tag).subarray(0, g.tagSize! / 8).toString('hex') !== t.tag) return 'mismatch';
    if (g.tagSize! / 8 === tag.byteLength && !(await s.verify('HMAC', key, hex(t.tag), hex(t.msg)))) return 'mismatch';
    return 'pass';
  },
  async 'hkdf_test_schema_v1.json'(_g, t) {
    const key = await attempt(() => s.importKey('raw', hex(t.ikm), 'HKDF', false, ['deriveBits']));
    if (!key) return 'refused';
    const bits = await attempt(() => s.deriveBits({ name: 'HKDF', hash: fileHash(), salt: hex(t.salt), info: hex(t.info) }, key, (t.size as number) * 8));
    if (!bits) return 'refused';
    return same(bits, t.okm) ? 'pass' : 'mismatch';
  },
  async 'pbkdf_test_schema.json'(_g, t) {
    const key = await attempt(() => s.importKey('raw', hex(t.password), 'PBKDF2', false, ['deriveBits']));
    if (!key) return 'refused';
    const bits = await attempt(() => s.deriveBits({ name: 'PBKDF2', hash: fileHash(), salt: hex(t.salt), iterations: t.iterationCount as number }, key, (t.dkLen as number) * 8));
    if (!bits) return 'refused';
    return same(bits, t.dk) ? 'pass' : 'mismatch';
  },
  async 'ecdsa_p1363_verify_schema_v1.json'(g, t) {
    const alg = { name: 'ECDSA', namedCurve: CURVES[g.publicKey!.curve!]! };
    return verify(g, alg, { name: 'ECDSA', hash: g.sha! }, t);
  },
  async 'eddsa_verify_schema_v1.json'(g, t) {
    const { name } = OKP[g.publicKey!.curve!]!;
    return verify(g, { name }, { name }, t);
  },
  async 'rsassa_pkcs1_verify_schema_v1.json'(g, t) {
    return verify(g, { name: 'RSASSA-PKCS1-v1_5', hash: g.sha! }, { name: 'RSASSA-PKCS1-v1_5' }, t);
  },
  async 'rsassa_pss_verify_schema_v1.json'(g, t) {
    return verify(g, { name: 'RSA-PSS', hash: g.sha! }, { name: 'RSA-PSS', saltLength: g.sLen! }, t);
  },
  async 'rsassa_pkcs1_generate_schema_v1.json'(g, t) {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: g.sha! };
    const key = await once(`rsa-sign:${g.sha}:${g.privateKeyPkcs8}`, () => s.importKey('pkcs8', hex(g.privateKeyPkcs8), alg, false, ['sign']));
    if (!key) return 'refused';
    const sig = await attempt(() => s.sign(alg, key, hex(t.msg)));
    if (!sig) return 'refused';
    return same(sig, t.sig) ? 'pass' : 'mismatch';
  },
  async 'rsaes_oaep_decrypt_schema_v1.json'(g, t) {
    const alg = { name: 'RSA-OAEP', hash: g.sha! };
    const key = await once(`oaep:${g.sha}:${g.privateKeyPkcs8}`, () => s.importKey('pkcs8', hex(g.privateKeyPkcs8), alg, false, ['decrypt']));
    if (!key) return 'refused';
    const label = hex(t.label);
    const msg = await attempt(() => s.decrypt({ name: 'RSA-OAEP', ...(label.length ? { label } : {}) }, key, hex(t.ct)));
    if (!msg) return 'refused';
    return same(msg, t.msg) ? 'pass' : 'mismatch';
  },
  async 'ecdh_webcrypto_test_schema_v1.json'(_g, t) {
    const jwk = t.private as { crv: string };
    const alg = { name: 'ECDH', namedCurve: jwk.crv };
    // A file's hundreds of vectors share a few dozen private keys: each is imported once.
    const priv = await once(`ecdh:${JSON.stringify(jwk)}`, () => s.importKey('jwk', jwk, alg, false, ['deriveBits']));
    if (!priv) return 'refused';
    const pub = await attempt(() => s.importKey('jwk', t.public as object, alg, true, []));
    if (!pub) return 'refused';
    const bits = await attempt(() => s.deriveBits({ name: 'ECDH', public: pub }, priv, null as unknown as number));
    if (!bits) return 'refused';
    return same(bits, t.shared) ? 'pass' : 'mismatch';
  },
  async 'xdh_comp_schema_v1.json'(g, t) {
    return xdh(OKP[g.curve!]!, hex(`${OKP[g.curve!]!.pkcs8!}${t.private as string}`), 'raw', hex(t.public), t.shared);
  },
  async 'xdh_asn_comp_schema_v1.json'(g, t) {
    return xdh(OKP[g.curve!]!, hex(t.private), 'spki', hex(t.public), t.shared);
  },
};

async function verify(g: Group, alg: Record<string, unknown>, params: Record<string, unknown>, t: Vector): Promise<Outcome> {
  const key = await once(`verify:${JSON.stringify(alg)}:${g.publicKeyDer}`, () => s.importKey('spki', hex(g.publicKeyDer), alg as never, false, ['verify']));
  if (!key) return 'refused';
  const ok = await attempt(() => s.verify(params as never, key, hex(t.sig), hex(t.msg)));
  if (ok === null) return 'refused';
  return ok ? 'pass' : 'mismatch';
}

async function xdh(curve: { name: string; bits?: number }, pkcs8: Buffer, publicFormat: 'raw' | 'spki', peer: Buffer, shared: unknown): Promise<Outcome> {
  const priv = await attempt(() => s.importKey('pkcs8', pkcs8, curve.name, false, ['deriveBits']));
  if (!priv) return 'refused';
  const pub = await attempt(() => s.importKey(publicFormat, peer, curve.name, true, []));
  if (!pub) return 'refused';
  const bits = await attempt(() => s.deriveBits({ name: curve.name, public: pub } as never, priv, curve.bits!));
  if (!bits) return 'refused';
  return same(bits, shared) ? 'pass' : 'mismatch';
}

/**
 * Every vector runs here (one in-process member; but see `arithmeticOnly`) and at the member (test/hsm-core); the same file
 * run through other doors (two worker or TLS members, the relay in Chromium) may take every n-th
 * vector of each file (`STRONGROOM_WYCHEPROOF_STRIDE`), so the suite keeps its time: the door's
 * path is the same for every vector of a file.
 */
const STRIDE = Math.max(1, Number(globalThis.process?.env?.STRONGROOM_WYCHEPROOF_STRIDE ?? (globalThis as { __STRONGROOM_WYCHEPROOF_STRIDE__?: number }).__STRONGROOM_WYCHEPROOF_STRIDE__ ?? 1) || 1);

/**
 * Vectors whose only flag is EdgeCaseDoubling (about 1,200 valid ECDH vectors on P-384 and P-521)
 * test the curve arithmetic of a key agreement, which is the member's: test/hsm-core runs every
 * one. Through the door they differ only in their numbers, so every 8th of them runs here.
 */
const arithmeticOnly = (test: Vector) => test.flags?.length === 1 && test.flags[0] === 'EdgeCaseDoubling';

/** `run` over `items` with at most `limit` calls pending at a time; the results in the items' order. */
async function inFlight<T, R>(items: T[], limit: number, run: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await run(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

describe('subtle: Wycheproof vectors through the door', function () {
  this.timeout(180_000);
  const files = readdirSync(DIR).filter((name) => name.endsWith('.json')).sort();

  it('has a runner for every vector file it does not skip', () => {
    const missing = files.filter((name) => !SKIPPED_FILES[name] && !RUNNERS[(JSON.parse(readFileSync(join(DIR, name), 'utf8')) as { schema: string }).schema]);
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
      const vectors = file.testGroups
        .flatMap((group) => group.tests.filter((test) => !skipReason(group, test)).map((test) => ({ group, test })))
        .filter(({ test }) => !arithmeticOnly(test) || test.tcId % 8 === 0)
        .filter((_, i) => i % STRIDE === 0);
      // Several vectors in flight at once, as an application's requests would be; each one's
      // outcome is judged on its own, and the failures are listed in the file's order.
      const outcomes = await inFlight(vectors, 16, ({ group, test }) => run(group, test));
      const failures: string[] = [];
      vectors.forEach(({ test }, i) => {
        if (test.result === 'valid' && outcomes[i] !== 'pass') failures.push(`tcId ${test.tcId} (valid): ${outcomes[i]}`);
        if (test.result === 'invalid' && outcomes[i] === 'pass') failures.push(`tcId ${test.tcId} (invalid): accepted`);
      });
      expect(vectors.length, 'no vector ran').to.be.greaterThan(0);
      expect(failures, failures.slice(0, 10).join('; ')).to.deep.equal([]);
    });
  }
});
