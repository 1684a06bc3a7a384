/**
 * The KeyStore door: Java's `KeyStore.getInstance("CloudHSM")` in TypeScript (CLOUDHSM.md §7).
 *
 * Keys live in the HSM and are found there by label: an entry's alias is its private (or secret)
 * key's label, the public key's label is `alias:public`. Certificates and chains live beside
 * them in the local store file, never in the HSM. So:
 *
 * - `getKey(alias)` finds any HSM key with that label, including keys made outside the KeyStore;
 * - `aliases()`, `containsAlias()`, `isKeyEntry()` and `size()` look at the local entries and the
 *   HSM's labels;
 * - `setKeyEntry` stores the key as a token key labelled by the alias (importing a key that is
 *   not in the HSM yet), requires a chain whose first certificate matches a private key, checks
 *   that the chain links, and refuses an alias that exists;
 * - `deleteEntry` removes local entries only; `destroyKey` deletes the HSM keys, explicitly;
 * - `store(password)` writes the local entries as a PKCS #12 file (certificate bags, AES-256-CBC
 *   under PBES2, SHA-256 MAC), which `load(data, password)` reads back, refusing a wrong password.
 *
 * The file is PKCS #12 through `pkijs`; certificates through `@peculiar/x509`.
 *
 * @module
 */
import type * as X509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { loadX509 } from '../certificates/index.js';
import { HsmError, type KeyInfo } from '../hsm-core/index.js';
import type { HsmSession } from '../app/index.js';
import { readPkcs12, writePkcs12 } from './pkcs12.js';

type CryptoKey = webcrypto.CryptoKey;


export type EntryType = 'PrivateKeyEntry' | 'SecretKeyEntry' | 'TrustedCertificateEntry';

interface LocalEntry {
  kind: 'key' | 'certificate';
  chain: X509.X509Certificate[];
  /** PKCS12 type: the key as read from the file (encrypted under the load password)… */
  encryptedKey?: Uint8Array | null;
  /** …or the HSM key set with setKeyEntry, exported encrypted at store(). */
  handle?: number;
}

/** What link `i` of a chain says is wrong with it, or null. */
async function brokenLink(x509: typeof X509, chain: X509.X509Certificate[], now = new Date()): Promise<string | null> {
  for (const [i, cert] of chain.entries()) {
    if (cert.notBefore > now || cert.notAfter < now) return `certificate ${i} (${cert.subject}) is not valid now (valid ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()})`;
    const issuer = chain[i + 1];
    if (!issuer) break;
    if (cert.issuer !== issuer.subject) return `link ${i}: ${cert.subject} was issued by ${cert.issuer}, but the next certificate is ${issuer.subject}`;
    const bc = issuer.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) return `link ${i}: ${issuer.subject} is not a CA (basic constraints)`;
    if (!(await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }, webcrypto as never))) {
      return `link ${i}: the signature on ${cert.subject} does not verify with ${issuer.subject}'s key`;
    }
  }
  return null;
}

/** The WebCrypto algorithm to open an HSM key with, from its attributes. */
function algorithmFor(info: KeyInfo): Record<string, unknown> {
  const a = info.attributes;
  switch (a['key-type']) {
    case 'ec':
      return { name: 'ECDSA', namedCurve: { secp256r1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521', secp256k1: 'K-256' }[a.curve as string] ?? 'P-256' };
    case 'rsa':
      return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    case 'ed25519':
      return { name: 'Ed25519' };
    case 'aes':
      return { name: a.encrypt || a.decrypt ? 'AES-GCM' : a.wrap || a.unwrap ? 'AES-KW' : 'AES-GCM' };
    default:
      return { name: 'HMAC', hash: 'SHA-256' };
  }
}

export class KeyStore {
  readonly type: 'CloudHSM' | 'PKCS12';
  readonly #session: HsmSession;
  readonly #entries = new Map<string, LocalEntry>();
  #loaded = false;
  #loadPassword: string | null = null;

  private constructor(type: 'CloudHSM' | 'PKCS12', session: HsmSession) {
    this.type = type;
    this.#session = session;
  }

  /**
   * `KeyStore.getInstance('CloudHSM', session)`: keys in the HSM as `session`'s user, found by
   * label; certificates in the local file.
   *
   * `KeyStore.getInstance('PKCS12', session)`: a plain PKCS #12 file whose keys are in the file,
   * encrypted. Its keys are still only opened inside the HSM: `getKey` imports one as a session
   * key, and `store` has the HSM export each key encrypted under the file's password (so a key
   * set into it must be extractable).
   */
  static getInstance(type: 'CloudHSM' | 'PKCS12', session: HsmSession): KeyStore {
    if (type !== 'CloudHSM' && type !== 'PKCS12') throw new HsmError('BAD_REQUEST', `KeyStore type: CloudHSM or PKCS12, got ${JSON.stringify(type)}`);
    if (!session) throw new HsmError('BAD_REQUEST', `KeyStore.getInstance('${type}', session): a logged-in session is required`);
    return new KeyStore(type, session);
  }

  /** `load(null, null)` starts an empty store; `load(bytes, password)` reads a stored one. */
  async load(data: Uint8Array | null, password: string | null): Promise<void> {
    this.#entries.clear();
    this.#loaded = true;
    this.#loadPassword = password;
    if (data === null) return;
    if (password === null) throw new HsmError('BAD_REQUEST', 'password: required to load a store');
    for (const entry of await readPkcs12(data, password)) {
      if (entry.encryptedKey && this.type === 'CloudHSM') {
        throw new HsmError('BAD_REQUEST', `keystore: the file holds the private key of ${entry.alias}; a CloudHSM store keeps keys in the HSM: import the file with importPkcs12 (keytool -importkeystore)`);
      }
      this.#entries.set(entry.alias, { kind: entry.keyEntry ? 'key' : 'certificate', chain: entry.chain, encryptedKey: entry.encryptedKey });
    }
  }

  /** Reads a store file. */
  async loadFile(path: string, password: string): Promise<void> {
    await this.load(new Uint8Array(await readFile(path)), password);
  }

  /** The local entries as a PKCS #12 file protected by `password` (with a PKCS12 store, the keys too, encrypted in the HSM). */
  async store(password: string): Promise<Uint8Array> {
    this.#checkLoaded();
    const out = [];
    for (const [alias, entry] of [...this.#entries.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      let encryptedKey: Uint8Array | null = null;
      if (this.type === 'PKCS12' && entry.kind === 'key') encryptedKey = await this.#encryptedKey(alias, entry, password);
      out.push({ alias, kind: entry.kind, chain: entry.chain, encryptedKey });
    }
    return writePkcs12(out, password);
  }

  /** A PKCS12 entry's key, encrypted under `password` by the HSM. */
  async #encryptedKey(alias: string, entry: LocalEntry, password: string): Promise<Uint8Array | null> {
    if (entry.handle !== undefined) return (await this.#session.send({ op: 'exportEncryptedKey', handle: entry.handle, password })).encryptedPrivateKeyInfo;
    if (!entry.encryptedKey) return null;
    if (password === this.#loadPassword) return entry.encryptedKey;
    // Another password: the HSM opens the key and seals it again; it does not stay there.
    const { handle } = await this.#session.send({ op: 'importEncryptedKey', encryptedPrivateKeyInfo: entry.encryptedKey, password: this.#loadPassword ?? '', attributes: { extractable: true, label: `${alias} (re-encrypting)` } });
    try {
      return (await this.#session.send({ op: 'exportEncryptedKey', handle, password })).encryptedPrivateKeyInfo;
    } finally {
      await this.#session.send({ op: 'deleteKey', handle });
    }
  }

  async storeFile(path: string, password: string): Promise<void> {
    await writeFile(path, await this.store(password), { mode: 0o600 });
  }

  /** HSM keys this user can see, by label (private and secret keys; public keys are `alias:public`). */
  async #hsmKeys(label?: string): Promise<KeyInfo[]> {
    if (this.type === 'PKCS12') return []; // a PKCS12 store's keys are in its file
    const found: KeyInfo[] = [];
    let token: string | null = null;
    do {
      const page: { keys: KeyInfo[]; nextToken: string | null } = await this.#session.send({
        op: 'findKeys',
        ...(label !== undefined ? { filter: { attributes: { label } } } : {}),
        maxItems: 1000,
        ...(token ? { startingToken: token } : {}),
      });
      found.push(...page.keys.filter((k) => k.attributes.class !== 'public-key' && typeof k.attributes.label === 'string' && k.attributes.label !== ''));
      token = page.nextToken;
    } while (token);
    return found;
  }

  /** Aliases of local entries and of the HSM's private and secret keys. */
  async aliases(): Promise<string[]> {
    this.#checkLoaded();
    const names = new Set(this.#entries.keys());
    for (const k of await this.#hsmKeys()) names.add(k.attributes.label as string);
    return [...names].sort();
  }

  async containsAlias(alias: string): Promise<boolean> {
    this.#checkLoaded();
    return this.#entries.has(alias) || (await this.#hsmKeys(alias)).length > 0;
  }

  async size(): Promise<number> {
    return (await this.aliases()).length;
  }

  async isKeyEntry(alias: string): Promise<boolean> {
    this.#checkLoaded();
    return this.#entries.get(alias)?.kind === 'key' || (await this.#hsmKeys(alias)).length > 0;
  }

  isCertificateEntry(alias: string): boolean {
    this.#checkLoaded();
    return this.#entries.get(alias)?.kind === 'certificate';
  }

  async entryInstanceOf(alias: string, type: EntryType): Promise<boolean> {
    if (type === 'TrustedCertificateEntry') return this.isCertificateEntry(alias);
    if (this.type === 'PKCS12') return type === 'PrivateKeyEntry' && this.#entries.get(alias)?.kind === 'key';
    const keys = await this.#hsmKeys(alias);
    return keys.some((k) => (type === 'PrivateKeyEntry' ? k.attributes.class === 'private-key' : k.attributes.class === 'secret-key'));
  }

  /**
   * The HSM key labelled `alias` (a private or secret key), as a `CryptoKey` of this session, or
   * null. `algorithm` says how to use it when its type allows several (default: ECDSA, RSASSA-
   * PKCS1-v1_5 with SHA-256, Ed25519, AES-GCM, HMAC with SHA-256).
   */
  async getKey(alias: string, algorithm?: Record<string, unknown>): Promise<CryptoKey | null> {
    this.#checkLoaded();
    if (this.type === 'PKCS12') return this.#fileKey(alias, algorithm);
    const key = this.#pick(alias, await this.#hsmKeys(alias));
    if (!key) return null;
    return this.#session.crypto.keyFromHandle(key.handle, (algorithm ?? algorithmFor(key)) as never);
  }

  /**
   * Which of the keys labelled `alias` an alias means. Labels are not unique, and another user can
   * share a key under any label: so the session user's own key comes first (a private key before a
   * secret key), and a key of someone else's only when it is the only one of its kind. Keys of
   * several owners and none of one's own make the alias ambiguous, and it is refused.
   */
  #pick(alias: string, keys: KeyInfo[]): KeyInfo | undefined {
    const prefer = (list: KeyInfo[]) => list.find((k) => k.attributes.class === 'private-key') ?? list[0];
    const own = keys.filter((k) => k.owner === this.#session.username);
    if (own.length) return prefer(own);
    const owners = [...new Set(keys.map((k) => k.owner))].sort();
    if (owners.length > 1 || keys.filter((k) => k.attributes.class === (prefer(keys)?.attributes.class)).length > 1) {
      throw new HsmError('BAD_REQUEST', `alias ${alias} is ambiguous: ${this.#session.username} owns no key with that label, and ${keys.length} keys shared with them have it (owned by ${owners.join(', ')}); use a label of your own`);
    }
    return prefer(keys);
  }

  /** A PKCS12 entry's key: its HSM key, or the file's key imported into the HSM as a session key. */
  async #fileKey(alias: string, algorithm?: Record<string, unknown>): Promise<CryptoKey | null> {
    const entry = this.#entries.get(alias);
    if (!entry || entry.kind !== 'key') return null;
    let handle = entry.handle;
    if (handle === undefined) {
      // The file's key, opened in the HSM as a non-extractable session key of this session; the
      // entry keeps the file's encrypted copy for store().
      if (!entry.encryptedKey) return null;
      const rsa = entry.chain[0]?.publicKey.algorithm.name.startsWith('RSA') ?? false;
      handle = (await this.#session.send({ op: 'importEncryptedKey', encryptedPrivateKeyInfo: entry.encryptedKey, password: this.#loadPassword ?? '', attributes: { extractable: false, sign: true, ...(rsa ? { decrypt: true } : {}) } })).handle;
    }
    const info = await this.#session.send({ op: 'getAttributes', handle });
    return this.#session.crypto.keyFromHandle(handle, (algorithm ?? algorithmFor(info)) as never);
  }

  /**
   * Imports a PKCS #12 file (made by openssl, Java's keytool, …) into this CloudHSM store, as
   * `keytool -importkeystore` does: each private key goes into the HSM as a token key labelled by
   * its alias (non-extractable unless `extractable`), with its public key as `alias:public`, and
   * its chain beside it; certificates become certificate entries. An alias in use is refused
   * before anything is imported. Returns the aliases imported.
   */
  async importPkcs12(data: Uint8Array, password: string, options: { extractable?: boolean } = {}): Promise<string[]> {
    this.#checkLoaded();
    if (this.type !== 'CloudHSM') throw new HsmError('BAD_REQUEST', 'importPkcs12: a PKCS12 store loads such a file with load()');
    const entries = await readPkcs12(data, password);
    for (const e of entries) {
      checkAlias(e.alias);
      if (await this.containsAlias(e.alias)) throw new HsmError('BAD_REQUEST', `importPkcs12: alias ${e.alias} exists already; nothing was imported`);
    }
    const x509 = await loadX509();
    for (const e of entries) {
      if (e.chain.length) {
        const broken = await brokenLink(x509, e.chain);
        if (broken) throw new HsmError('BAD_REQUEST', `importPkcs12: the chain of ${e.alias} does not link: ${broken}; nothing was imported`);
      }
    }
    // All or nothing: if the HSM refuses a key (a type it does not hold, say), the keys already
    // imported are deleted again and no local entry is added.
    const imported: number[] = [];
    const local = new Map<string, LocalEntry>();
    try {
      for (const e of entries) {
        if (!e.encryptedKey) {
          local.set(e.alias, { kind: 'certificate', chain: e.chain });
          continue;
        }
        const rsa = e.chain[0]?.publicKey.algorithm.name.startsWith('RSA') ?? false;
        const { handle } = await this.#session.send({
          op: 'importEncryptedKey',
          encryptedPrivateKeyInfo: e.encryptedKey,
          password,
          attributes: { token: true, label: e.alias, extractable: options.extractable === true, sign: true, ...(rsa ? { decrypt: true } : {}) },
        });
        imported.push(handle);
        if (e.chain[0]) {
          const spki = new Uint8Array(e.chain[0].publicKey.rawData);
          const keyType = rsa ? 'rsa' : e.chain[0].publicKey.algorithm.name === 'Ed25519' ? 'ed25519' : 'ec';
          const pub = await this.#session.send({ op: 'importKey', keyClass: 'public-key', keyType, format: 'spki', keyData: spki, attributes: { token: true, label: `${e.alias}:public`, verify: true } });
          imported.push(pub.handle);
        }
        local.set(e.alias, { kind: 'key', chain: e.chain });
      }
    } catch (e) {
      for (const handle of imported) await this.#session.send({ op: 'deleteKey', handle }).catch(() => undefined);
      throw e instanceof HsmError ? new HsmError(e.code, `importPkcs12: ${e.message}; nothing was imported`) : e;
    }
    for (const [alias, entry] of local) this.#entries.set(alias, entry);
    return entries.map((e) => e.alias);
  }

  getCertificate(alias: string): X509.X509Certificate | null {
    this.#checkLoaded();
    return this.#entries.get(alias)?.chain[0] ?? null;
  }

  getCertificateChain(alias: string): X509.X509Certificate[] | null {
    this.#checkLoaded();
    const entry = this.#entries.get(alias);
    return entry?.kind === 'key' ? [...entry.chain] : null;
  }

  /** The first alias whose certificate (the first of its chain) is `cert`. */
  getCertificateAlias(cert: X509.X509Certificate): string | null {
    this.#checkLoaded();
    const der = Buffer.from(cert.rawData);
    for (const [alias, entry] of this.#entries) if (entry.chain[0] && der.equals(Buffer.from(entry.chain[0].rawData))) return alias;
    return null;
  }

  /** PKCS #12 keeps no dates: the certificate's notBefore, as CloudHSM's KeyStore does. */
  getCreationDate(alias: string): Date | null {
    return this.getCertificate(alias)?.notBefore ?? null;
  }

  /**
   * Stores `key` under `alias`: in the HSM as a token key labelled `alias` (its public key
   * `alias:public`), with `chain` beside it locally. A private key needs a chain whose first
   * certificate is its own and whose links verify; a secret key takes none. An alias in use,
   * locally or in the HSM, is refused.
   */
  async setKeyEntry(alias: string, key: CryptoKey, chain: X509.X509Certificate[] = []): Promise<void> {
    this.#checkLoaded();
    checkAlias(alias);
    if (this.#entries.has(alias)) throw new HsmError('BAD_REQUEST', `alias ${alias} exists already; delete it first (deleteEntry, and destroyKey for its HSM key)`);
    // An HSM key labelled with the alias may be this very key (made with that label); any other is a clash.
    const labelled = await this.#hsmKeys(alias);
    const own = this.#session.crypto.handleOf(key as never);
    if (labelled.some((k) => k.handle !== own)) {
      throw new HsmError('BAD_REQUEST', `alias ${alias} exists already: the HSM holds another key labelled ${alias}`);
    }
    const x509 = await loadX509();
    if (key.type === 'private') {
      if (!chain.length) throw new HsmError('BAD_REQUEST', `setKeyEntry(${alias}): a private key needs its certificate chain`);
      if (!(await this.#matches(key, chain[0]!))) throw new HsmError('BAD_REQUEST', `setKeyEntry(${alias}): the first certificate (${chain[0]!.subject}) is not for this key`);
      const broken = await brokenLink(x509, chain);
      if (broken) throw new HsmError('BAD_REQUEST', `setKeyEntry(${alias}): the chain does not link: ${broken}`);
    } else if (key.type === 'public') {
      throw new HsmError('BAD_REQUEST', `setKeyEntry(${alias}): store a public key as a certificate (setCertificateEntry)`);
    } else if (chain.length) {
      throw new HsmError('BAD_REQUEST', `setKeyEntry(${alias}): a secret key takes no certificate chain`);
    }
    const handle = await this.#hsmHandle(key, this.type === 'PKCS12');
    if (this.type === 'PKCS12') {
      // A file store: the HSM exports the key encrypted when the store is written.
      this.#entries.set(alias, { kind: 'key', chain: [...chain], handle });
      return;
    }
    await this.#session.send({ op: 'setAttributes', handle, attributes: { token: true, label: alias } });
    if (key.type === 'private') {
      // Its public key, if the HSM holds it, gets the alias too: found by the check value the HSM
      // computes for both halves of a pair, then confirmed by its SubjectPublicKeyInfo.
      const kcv = (await this.#session.send({ op: 'getAttributes', handle })).attributes['check-value'];
      const { keys } = await this.#session.send({ op: 'findKeys', filter: { attributes: { class: 'public-key', ...(kcv ? { 'check-value': kcv } : {}) } } });
      const spki = Buffer.from(chain[0]!.publicKey.rawData);
      for (const k of keys) {
        if (k.owner !== this.#session.username) continue;
        const exported = await this.#session.send({ op: 'exportKey', handle: k.handle, format: 'spki' });
        if (Buffer.from(exported.keyData as Uint8Array).equals(spki)) {
          await this.#session.send({ op: 'setAttributes', handle: k.handle, attributes: { token: true, label: `${alias}:public` } });
        }
      }
      this.#entries.set(alias, { kind: 'key', chain: [...chain] });
    }
  }

  /**
   * Replaces the chain of the key entry `alias` (keytool's "certificate reply"): the HSM's private
   * key labelled `alias` must be the first certificate's, and the chain must link.
   */
  async setCertificateChain(alias: string, chain: X509.X509Certificate[]): Promise<void> {
    this.#checkLoaded();
    const key = await this.getKey(alias);
    if (!key || key.type !== 'private') throw new HsmError('BAD_REQUEST', `alias ${alias}: no private key with that label in the HSM`);
    if (!chain.length || !(await this.#matches(key, chain[0]!))) throw new HsmError('BAD_REQUEST', `alias ${alias}: the certificate (${chain[0]?.subject ?? 'none'}) is not for this key`);
    const broken = await brokenLink(await loadX509(), chain);
    if (broken) throw new HsmError('BAD_REQUEST', `alias ${alias}: the chain does not link: ${broken}`);
    this.#entries.set(alias, { kind: 'key', chain: [...chain] });
  }

  /** Stores a trusted certificate locally; an alias in use is refused. */
  async setCertificateEntry(alias: string, cert: X509.X509Certificate): Promise<void> {
    this.#checkLoaded();
    checkAlias(alias);
    if (await this.containsAlias(alias)) throw new HsmError('BAD_REQUEST', `alias ${alias} exists already`);
    const x509 = await loadX509();
    const broken = await brokenLink(x509, [cert]);
    if (broken) throw new HsmError('BAD_REQUEST', `setCertificateEntry(${alias}): ${broken}`);
    this.#entries.set(alias, { kind: 'certificate', chain: [cert] });
  }

  /** Removes the local entry (certificates); the HSM key, if any, stays: see destroyKey. */
  async deleteEntry(alias: string): Promise<void> {
    this.#checkLoaded();
    if (!this.#entries.delete(alias)) {
      const inHsm = (await this.#hsmKeys(alias)).length > 0;
      throw new HsmError('BAD_REQUEST', inHsm ? `alias ${alias} has no local entry; its HSM key is deleted only with destroyKey(${JSON.stringify(alias)})` : `alias ${alias}: no such entry`);
    }
  }

  /** Deletes the HSM keys labelled `alias` and `alias:public` (only their owner can). */
  async destroyKey(alias: string): Promise<number> {
    this.#checkLoaded();
    const keys = [...(await this.#hsmKeys(alias))];
    const { keys: publics } = await this.#session.send({ op: 'findKeys', filter: { attributes: { label: `${alias}:public` } } });
    let n = 0;
    for (const k of [...keys, ...publics]) {
      await this.#session.send({ op: 'deleteKey', handle: k.handle });
      n += 1;
    }
    if (n === 0) throw new HsmError('KEY_NOT_FOUND', `no HSM key labelled ${alias} that ${this.#session.username} can see`);
    return n;
  }

  /** The HSM handle of `key`: a key of this session's door, or a software key imported now. */
  async #hsmHandle(key: CryptoKey, extractable = false): Promise<number> {
    // A key of this session's door becomes persistent here: the door must not delete it when the CryptoKey goes.
    const own = this.#session.crypto.handleOf(key as never, { keep: true });
    if (own !== null) return own;
    // A key that is not in the HSM yet (a software CryptoKey) is imported.
    const format = key.type === 'private' ? 'pkcs8' : 'raw';
    let bytes: ArrayBuffer;
    try {
      bytes = (await webcrypto.subtle.exportKey(format, key)) as ArrayBuffer;
    } catch {
      throw new HsmError('BAD_REQUEST', 'setKeyEntry: the key is neither an HSM key of this session nor an extractable software key to import');
    }
    const imported = await this.#session.crypto.subtle.importKey(format, bytes, key.algorithm as never, extractable, key.usages as never);
    new Uint8Array(bytes).fill(0);
    return this.#session.crypto.handleOf(imported as never, { keep: true })!;
  }

  /**
   * Whether `cert` is for the private `key`, changing nothing: an HSM key signs a probe that the
   * certificate's key verifies; a software key's public half is compared with the certificate's.
   */
  async #matches(key: CryptoKey, cert: X509.X509Certificate): Promise<boolean> {
    const handle = this.#session.crypto.handleOf(key as never);
    if (handle === null) {
      try {
        const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
        const spki = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
        pkcs8.fill(0);
        return spki.equals(Buffer.from(cert.publicKey.rawData));
      } catch {
        throw new HsmError('BAD_REQUEST', 'setKeyEntry: the key is neither an HSM key of this session nor an extractable software key to import');
      }
    }
    const probe = webcrypto.getRandomValues(new Uint8Array(32));
    const name = key.algorithm.name;
    const params = name === 'ECDSA' ? { name, hash: 'SHA-256' } : name === 'RSA-PSS' ? { name, saltLength: 32 } : { name };
    let signature: ArrayBuffer;
    try {
      const signer = await this.#session.crypto.keyFromHandle(handle, key.algorithm as never);
      signature = await this.#session.crypto.subtle.sign(params as never, signer as never, probe);
    } catch (e) {
      throw new HsmError('BAD_REQUEST', `setKeyEntry: the key cannot sign, so its certificate cannot be checked (${e instanceof Error ? e.message : String(e)})`);
    }
    try {
      const publicKey = await cert.publicKey.export(key.algorithm as never, ['verify'], webcrypto as never);
      return await webcrypto.subtle.verify(params as never, publicKey, signature, probe);
    } catch {
      return false;
    }
  }

  #checkLoaded(): void {
    if (!this.#loaded) throw new HsmError('BAD_REQUEST', 'keystore: not loaded; call load(null, null) for a new store, or load(data, password)');
  }
}

function checkAlias(alias: string): void {
  if (typeof alias !== 'string' || alias.length === 0 || alias.length > 127 || alias.endsWith(':public')) {
    throw new HsmError('BAD_REQUEST', `alias: 1–127 characters, not ending in :public, got ${JSON.stringify(alias)}`);
  }
}
