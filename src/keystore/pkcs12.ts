/**
 * PKCS #12 files through `pkijs`: reading and writing certificate bags and shrouded key bags.
 * Private keys are only ever handled here as EncryptedPrivateKeyInfo bytes: they are opened and
 * made inside the HSM (importEncryptedKey / exportEncryptedKey), never in this process.
 *
 * Written files use what OpenSSL 3 writes by default: certificates in a PBES2 (PBKDF2-HMAC-SHA256,
 * AES-256-CBC) encrypted SafeContents, shrouded keys in a plain one, and an HMAC-SHA256 MAC.
 *
 * @module
 */
import type * as X509 from '@peculiar/x509';
import { createHash, createHmac, timingSafeEqual, webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { loadX509 } from '../certificates/index.js';
import { HsmError, digest, type HashName } from '../hsm-core/index.js';

const FRIENDLY_NAME = '1.2.840.113549.1.9.20';
const LOCAL_KEY_ID = '1.2.840.113549.1.9.21';
const KEY_BAG_SHROUDED = '1.2.840.113549.1.12.10.1.2';
const CERT_BAG = '1.2.840.113549.1.12.10.1.3';
const X509_CERTIFICATE = '1.2.840.113549.1.9.22.1';

/** A PKCS #12 MAC's hash: its name, its output length u and its block length v (RFC 7292 B.2). */
const MAC_HASHES: Readonly<Record<string, { name: HashName; u: number; v: number }>> = {
  'SHA-1': { name: 'sha1', u: 20, v: 64 },
  'SHA-256': { name: 'sha256', u: 32, v: 64 },
  'SHA-384': { name: 'sha384', u: 48, v: 128 },
  'SHA-512': { name: 'sha512', u: 64, v: 128 },
};

/** Iterations of the MAC key's hash done in one turn of the event loop (about 4 ms here). */
export const HASHES_PER_TURN = 2048;

/**
 * The most iterations a file may ask for, of its MAC's key or of a PBKDF2 that encrypts its
 * content: Java's PKCS12 KeyStore refuses more too. About 10 s of the MAC's hashing here; OpenSSL
 * writes 2,048 by default and this keystore 100,000. A file asking for more is refused, not worked
 * through.
 */
export const MAX_ITERATIONS = 5_000_000;

/** Refuses an iteration count outside 1 to {@link MAX_ITERATIONS}; `what` names whose count it is. */
function checkIterations(what: string, iterations: unknown): void {
  if (typeof iterations !== 'number' || !Number.isSafeInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new HsmError('BAD_REQUEST', `PKCS #12 ${what}: ${String(iterations)} iterations is outside the 1 to ${MAX_ITERATIONS.toLocaleString('en-US')} this keystore reads`);
  }
}

/**
 * The password as RFC 7292 B.1 asks (a BMPString: UTF-16 big-endian, then two zero bytes), read
 * from its UTF-8 bytes as pkijs reads them (bytes that are not UTF-8 are taken one character
 * each), so that files of either open in the other.
 */
function bmpPassword(password: ArrayBuffer): Uint8Array {
  const bytes = new Uint8Array(password);
  let text = new TextDecoder().decode(bytes);
  const again = new TextEncoder().encode(text);
  if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) text = String.fromCharCode(...bytes);
  const out = new Uint8Array(text.length * 2 + 2);
  for (let i = 0; i < text.length; i++) {
    out[i * 2] = text.charCodeAt(i) >> 8;
    out[i * 2 + 1] = text.charCodeAt(i) & 0xff;
  }
  return out;
}

/** `bytes` repeated to fill a multiple of `v` bytes (none for none). */
function repeatTo(bytes: Uint8Array, v: number): Uint8Array {
  const out = new Uint8Array(v * Math.ceil(bytes.length / v));
  for (let i = 0; i < out.length; i++) out[i] = bytes[i % bytes.length]!;
  return out;
}

/**
 * The key of a PKCS #12 file's MAC (RFC 7292 appendix B.2, ID 3). pkijs derives it with a
 * JavaScript SHA-256, all iterations at once: with the 100,000 that `store` writes, every load and
 * store of a keystore held the event loop for 270-310 ms. Here hsm-core's `digest` (node:crypto)
 * hashes, {@link HASHES_PER_TURN} iterations a turn, so timers and I/O run between them.
 */
async function pkcs12MacKey(hashAlgorithm: string, password: ArrayBuffer, salt: ArrayBuffer, iterations: number): Promise<Uint8Array> {
  const hash = MAC_HASHES[hashAlgorithm.toUpperCase()];
  if (!hash) throw new HsmError('BAD_REQUEST', `PKCS #12 MAC: hash ${hashAlgorithm} is not one of ${Object.keys(MAC_HASHES).join(', ')}`);
  checkIterations('MAC', iterations);
  const { name, u, v } = hash;
  const I = new Uint8Array([...repeatTo(new Uint8Array(salt), v), ...repeatTo(bmpPassword(password), v)]);
  // The key is as long as one hash output (u bytes), so one block A of B.2's step 6 gives it all.
  let A: Uint8Array = new Uint8Array([...new Uint8Array(v).fill(3), ...I]);
  for (let done = 0; done < iterations; ) {
    const stop = Math.min(iterations, done + HASHES_PER_TURN);
    for (; done < stop; done++) A = digest(name, A);
    if (done < iterations) await new Promise((resolve) => setImmediate(resolve));
  }
  return A.slice(0, u);
}

/** The MAC of `content` under `password`, as the PKCS #12 MacData holds it. */
async function pkcs12Mac(hashAlgorithm: string, password: ArrayBuffer, salt: ArrayBuffer, iterations: number, content: ArrayBuffer): Promise<Buffer> {
  const key = await pkcs12MacKey(hashAlgorithm, password, salt, iterations);
  return createHmac(MAC_HASHES[hashAlgorithm.toUpperCase()]!.name, key).update(new Uint8Array(content)).digest();
}

/**
 * pkijs's engine over node:crypto, with the MAC of PKCS #12 files made and checked by
 * {@link pkcs12Mac}, and no PBKDF2 of more than {@link MAX_ITERATIONS} iterations. Exported for tests.
 */
export class NodeEngine extends pkijs.CryptoEngine {
  /**
   * pkijs derives the key of an encrypted SafeContents (PBES2) here, with the iteration count the
   * file gives. node:crypto would work through any count on a thread of libuv's pool, which the
   * process's signatures share: at 0.3 s a million iterations here, a file asking for 2³² − 1 held
   * a pool thread for over 20 minutes, and as long again for each further encrypted part.
   */
  override deriveKey(...args: Parameters<pkijs.CryptoEngine['deriveKey']>): ReturnType<pkijs.CryptoEngine['deriveKey']> {
    const algorithm = args[0] as { name?: unknown; iterations?: unknown };
    if (typeof algorithm === 'object' && String(algorithm.name).toUpperCase() === 'PBKDF2') checkIterations('encryption (PBKDF2)', algorithm.iterations);
    return super.deriveKey(...args);
  }

  override async stampDataWithPassword(p: pkijs.CryptoEngineStampDataWithPasswordParams): Promise<ArrayBuffer> {
    const mac = await pkcs12Mac(p.hashAlgorithm, p.password, p.salt, p.iterationCount, p.contentToStamp);
    return mac.buffer.slice(mac.byteOffset, mac.byteOffset + mac.byteLength) as ArrayBuffer;
  }

  override async verifyDataStampedWithPassword(p: pkijs.CryptoEngineVerifyDataStampedWithPasswordParams): Promise<boolean> {
    const mac = await pkcs12Mac(p.hashAlgorithm, p.password, p.salt, p.iterationCount, p.contentToVerify);
    const given = new Uint8Array(p.signatureToVerify);
    return given.length === mac.length && timingSafeEqual(given, mac);
  }
}

let engineSet = false;
function useNodeEngine(): void {
  if (engineSet) return;
  pkijs.setEngine('node', new NodeEngine({ name: 'node', crypto: webcrypto as never }));
  engineSet = true;
}

/** One alias of a PKCS #12 file. */
export interface Pkcs12Entry {
  alias: string;
  /** The certificate first, then its issuers as far as the file has them. */
  chain: X509.X509Certificate[];
  /** The EncryptedPrivateKeyInfo of a key entry (PBES2 under the file's password). */
  encryptedKey: Uint8Array | null;
  /** A key entry (a key, or certificates tied to one by a localKeyId) rather than a trusted certificate. */
  keyEntry: boolean;
}

function attribute(bag: pkijs.SafeBag, type: string): unknown {
  return bag.bagAttributes?.find((a) => a.type === type)?.values[0];
}

function hex(value: unknown): string | null {
  return value instanceof asn1js.OctetString ? Buffer.from(value.valueBlock.valueHexView).toString('hex') : null;
}

/**
 * A store with no entries: pkijs cannot parse an AuthenticatedSafe with no content, so the MAC
 * over it is checked here with pkijs's own PKCS #12 MAC routine.
 */
async function emptyWithValidMac(pfx: pkijs.PFX, password: ArrayBuffer): Promise<boolean> {
  const content = pfx.authSafe?.content as asn1js.OctetString | undefined;
  const mac = pfx.macData;
  if (!(content instanceof asn1js.OctetString) || !mac) return false;
  const safe = content.getValue();
  if (safe.byteLength !== 2 || new Uint8Array(safe)[0] !== 0x30 || new Uint8Array(safe)[1] !== 0) return false;
  const hash = { '1.3.14.3.2.26': 'SHA-1', '2.16.840.1.101.3.4.2.1': 'SHA-256', '2.16.840.1.101.3.4.2.2': 'SHA-384', '2.16.840.1.101.3.4.2.3': 'SHA-512' }[mac.mac.digestAlgorithm.algorithmId];
  const engine = pkijs.getEngine().crypto;
  if (!hash || !engine) return false;
  return engine.verifyDataStampedWithPassword({
    password,
    hashAlgorithm: hash,
    salt: mac.macSalt.getValue(),
    iterationCount: mac.iterations ?? 1,
    contentToVerify: safe,
    signatureToVerify: mac.mac.digest.getValue(),
  });
}

/** Reads a PKCS #12 file, checking its MAC with `password` (a wrong one is refused clearly). */
export async function readPkcs12(data: Uint8Array, password: string): Promise<Pkcs12Entry[]> {
  useNodeEngine();
  const x509 = await loadX509();
  const pw = new TextEncoder().encode(password).buffer as ArrayBuffer;
  let pfx: pkijs.PFX;
  try {
    pfx = pkijs.PFX.fromBER(Buffer.from(data));
  } catch (e) {
    throw new HsmError('BAD_REQUEST', `keystore: not a PKCS #12 file (${e instanceof Error ? e.message : String(e)})`);
  }
  try {
    await pfx.parseInternalValues({ password: pw, checkIntegrity: true });
  } catch (e) {
    // The MAC's own refusals (its hash, its iteration count) say what is wrong with the file.
    if (e instanceof HsmError) throw e;
    if (await emptyWithValidMac(pfx, pw)) return [];
    throw new HsmError('LOGIN_FAILED', 'keystore: wrong password (the file\'s integrity check fails with it), or the file was altered');
  }
  const safe = pfx.parsedValue?.authenticatedSafe;
  if (!safe) throw new HsmError('BAD_REQUEST', 'keystore: the PKCS #12 file has no content');
  try {
    await safe.parseInternalValues({ safeContents: safe.safeContents.map(() => ({ password: pw })) });
  } catch (e) {
    // The engine's own refusals (an iteration count) say what is wrong with the file.
    if (e instanceof HsmError) throw e;
    throw new HsmError('BAD_REQUEST', `keystore: the PKCS #12 content does not decrypt (${e instanceof Error ? e.message : String(e)}); legacy RC2/3DES files need re-exporting with AES`);
  }
  const keys: { name: string | null; id: string | null; encrypted: Uint8Array }[] = [];
  const certs: { name: string | null; id: string | null; cert: X509.X509Certificate }[] = [];
  for (const content of safe.parsedValue?.safeContents ?? []) {
    for (const bag of (content.value as pkijs.SafeContents).safeBags) {
      const nameValue = attribute(bag, FRIENDLY_NAME) as asn1js.BmpString | undefined;
      const name = nameValue?.valueBlock.value ?? null;
      const id = hex(attribute(bag, LOCAL_KEY_ID));
      if (bag.bagId === KEY_BAG_SHROUDED) {
        keys.push({ name, id, encrypted: new Uint8Array((bag.bagValue as pkijs.PKCS8ShroudedKeyBag).toSchema().toBER(false)) });
      } else if (bag.bagId === CERT_BAG) {
        const certBag = bag.bagValue as pkijs.CertBag;
        if (certBag.certId !== X509_CERTIFICATE) continue;
        certs.push({ name, id, cert: new x509.X509Certificate((certBag.parsedValue as pkijs.Certificate).toSchema().toBER(false)) });
      }
    }
  }
  const entries: Pkcs12Entry[] = [];
  const used = new Set<object>();
  for (const [i, key] of keys.entries()) {
    const leaf = certs.find((c) => key.id !== null && c.id === key.id) ?? (keys.length === 1 ? certs.find((c) => c.id !== null) ?? certs[0] : undefined);
    const chain: X509.X509Certificate[] = [];
    if (leaf) {
      chain.push(leaf.cert);
      used.add(leaf);
      // Follow issuers among the file's other certificates (a self-signed one ends the chain).
      for (let cert = leaf.cert; cert.issuer !== cert.subject; ) {
        const issuer = certs.find((c) => c.cert.subject === cert.issuer && !chain.includes(c.cert));
        if (!issuer) break;
        chain.push(issuer.cert);
        used.add(issuer);
        cert = issuer.cert;
      }
    }
    entries.push({ alias: key.name ?? leaf?.name ?? String(i + 1), chain, encryptedKey: key.encrypted, keyEntry: true });
  }
  for (const c of certs) {
    if (used.has(c) || c.id !== null) continue;
    if (c.name !== null) entries.push({ alias: c.name, chain: [c.cert], encryptedKey: null, keyEntry: false });
  }
  // Certificate-only key entries (a CloudHSM store: the keys are in the HSM) are grouped by their id.
  const byId = new Map<string, { name: string | null; chain: X509.X509Certificate[] }>();
  for (const c of certs) {
    if (used.has(c) || c.id === null || keys.some((k) => k.id === c.id)) continue;
    const group = byId.get(c.id) ?? { name: c.name, chain: [] };
    group.chain.push(c.cert);
    byId.set(c.id, group);
  }
  for (const group of byId.values()) if (group.name !== null) entries.push({ alias: group.name, chain: group.chain, encryptedKey: null, keyEntry: true });
  return entries;
}

/** What to write for one alias: a trusted certificate, or a key entry (its chain, and its encrypted key if any). */
export interface Pkcs12Input {
  alias: string;
  kind: 'key' | 'certificate';
  chain: X509.X509Certificate[];
  encryptedKey?: Uint8Array | null;
}

/** Writes a PKCS #12 file protected by `password`. Key entries' certificates share a localKeyId with their key. */
export async function writePkcs12(entries: Pkcs12Input[], password: string): Promise<Uint8Array> {
  useNodeEngine();
  if (typeof password !== 'string' || password.length === 0) throw new HsmError('BAD_REQUEST', 'password: required to store');
  const pw = new TextEncoder().encode(password).buffer as ArrayBuffer;
  const certBags: pkijs.SafeBag[] = [];
  const keyBags: pkijs.SafeBag[] = [];
  for (const entry of entries) {
    const keyId = createHash('sha1').update(`strongroom-keystore:${entry.alias}`).digest();
    const attrs = (withId: boolean) => [
      new pkijs.Attribute({ type: FRIENDLY_NAME, values: [new asn1js.BmpString({ value: entry.alias })] }),
      ...(withId ? [new pkijs.Attribute({ type: LOCAL_KEY_ID, values: [new asn1js.OctetString({ valueHex: keyId })] })] : []),
    ];
    for (const [i, cert] of entry.chain.entries()) {
      // The first certificate of a key entry is the key's; its issuers follow without an id.
      const withId = entry.kind === 'key' && (i === 0 || !entry.encryptedKey);
      certBags.push(
        new pkijs.SafeBag({
          bagId: CERT_BAG,
          bagValue: new pkijs.CertBag({ certId: X509_CERTIFICATE, parsedValue: pkijs.Certificate.fromBER(cert.rawData) }),
          bagAttributes: withId || i === 0 ? attrs(withId) : undefined,
        }),
      );
    }
    if (entry.encryptedKey) {
      keyBags.push(new pkijs.SafeBag({ bagId: KEY_BAG_SHROUDED, bagValue: pkijs.PKCS8ShroudedKeyBag.fromBER(Buffer.from(entry.encryptedKey)), bagAttributes: attrs(true) }));
    }
  }
  // An empty SafeContents does not read back, so each is written only when it has bags.
  const contents: { privacyMode: number; value: pkijs.SafeContents }[] = [];
  if (certBags.length) contents.push({ privacyMode: 1, value: new pkijs.SafeContents({ safeBags: certBags }) });
  if (keyBags.length) contents.push({ privacyMode: 0, value: new pkijs.SafeContents({ safeBags: keyBags }) });
  const pfx = new pkijs.PFX({ parsedValue: { integrityMode: 0, authenticatedSafe: new pkijs.AuthenticatedSafe({ parsedValue: { safeContents: contents } }) } });
  await pfx.parsedValue!.authenticatedSafe!.makeInternalValues({
    safeContents: contents.map((c) =>
      c.privacyMode === 1 ? { password: pw, contentEncryptionAlgorithm: { name: 'AES-CBC', length: 256 }, hmacHashAlgorithm: 'SHA-256', iterationCount: 100_000 } : {},
    ),
  });
  await pfx.makeInternalValues({ password: pw, iterations: 100_000, pbkdf2HashAlgorithm: 'SHA-256', hmacHashAlgorithm: 'SHA-256' });
  return new Uint8Array(pfx.toSchema().toBER(false));
}
