/**
 * Key management: generate, import, export, attributes, find, delete, share, and the three ways
 * a key is made from another (wrap/unwrap and derive). The extraction rules of CLOUDHSM.md §2.5
 * are enforced here and only here:
 *
 * - a secret or private key leaves the member only wrapped, or as a plaintext export that the
 *   member performs and audits;
 * - either way the caller must own it and it must have `extractable=true`; a plaintext export also
 *   needs `sensitive=false` (PKCS #11's meaning of sensitive);
 * - a key with `wrap-with-trusted=true` leaves only wrapped, under a key with `trusted=true`;
 * - the wrapping key needs `wrap=true` and its `wrap-template`, if any, must match the payload;
 * - an unwrapped key gets the union of the caller's template and the unwrapping key's
 *   `unwrap-template`, and a disagreement fails the unwrap.
 *
 * @module
 */
import type { KeyObject } from 'node:crypto';
import { canSee, ownedKey, usableKey, visibleKey } from '../access.js';
import {
  attributesForNewKey,
  checkCreationTemplate,
  changeAttributes,
  filterPredicate,
  matchesFilter,
  normaliseCurveName,
  uniteUnwrapTemplate,
  type EcCurve,
  type KeyClass,
  type KeyType,
  type MaterialFacts,
  type Template,
} from '../attributes.js';
import { HsmError, keyRef, withArticle } from '../errors.js';
import { USAGE_ATTRIBUTE } from '../usages.js';
import { keyApproval } from './quorum-ops.js';
import { NO_SHARES, withShare, type KeyRecord } from '../key-store.js';
import { DERIVERS, WRAP_MECHANISMS, cipherFor, type DeriveEntry } from '../mechanisms/index.js';
import { decryptPrivateKey, encryptPrivateKey } from '../mechanisms/pkcs8.js';
import { checkKdfWork } from '../slow-work.js';
import {
  checkKeyAllowed,
  createSecretMaterial,
  defaultFormat,
  generatePair,
  generateSecret,
  parseKey,
  parsePeerPublicKey,
  serialiseKey,
  type Material,
} from '../mechanisms/keys.js';
import type { DeriveMechanism, Jwk, KeyFormat, KeyInfo, Results, WrapMechanism } from '../protocol.js';
import type { SessionRecord } from '../sessions.js';
import { normaliseUsername } from '../users.js';
import { addKey, checkKeyQuota, keyInfo, signedIn, type Handler, type MemberState } from '../state.js';
import { checkModeAllows, liftHint } from '../profiles.js';

// ---- creation ---------------------------------------------------------------------------------

export const generateKey: Handler<'generateKey'> = (m, caller, req) => {
  const me = signedIn(caller);
  const template = req.attributes ?? {};
  checkKeyAllowed(m.profile, req.keyType, { 'check-value': null, 'key-length-bytes': req.lengthBytes });
  checkModeAllows(m.profile, m.backupKeys.mode, { keyType: req.keyType });
  if (req.keyType === 'generic-secret' && req.lengthBytes === 0) {
    throw new HsmError('KEY_SIZE_INVALID', 'lengthBytes: a generated generic secret has at least 1 byte');
  }
  checkCreationTemplate('secret-key', req.keyType, template);
  const shared = sharesAtCreation(m, me, 'secret-key', template, req.shareWith);
  checkKeyQuota(m, 1, 0);
  const material = generateSecret(req.keyType, req.lengthBytes);
  const key = addKey(m, me, material, attributesForNewKey('secret-key', req.keyType, template, { kind: 'generated' }, material.facts), shared);
  return { handle: key.handle };
};

export const generateKeyPair: Handler<'generateKeyPair'> = async (m, caller, req) => {
  const me = signedIn(caller);
  const type = req.keyType;
  const refuseParam = (name: string): never => {
    throw new HsmError('BAD_REQUEST', `${name}: not a parameter of ${type} key pairs`);
  };
  let curve: EcCurve | undefined;
  let facts: MaterialFacts = { 'check-value': null };
  if (type === 'rsa') {
    if (req.curve !== undefined) refuseParam('curve');
    if (req.modulusBits === undefined) throw new HsmError('BAD_REQUEST', 'modulusBits: required for an RSA key pair');
    facts = { 'check-value': null, 'modulus-size-bits': req.modulusBits, 'public-exponent': req.publicExponent ?? 65537 };
  } else {
    if (req.modulusBits !== undefined) refuseParam('modulusBits');
    if (req.publicExponent !== undefined) refuseParam('publicExponent');
    if (type === 'ec') {
      if (req.curve === undefined) throw new HsmError('BAD_REQUEST', 'curve: required for an EC key pair');
      curve = normaliseCurveName(req.curve) as EcCurve;
    } else if (req.curve !== undefined) refuseParam('curve');
  }
  checkKeyAllowed(m.profile, type, facts);
  checkModeAllows(m.profile, m.backupKeys.mode, { keyType: type });
  const publicTemplate = req.publicAttributes ?? {};
  const privateTemplate = req.privateAttributes ?? {};
  checkCreationTemplate('public-key', type, publicTemplate);
  checkCreationTemplate('private-key', type, privateTemplate);
  const shared = sharesAtCreation(m, me, 'private-key', privateTemplate, req.shareWith);
  checkKeyQuota(m, 2, 2);
  const pair = await generatePair({
    type,
    ...(req.modulusBits !== undefined ? { modulusBits: req.modulusBits, publicExponent: req.publicExponent ?? 65537 } : {}),
    ...(curve ? { curve } : {}),
  });
  checkKeyQuota(m, 2, 2);
  const publicAttrs = attributesForNewKey('public-key', type, publicTemplate, { kind: 'generated' }, pair.publicKey.facts);
  const privateAttrs = attributesForNewKey('private-key', type, privateTemplate, { kind: 'generated' }, pair.privateKey.facts);
  const privateKey = addKey(m, me, pair.privateKey, privateAttrs, shared);
  const publicKey = addKey(m, me, pair.publicKey, publicAttrs);
  return { publicHandle: publicKey.handle, privateHandle: privateKey.handle };
};

export const importKey: Handler<'importKey'> = (m, caller, req) => {
  const me = signedIn(caller);
  const template = req.attributes ?? {};
  checkCreationTemplate(req.keyClass, req.keyType, template);
  const shared = sharesAtCreation(m, me, req.keyClass, template, req.shareWith);
  const material = parseKey(req.keyClass, req.keyType, req.format, req.keyData, req.curve);
  checkKeyAllowed(m.profile, req.keyType, material.facts);
  checkModeAllows(m.profile, m.backupKeys.mode, { keyType: req.keyType });
  checkKeyQuota(m, 1, req.keyClass === 'secret-key' ? 0 : 1);
  const key = addKey(m, me, material, attributesForNewKey(req.keyClass, req.keyType, template, { kind: 'imported' }, material.facts), shared);
  return { handle: key.handle, key: keyInfo(key) };
};

/**
 * C_CopyObject: the owner makes a second key of the same material. The copy's attributes are the
 * original's changed as `setAttributes` would change them (label, id, usages, session→token,
 * sensitive→true, extractable→false; nothing on a key with modifiable=false), so a copy never has
 * what the original could not be given. It keeps the original's shares, and needs the manage
 * approval the original's quorum value asks for.
 */
export const copyKey: Handler<'copyKey'> = (m, caller, req) => {
  const me = signedIn(caller);
  const key = ownedKey(m.keys, me, req.handle, 'copy');
  const changes = Object.entries(req.attributes ?? {}).filter(([, v]) => v !== undefined);
  const attrs = changes.length ? changeAttributes(key.attrs, Object.fromEntries(changes) as Template, 'owner') : { ...key.attrs };
  const approve = keyApproval(m, me, key, 'manage', req.approval);
  checkKeyQuota(m, 1, key.cls === 'secret-key' ? 0 : 1);
  approve();
  const copy = addKey(m, me, { cls: key.cls, type: key.type, key: key.material }, attrs, key.shared);
  return { handle: copy.handle, key: keyInfo(copy) };
};

// ---- export -----------------------------------------------------------------------------------

/** The extraction rules for secret and private keys: the owner only, and extractable=true. */
function checkExtractable(me: SessionRecord, key: KeyRecord, action: string): void {
  if (key.cls === 'public-key') return;
  if (key.owner !== me.username) {
    throw new HsmError('NOT_KEY_OWNER', `only the owner of key ${keyRef(key.handle)} (${key.owner}) can ${action} it`);
  }
  if (!key.attrs.extractable) {
    throw new HsmError('KEY_NOT_EXTRACTABLE', `key ${keyRef(key.handle)} has extractable=false; it can never leave the HSM`);
  }
}

/** A key with wrap-with-trusted=true leaves only wrapped under a trusted key: no export, encrypted or not. */
function refuseIfWrapOnly(key: KeyRecord): void {
  if (key.attrs['wrap-with-trusted']) {
    throw new HsmError('KEY_NOT_EXTRACTABLE', `key ${keyRef(key.handle)} has wrap-with-trusted=true; it leaves the HSM only wrapped under a trusted key`);
  }
}

export const exportKey: Handler<'exportKey'> = (m, caller, req) => {
  const me = signedIn(caller);
  const key = visibleKey(m.keys, me, req.handle);
  checkExtractable(me, key, 'export');
  if (key.cls !== 'public-key' && key.attrs.sensitive) {
    throw new HsmError(
      'KEY_NOT_EXTRACTABLE',
      `key ${keyRef(key.handle)} has sensitive=true, so its value is never revealed in plaintext; wrap it instead, or create it with sensitive=false`,
    );
  }
  refuseIfWrapOnly(key);
  // Every way out checks the key's manage-key-quorum-value, as a wrap does.
  if (key.cls !== 'public-key') keyApproval(m, me, key, 'manage', req.approval)();
  return { keyData: serialiseKey(key, req.format) };
};

/**
 * A private key out as an EncryptedPrivateKeyInfo (PKCS #8, PBES2: PBKDF2-HMAC-SHA256 at 310,000
 * iterations and AES-256-CBC) under a password of at least 8 characters: what a PKCS #12 file's
 * shrouded key bag holds. Like a wrap, it needs the key to be extractable and its approvals, not
 * to reveal it (sensitive keys may leave this way).
 */
export const exportEncryptedKey: Handler<'exportEncryptedKey'> = async (m, caller, req) => {
  const me = signedIn(caller);
  const key = visibleKey(m.keys, me, req.handle);
  if (key.cls !== 'private-key') throw new HsmError('KEY_TYPE_INCONSISTENT', `key ${keyRef(key.handle)} is a ${key.cls}; only private keys are exported as encrypted PKCS #8`);
  checkExtractable(me, key, 'export');
  refuseIfWrapOnly(key);
  const approve = keyApproval(m, me, key, 'manage', req.approval);
  const der = await m.slowWork.run(me.token, () => encryptPrivateKey(key.material, req.password));
  approve();
  return { encryptedPrivateKeyInfo: new Uint8Array(der) };
};

const ASYMMETRIC_TYPES: Record<string, KeyType | undefined> = { rsa: 'rsa', ec: 'ec', ed25519: 'ed25519', x25519: 'x25519', ed448: 'ed448', x448: 'x448' };

/** An EncryptedPrivateKeyInfo opened inside the member with its password, and stored as a new key. */
export const importEncryptedKey: Handler<'importEncryptedKey'> = async (m, caller, req) => {
  const me = signedIn(caller);
  const privateKey = await m.slowWork.run(me.token, () => decryptPrivateKey(req.encryptedPrivateKeyInfo, req.password));
  const keyType = ASYMMETRIC_TYPES[privateKey.asymmetricKeyType ?? ''];
  if (!keyType) throw new HsmError('KEY_TYPE_INCONSISTENT', `encryptedPrivateKeyInfo: a ${privateKey.asymmetricKeyType} key, which the HSM does not hold`);
  const plain = privateKey.export({ format: 'der', type: 'pkcs8' });
  try {
    return importKey(m, caller, { op: 'importKey', keyClass: 'private-key', keyType, format: 'pkcs8', keyData: new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength), ...(req.attributes ? { attributes: req.attributes } : {}) }) as Results['importKey'];
  } finally {
    plain.fill(0);
  }
};

// ---- attributes, find, delete, share ----------------------------------------------------------

export const getAttributes: Handler<'getAttributes'> = (m, caller, req) => keyInfo(visibleKey(m.keys, signedIn(caller), req.handle));

export const setAttributes: Handler<'setAttributes'> = (m, caller, req) => {
  const me = signedIn(caller);
  const key = me.role === 'admin' ? visibleKey(m.keys, me, req.handle) : ownedKey(m.keys, me, req.handle, 'change the attributes of');
  const next = changeAttributes(key.attrs, req.attributes, me.role === 'admin' ? 'admin' : 'owner');
  if (me.role !== 'admin') keyApproval(m, me, key, 'manage', req.approval)();
  m.keys.setAttributes(key, next);
  if (next.token) key.session = null;
  key.gen = m.stamp();
  return keyInfo(key);
};

export const findKeys: Handler<'findKeys'> = (m, caller, req) => {
  const me = signedIn(caller);
  let after = -1;
  if (req.startingToken !== undefined) {
    if (!/^\d{1,16}$/.test(req.startingToken)) throw new HsmError('BAD_REQUEST', 'startingToken: pass the nextToken of the previous page unchanged');
    after = Number(req.startingToken);
  }
  const filter = req.filter ?? {};
  const matchesAttributes = filter.attributes ? filterPredicate(filter.attributes) : () => true;
  const matches: KeyRecord[] = [];
  // A label (not one written as 0x… hex, which matches in any case) or a handle narrows the keys
  // looked at; every test below still runs on each.
  const label = filter.attributes?.label;
  const candidates: Iterable<KeyRecord> =
    filter.handle !== undefined ? [m.keys.get(filter.handle)].filter((k) => k !== undefined) : typeof label === 'string' && !/^0x/i.test(label) ? m.keys.withLabel(label) : m.keys.values();
  for (const key of candidates) {
    if (key.handle <= after) continue;
    if (filter.handle !== undefined && key.handle !== filter.handle) continue;
    if (!matchesAttributes(key.attrs)) continue;
    if (canSee(me, key)) matches.push(key);
  }
  matches.sort((a, b) => a.handle - b.handle);
  const max = req.maxItems ?? 100;
  const page = matches.slice(0, max);
  const keys: KeyInfo[] = page.map(keyInfo);
  return { keys, nextToken: matches.length > max ? String(page.at(-1)!.handle) : null };
};

export const deleteKey: Handler<'deleteKey'> = (m, caller, req) => {
  const key = ownedKey(m.keys, signedIn(caller), req.handle, 'delete');
  if (!key.attrs.destroyable) throw new HsmError('ATTRIBUTE_FORBIDS_OPERATION', `key ${keyRef(key.handle)} has destroyable=false`);
  m.keys.delete(key.handle);
  // A token key's deletion travels and is remembered, so no copy of the key can bring it back.
  if (key.session === null) m.keyTombstones.set(key.handle, m.stamp());
  return { handle: key.handle };
};

function shareTarget(m: MemberState, key: KeyRecord, name: string): string {
  const username = normaliseUsername(name);
  const user = m.users.get(username);
  if (!user) throw new HsmError('USER_NOT_FOUND', `no user named ${username} on this member`);
  if (user.role !== 'crypto-user') throw new HsmError('KEY_NOT_SHAREABLE', `${username} is ${withArticle(user.role)}; keys are shared with crypto users only`);
  if (username === key.owner) throw new HsmError('KEY_NOT_SHAREABLE', `${username} owns key ${keyRef(key.handle)} already`);
  return username;
}

/**
 * The crypto users a new key is shared with as it is made (`shareWith`), every one checked before
 * anything is made: a secret or private token key, existing crypto users other than the owner.
 */
function sharesAtCreation(m: MemberState, me: SessionRecord, cls: KeyClass, template: { token?: boolean }, names: readonly string[] | undefined): ReadonlySet<string> {
  if (!names?.length) return NO_SHARES;
  const shared = new Set<string>();
  if (cls === 'public-key') throw new HsmError('KEY_NOT_SHAREABLE', 'shareWith: a public key is not shared; every crypto user can already use it');
  if (template.token !== true) throw new HsmError('KEY_NOT_SHAREABLE', 'shareWith: a session key is not shared; make a token key (token=true) to share it');
  for (const name of names) {
    const username = normaliseUsername(name);
    const user = m.users.get(username);
    if (!user) throw new HsmError('USER_NOT_FOUND', `shareWith: no user named ${username} on this member`);
    if (user.role !== 'crypto-user') throw new HsmError('KEY_NOT_SHAREABLE', `shareWith: ${username} is ${withArticle(user.role)}; keys are shared with crypto users only`);
    if (username === me.username) throw new HsmError('KEY_NOT_SHAREABLE', `shareWith: ${username} is the key's owner`);
    shared.add(username);
  }
  return shared;
}

function shareableKey(m: MemberState, caller: SessionRecord, handle: number, action: string): KeyRecord {
  const key = ownedKey(m.keys, caller, handle, action);
  if (key.cls === 'public-key') throw new HsmError('KEY_NOT_SHAREABLE', `key ${keyRef(handle)} is a public key; every crypto user can already use it`);
  if (key.session !== null) throw new HsmError('KEY_NOT_SHAREABLE', `key ${keyRef(handle)} is a session key; set token=true before sharing it`);
  return key;
}

export const shareKey: Handler<'shareKey'> = (m, caller, req) => {
  const me = signedIn(caller);
  const key = shareableKey(m, me, req.handle, 'share');
  const target = shareTarget(m, key, req.username);
  keyApproval(m, me, key, 'manage', req.approval)();
  key.shared = withShare(key.shared, target, true);
  key.gen = m.stamp();
  return { handle: key.handle, sharedUsers: [...key.shared].sort() };
};

export const unshareKey: Handler<'unshareKey'> = (m, caller, req) => {
  const me = signedIn(caller);
  const key = shareableKey(m, me, req.handle, 'unshare');
  const target = shareTarget(m, key, req.username);
  const needed = Math.max(key.attrs['manage-key-quorum-value'] ?? 0, key.attrs['use-key-quorum-value'] ?? 0);
  if (key.shared.has(target) && needed > key.shared.size) {
    throw new HsmError('QUORUM_VALUE_INVALID', `key ${keyRef(key.handle)} needs ${needed} approvers and would keep ${key.shared.size} (its owner and the users it is shared with); it cannot be unshared from ${target}`);
  }
  keyApproval(m, me, key, 'manage', req.approval)();
  key.shared = withShare(key.shared, target, false);
  key.gen = m.stamp();
  return { handle: key.handle, sharedUsers: [...key.shared].sort() };
};

// ---- wrap and unwrap --------------------------------------------------------------------------

function checkMechanismKey(expected: string | readonly string[], key: KeyRecord, mechanism: string): void {
  const ok = typeof expected === 'string' ? key.type === expected : expected.includes(key.type);
  if (!ok) {
    throw new HsmError('KEY_TYPE_INCONSISTENT', `mechanism ${mechanism} takes ${typeof expected === 'string' ? expected : expected.join(' or ')} keys, but key ${keyRef(key.handle)} is ${key.type}`);
  }
}

/** The bytes a wrap carries: the payload in the chosen format (JWK as UTF-8 JSON), in memory of its own. */
function payloadBytes(key: KeyRecord, format: KeyFormat, extras: Record<string, unknown> | undefined, mechanism: WrapMechanism): Uint8Array {
  const data = serialiseKey(key, format);
  if (data instanceof Uint8Array) return data;
  // Members in the order WebCrypto implementations write them: key_ops, ext, the key, then alg and use.
  const { key_ops, ext, alg, use } = extras ?? {};
  // JSON.stringify leaves out the members that are undefined.
  let json = JSON.stringify({ key_ops, ext, ...data, alg, use });
  // RFC 3394 wraps whole 8-byte blocks: a JWK is padded with spaces, which JSON ignores (as
  // WebCrypto implementations do for AES-KW).
  if (mechanism.name === 'aes-no-pad' && json.length % 8) json += ' '.repeat(8 - (json.length % 8));
  return new TextEncoder().encode(json);
}

/**
 * Who may choose an AES-GCM IV under a key: its owner, on a key that is not trusted. GCM under a
 * repeated IV gives away the keystream, so a second user of a shared key who could pick the IV of
 * another user's wrapped key (it travels with the blob) would wrap a key they know under it and
 * read the other key out. Everyone else leaves the IV out and the HSM generates a fresh one, as
 * CloudHSM always does. (The owner's own choice is honoured because WebCrypto requires it; the
 * owner of a wrapping key can read what is wrapped under it anyway.)
 */
export function checkChosenIv(me: SessionRecord, key: KeyRecord, mechanism: WrapMechanism): void {
  if (mechanism.name !== 'aes-gcm' || mechanism.iv === undefined) return;
  if (key.owner !== me.username) {
    throw new HsmError('MECHANISM_PARAM_INVALID', `mechanism.iv: only the owner of key ${keyRef(key.handle)} (${key.owner}) chooses its AES-GCM IVs; leave iv out and the HSM generates one (it is returned with the result)`);
  }
  if (key.attrs.trusted) {
    throw new HsmError('MECHANISM_PARAM_INVALID', `mechanism.iv: key ${keyRef(key.handle)} is trusted, so the HSM generates its AES-GCM IVs; leave iv out (it is returned with the result)`);
  }
}

function checkWrapMechanism(m: MemberState, mechanism: WrapMechanism, wrapping: KeyRecord, use: 'wrap' | 'unwrap'): void {
  if (use === 'wrap') checkModeAllows(m.profile, m.backupKeys.mode, { mechanism: mechanism.name, use: 'wrap' });
  if (WRAP_MECHANISMS.has(mechanism.name)) return;
  if (mechanism.name === 'aes-ctr' && m.profile.ctrKeyWrap) {
    if (wrapping.attrs.encrypt === true) {
      throw new HsmError('ATTRIBUTE_FORBIDS_OPERATION', `key ${keyRef(wrapping.handle)} has encrypt=true, so it cannot wrap with aes-ctr: its users could encrypt a known block under the same counter and read the keystream off what it wraps`);
    }
    return;
  }
  if (mechanism.name === 'aes-ctr') {
    throw new HsmError('NOT_SUPPORTED_BY_PROFILE', `mechanism: aes-ctr wraps keys only under the unlimited profile${liftHint(m.profile)}; wrap with ${[...WRAP_MECHANISMS].join(', ')}`);
  }
  throw new HsmError('MECHANISM_PARAM_INVALID', `mechanism: ${mechanism.name} does not wrap keys (it encrypts data only); wrap with ${[...WRAP_MECHANISMS].join(', ')}`);
}

export const wrapKey: Handler<'wrapKey'> = (m, caller, req) => {
  const me = signedIn(caller);
  const wrapping = usableKey(m.keys, me, req.wrappingHandle, 'wrap');
  checkWrapMechanism(m, req.mechanism, wrapping, 'wrap');
  checkChosenIv(me, wrapping, req.mechanism);
  const entry = cipherFor(req.mechanism);
  checkMechanismKey(entry.keyType, wrapping, req.mechanism.name);
  const payload = visibleKey(m.keys, me, req.payloadHandle);
  checkExtractable(me, payload, 'wrap');
  if (payload.attrs['wrap-with-trusted'] && !wrapping.attrs.trusted) {
    throw new HsmError(
      'WRAPPING_KEY_NOT_TRUSTED',
      `key ${keyRef(payload.handle)} has wrap-with-trusted=true, but wrapping key ${keyRef(wrapping.handle)} has trusted=false (an admin sets trusted)`,
    );
  }
  const wrapTemplate = wrapping.attrs['wrap-template'];
  if (wrapTemplate && !matchesFilter(payload.attrs, wrapTemplate)) {
    throw new HsmError('TEMPLATE_INCONSISTENT', `key ${keyRef(payload.handle)} does not match the wrap-template of wrapping key ${keyRef(wrapping.handle)}`);
  }
  const format = req.format ?? defaultFormat(payload.cls);
  if (req.jwkExtras && format !== 'jwk') throw new HsmError('BAD_REQUEST', `jwkExtras: only with format jwk, not ${format}`);
  const approveWrapping = keyApproval(m, me, wrapping, 'manage', req.approval);
  const approvePayload = keyApproval(m, me, payload, 'manage', req.payloadApproval);
  const bytes = payloadBytes(payload, format, req.jwkExtras, req.mechanism);
  try {
    const out = entry.encrypt(wrapping.material, req.mechanism, bytes, m.profile);
    approveWrapping();
    approvePayload();
    return out.iv ? { wrapped: out.data, iv: out.iv } : { wrapped: out.data };
  } finally {
    bytes.fill(0);
  }
};

function parseWrappedJwk(bytes: Buffer): Jwk {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new HsmError('KEY_DATA_INVALID', 'wrapped: the unwrapped bytes are not a JSON Web Key');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || typeof (parsed as Jwk).kty !== 'string') {
    throw new HsmError('KEY_DATA_INVALID', 'wrapped: the unwrapped bytes are not a JSON Web Key');
  }
  return parsed as Jwk;
}

/**
 * What a wrapped JWK says about itself binds the key it becomes: `ext: false` forbids
 * `extractable=true`, and `key_ops` limits the usages (RFC 7517 §4.3, as WebCrypto applies them).
 * Without this, unwrapping would turn a key its wrapper marked non-extractable into one that is.
 */
function checkJwkPermits(jwk: Jwk, template: Template): void {
  if (jwk.ext === false && template.extractable === true) {
    throw new HsmError('KEY_DATA_INVALID', 'wrapped: the JWK says ext=false, so the unwrapped key cannot have extractable=true');
  }
  if (jwk.key_ops === undefined) return;
  if (!Array.isArray(jwk.key_ops)) throw new HsmError('KEY_DATA_INVALID', 'wrapped: the JWK key_ops is not a list');
  const allowed = new Set(jwk.key_ops.map((op) => (USAGE_ATTRIBUTE as Readonly<Record<string, keyof Template>>)[String(op)]).filter((a) => a !== undefined));
  for (const attribute of new Set(Object.values(USAGE_ATTRIBUTE))) {
    if (template[attribute] === true && !allowed.has(attribute)) {
      throw new HsmError('KEY_DATA_INVALID', `wrapped: the JWK key_ops ${JSON.stringify(jwk.key_ops)} do not allow ${attribute}=true`);
    }
  }
}

export const unwrapKey: Handler<'unwrapKey'> = (m, caller, req) => {
  const me = signedIn(caller);
  const unwrapping = usableKey(m.keys, me, req.unwrappingHandle, 'unwrap');
  checkWrapMechanism(m, req.mechanism, unwrapping, 'unwrap');
  const entry = cipherFor(req.mechanism);
  checkMechanismKey(entry.keyType, unwrapping, req.mechanism.name);
  const template = uniteUnwrapTemplate(req.attributes ?? {}, unwrapping.attrs['unwrap-template'], req.keyClass, req.keyType);
  checkCreationTemplate(req.keyClass, req.keyType, template);
  const shared = sharesAtCreation(m, me, req.keyClass, template, req.shareWith);
  const approve = keyApproval(m, me, unwrapping, 'manage', req.approval);
  let material: Material;
  try {
    const bytes = entry.decrypt(unwrapping.material, req.mechanism, req.wrapped, m.profile);
    try {
      const format = req.format ?? defaultFormat(req.keyClass);
      let data: Uint8Array | Jwk = bytes;
      if (format === 'jwk') {
        data = parseWrappedJwk(bytes);
        checkJwkPermits(data, template);
      }
      material = parseKey(req.keyClass, req.keyType, format, data, req.curve);
    } finally {
      bytes.fill(0);
    }
  } catch (e) {
    // RSA PKCS #1 v1.5: a bad padding and a key of the wrong length or form answer alike, so
    // the answers are no Bleichenbacher oracle.
    if (req.mechanism.name === 'rsa-pkcs' && e instanceof HsmError && ['DECRYPTION_FAILED', 'KEY_DATA_INVALID', 'KEY_SIZE_INVALID', 'DATA_INVALID'].includes(e.code)) {
      throw new HsmError('DECRYPTION_FAILED', 'wrapped: it does not unwrap under this key with rsa-pkcs into the key described (wrong key, padding, length or form)');
    }
    throw e;
  }
  checkKeyAllowed(m.profile, req.keyType, material.facts);
  checkModeAllows(m.profile, m.backupKeys.mode, { keyType: req.keyType });
  checkKeyQuota(m, 1, req.keyClass === 'secret-key' ? 0 : 1);
  const key = addKey(m, me, material, attributesForNewKey(req.keyClass, req.keyType, template, { kind: 'unwrapped' }, material.facts), shared);
  approve();
  return { handle: key.handle, key: keyInfo(key) };
};

// ---- derive -----------------------------------------------------------------------------------

/** The base key, the registry entry and (for ECDH) the peer's public key of a derivation. */
export function derivationInputs(
  m: MemberState,
  me: SessionRecord,
  baseHandle: number,
  mechanism: DeriveMechanism,
): { base: KeyRecord; peer: KeyObject | null; entry: (typeof DERIVERS)[DeriveMechanism['name']] } {
  const base = usableKey(m.keys, me, baseHandle, 'derive');
  const entry = DERIVERS[mechanism.name];
  checkMechanismKey(entry.keyTypes, base, mechanism.name);
  let peer: KeyObject | null = null;
  if (mechanism.name === 'ecdh') {
    const { publicHandle, publicKey } = mechanism;
    if ((publicHandle === undefined) === (publicKey === undefined)) {
      throw new HsmError('MECHANISM_PARAM_INVALID', 'mechanism: give the peer as exactly one of publicHandle and publicKey');
    }
    if (publicHandle !== undefined) {
      const other = visibleKey(m.keys, me, publicHandle);
      if (other.cls !== 'public-key') throw new HsmError('KEY_TYPE_INCONSISTENT', `mechanism.publicHandle: key ${keyRef(publicHandle)} is not a public key`);
      peer = other.material;
    } else {
      peer = parsePeerPublicKey(publicKey!);
    }
  }
  return { base, peer, entry };
}

/** Runs a derivation. PBKDF2 is bounded per call and queued fairly with other sessions' (slow-work.ts). */
export function runDerivation(m: MemberState, me: SessionRecord, entry: DeriveEntry, base: KeyRecord, mechanism: DeriveMechanism, lengthBytes: number | null, peer: KeyObject | null): Promise<Buffer> {
  const run = () => entry.derive(base.material, mechanism as never, lengthBytes, peer, base.type);
  if (mechanism.name !== 'pbkdf2') return run();
  checkKdfWork(m.profile, mechanism.hash, mechanism.iterations, lengthBytes ?? 0);
  return m.slowWork.run(me.token, run);
}

export const deriveKey: Handler<'deriveKey'> = async (m, caller, req) => {
  const me = signedIn(caller);
  const { base, peer, entry } = derivationInputs(m, me, req.baseHandle, req.mechanism);
  const template: Template = req.attributes ?? {};
  const cls: KeyClass = 'secret-key';
  checkKeyAllowed(m.profile, req.keyType, { 'check-value': null, 'key-length-bytes': req.lengthBytes });
  checkModeAllows(m.profile, m.backupKeys.mode, { keyType: req.keyType });
  checkCreationTemplate(cls, req.keyType, template);
  checkKeyQuota(m, 1, 0);
  // Every deriver gives exactly lengthBytes, or refuses (ECDH when its shared secret is shorter).
  const derived = await runDerivation(m, me, entry, base, req.mechanism, req.lengthBytes, peer);
  const material = createSecretMaterial(req.keyType, derived);
  derived.fill(0);
  checkKeyQuota(m, 1, 0);
  const key = addKey(m, me, material, attributesForNewKey(cls, req.keyType, template, { kind: 'derived', base: base.attrs }, material.facts));
  return { handle: key.handle };
};
