/**
 * One application's view of Strongroom through PKCS #11 (one connection of p11-kit-client.so):
 * CloudHSM's PKCS #11 library's model (CLOUDHSM.md §2.3, §3.2). One slot, whose token is the
 * cluster; the PIN is `<crypto user>:<password>`, and C_Login as CKU_USER logs that crypto user in
 * (a wrong PIN counts towards the lockout, as any login); its sessions share the login; token
 * objects are the HSM's token keys, session objects its session keys (made in the login's session,
 * they end with it). Each call either answers or throws {@link Ckr}.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ClusterSession, LoginOptions } from '../cluster-client/index.js';
import { USAGES, usageAllowed, type CipherMechanism, type HashName, type KeyClass, type KeyInfo, type KeyType, type SignMechanism } from '../hsm-core/index.js';
import type { Attribute, ByteArray, Mechanism, Ulong, Value } from './codec.js';
import { CKA, CKF, CKG, CKK, CKM, CKO, CKR, CKS, CKU } from './constants.js';
import { CURVE_BY_PARAMS, Ckr, getAttributes, matches, rvOf, templateAttributes } from './objects.js';
import { FIRST_SIDE_HANDLE, SideStore, completeObject, type SideObject } from './side-store.js';
import { attributeClass } from './attributes.js';

/** What the door needs of a cluster: a login (LocalCluster, RemoteCluster, or a test's own). */
export interface Pkcs11Cluster {
  login(username: string, password: string, options?: LoginOptions): Promise<ClusterSession>;
}

export const SLOT_ID = 1n;

const pad = (text: string, size: number) => Buffer.from(text.padEnd(size, ' ').slice(0, size), 'latin1');
const VERSION = { major: 2, minor: 40 };
const FIRMWARE = { major: 1, minor: 0 };

/** The mechanisms of the door (CloudHSM's PKCS #11 list, as far as the member does them): flags and key sizes. */
const MECHANISMS: ReadonlyMap<number, { min: number; max: number; flags: number }> = new Map([
  [CKM.RSA_PKCS_KEY_PAIR_GEN, { min: 2048, max: 4096, flags: CKF.HW | CKF.GENERATE_KEY_PAIR }],
  [CKM.RSA_PKCS, { min: 2048, max: 4096, flags: CKF.HW | CKF.SIGN | CKF.VERIFY | CKF.ENCRYPT | CKF.DECRYPT }],
  [CKM.RSA_PKCS_PSS, { min: 2048, max: 4096, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.SHA1_RSA_PKCS, { min: 2048, max: 4096, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.SHA256_RSA_PKCS, { min: 2048, max: 4096, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.SHA384_RSA_PKCS, { min: 2048, max: 4096, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.SHA512_RSA_PKCS, { min: 2048, max: 4096, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.SHA224_RSA_PKCS, { min: 2048, max: 4096, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.EC_KEY_PAIR_GEN, { min: 224, max: 521, flags: CKF.HW | CKF.GENERATE_KEY_PAIR | CKF.EC_F_P | CKF.EC_NAMEDCURVE | CKF.EC_UNCOMPRESS }],
  [CKM.ECDSA, { min: 224, max: 521, flags: CKF.HW | CKF.SIGN | CKF.VERIFY | CKF.EC_F_P | CKF.EC_NAMEDCURVE | CKF.EC_UNCOMPRESS }],
  [CKM.ECDSA_SHA1, { min: 224, max: 521, flags: CKF.HW | CKF.SIGN | CKF.VERIFY | CKF.EC_F_P | CKF.EC_NAMEDCURVE | CKF.EC_UNCOMPRESS }],
  [CKM.ECDSA_SHA224, { min: 224, max: 521, flags: CKF.HW | CKF.SIGN | CKF.VERIFY | CKF.EC_F_P | CKF.EC_NAMEDCURVE | CKF.EC_UNCOMPRESS }],
  [CKM.ECDSA_SHA256, { min: 224, max: 521, flags: CKF.HW | CKF.SIGN | CKF.VERIFY | CKF.EC_F_P | CKF.EC_NAMEDCURVE | CKF.EC_UNCOMPRESS }],
  [CKM.ECDSA_SHA384, { min: 224, max: 521, flags: CKF.HW | CKF.SIGN | CKF.VERIFY | CKF.EC_F_P | CKF.EC_NAMEDCURVE | CKF.EC_UNCOMPRESS }],
  [CKM.ECDSA_SHA512, { min: 224, max: 521, flags: CKF.HW | CKF.SIGN | CKF.VERIFY | CKF.EC_F_P | CKF.EC_NAMEDCURVE | CKF.EC_UNCOMPRESS }],
  [CKM.SHA_1, { min: 0, max: 0, flags: CKF.DIGEST }],
  [CKM.SHA224, { min: 0, max: 0, flags: CKF.DIGEST }],
  [CKM.SHA256, { min: 0, max: 0, flags: CKF.DIGEST }],
  [CKM.SHA384, { min: 0, max: 0, flags: CKF.DIGEST }],
  [CKM.SHA512, { min: 0, max: 0, flags: CKF.DIGEST }],
  [CKM.RSA_PKCS_OAEP, { min: 2048, max: 4096, flags: CKF.HW | CKF.ENCRYPT | CKF.DECRYPT }],
  [CKM.AES_ECB, { min: 16, max: 32, flags: CKF.HW | CKF.ENCRYPT | CKF.DECRYPT }],
  [CKM.AES_CBC, { min: 16, max: 32, flags: CKF.HW | CKF.ENCRYPT | CKF.DECRYPT }],
  [CKM.AES_CBC_PAD, { min: 16, max: 32, flags: CKF.HW | CKF.ENCRYPT | CKF.DECRYPT }],
  [CKM.AES_CTR, { min: 16, max: 32, flags: CKF.HW | CKF.ENCRYPT | CKF.DECRYPT }],
  [CKM.AES_GCM, { min: 16, max: 32, flags: CKF.HW | CKF.ENCRYPT | CKF.DECRYPT }],
  [CKM.GENERIC_SECRET_KEY_GEN, { min: 1, max: 800, flags: CKF.HW | CKF.GENERATE }],
  [CKM.AES_KEY_GEN, { min: 16, max: 32, flags: CKF.HW | CKF.GENERATE }],
  [CKM.SHA_1_HMAC, { min: 1, max: 800, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.SHA224_HMAC, { min: 1, max: 800, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.SHA256_HMAC, { min: 1, max: 800, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.SHA384_HMAC, { min: 1, max: 800, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
  [CKM.SHA512_HMAC, { min: 1, max: 800, flags: CKF.HW | CKF.SIGN | CKF.VERIFY }],
]);

/** The hash of each HMAC mechanism. */
const HMAC_HASH: Readonly<Record<number, HashName>> = {
  [CKM.SHA_1_HMAC]: 'sha1',
  [CKM.SHA224_HMAC]: 'sha224',
  [CKM.SHA256_HMAC]: 'sha256',
  [CKM.SHA384_HMAC]: 'sha384',
  [CKM.SHA512_HMAC]: 'sha512',
};

const HASH_OF_MECHANISM: Readonly<Record<number, HashName>> = {
  [CKM.SHA_1]: 'sha1',
  [CKM.SHA224]: 'sha224',
  [CKM.SHA256]: 'sha256',
  [CKM.SHA384]: 'sha384',
  [CKM.SHA512]: 'sha512',
};
const MGF_HASH: Readonly<Record<number, HashName>> = { [CKG.MGF1_SHA1]: 'sha1', [CKG.MGF1_SHA224]: 'sha224', [CKG.MGF1_SHA256]: 'sha256', [CKG.MGF1_SHA384]: 'sha384', [CKG.MGF1_SHA512]: 'sha512' };

/** A PKCS #11 mechanism as the member's sign mechanism (digest-signing ones `prehashed`). */
function signMechanism(m: Mechanism): SignMechanism {
  switch (m.type) {
    case CKM.ECDSA:
      return { name: 'ecdsa', hash: 'sha256', signatureFormat: 'p1363', prehashed: true };
    case CKM.ECDSA_SHA1:
    case CKM.ECDSA_SHA224:
    case CKM.ECDSA_SHA256:
    case CKM.ECDSA_SHA384:
    case CKM.ECDSA_SHA512: {
      const hash = (['sha1', 'sha224', 'sha256', 'sha384', 'sha512'] as const)[m.type - CKM.ECDSA_SHA1]!;
      return { name: 'ecdsa', hash, signatureFormat: 'p1363' };
    }
    case CKM.RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha256', prehashed: true };
    case CKM.SHA1_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha1' };
    case CKM.SHA224_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha224' };
    case CKM.SHA256_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha256' };
    case CKM.SHA384_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha384' };
    case CKM.SHA512_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha512' };
    case CKM.SHA_1_HMAC:
    case CKM.SHA224_HMAC:
    case CKM.SHA256_HMAC:
    case CKM.SHA384_HMAC:
    case CKM.SHA512_HMAC:
      return { name: 'hmac', hash: HMAC_HASH[m.type]! };
    case CKM.RSA_PKCS_PSS: {
      const p = m.param;
      if (!p || p.kind !== 'pss') throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_RSA_PKCS_PSS needs its parameters');
      const hash = HASH_OF_MECHANISM[Number(p.hash)];
      if (!hash || MGF_HASH[Number(p.mgf)] !== hash) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_RSA_PKCS_PSS: MGF1 with the same hash as the message');
      return { name: 'rsa-pkcs-pss', hash, saltLength: Number(p.saltLength), prehashed: true };
    }
    default:
      throw new Ckr(CKR.MECHANISM_INVALID, `mechanism 0x${m.type.toString(16)} does not sign here`);
  }
}

/** A PKCS #11 cipher mechanism as the member's. */
function cipherMechanism(m: Mechanism): CipherMechanism {
  const p = m.param;
  switch (m.type) {
    case CKM.RSA_PKCS:
      return { name: 'rsa-pkcs' };
    case CKM.RSA_PKCS_OAEP: {
      if (!p || p.kind !== 'oaep') throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_RSA_PKCS_OAEP needs its parameters');
      const hash = HASH_OF_MECHANISM[Number(p.hash)];
      if (!hash || MGF_HASH[Number(p.mgf)] !== hash) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_RSA_PKCS_OAEP: MGF1 with the same hash');
      return { name: 'rsa-oaep', hash, ...(p.sourceData && p.sourceData.length ? { label: p.sourceData } : {}) };
    }
    case CKM.AES_ECB:
      return { name: 'aes-ecb' };
    case CKM.AES_CBC:
    case CKM.AES_CBC_PAD: {
      const iv = p?.kind === 'iv' ? p.iv : p?.kind === 'bytes' ? p.data : null;
      if (!iv || iv.length !== 16) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'AES-CBC needs a 16-byte IV');
      return { name: m.type === CKM.AES_CBC ? 'aes-cbc' : 'aes-cbc-pad', iv };
    }
    case CKM.AES_CTR: {
      if (p?.kind !== 'ctr') throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'AES-CTR needs its counter block');
      return { name: 'aes-ctr', counter: p.counterBlock, counterBits: Number(p.counterBits) };
    }
    case CKM.AES_GCM: {
      if (p?.kind !== 'gcm' || !p.iv) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'AES-GCM needs its IV');
      return { name: 'aes-gcm', iv: p.iv, ...(p.aad && p.aad.length ? { aad: p.aad } : {}), tagLengthBits: Number(p.tagBits) as never };
    }
    default:
      throw new Ckr(CKR.MECHANISM_INVALID, `mechanism 0x${m.type.toString(16)} does not encrypt here`);
  }
}

/** DigestInfo prefixes: CKM_RSA_PKCS signs a DigestInfo the caller built; the member takes the digest and its hash. */
const DIGEST_INFO: ReadonlyArray<[HashName, string]> = [
  ['sha1', '3021300906052b0e03021a05000414'],
  ['sha224', '302d300d06096086480165030402040500041c'],
  ['sha256', '3031300d060960864801650304020105000420'],
  ['sha384', '3041300d060960864801650304020205000430'],
  ['sha512', '3051300d060960864801650304020305000440'],
];

/** What the member signs for a raw-input mechanism: the hash the data's length says (ECDSA, PSS) or the DigestInfo names (RSA PKCS #1). */
function prehashedInput(mech: SignMechanism, data: Buffer): { mechanism: SignMechanism; data: Buffer } {
  if (!('prehashed' in mech) || !mech.prehashed) return { mechanism: mech, data };
  if (mech.name === 'rsa-pkcs') {
    for (const [hash, prefix] of DIGEST_INFO) {
      const p = Buffer.from(prefix, 'hex');
      if (data.length === p.length + p[p.length - 1]! && data.subarray(0, p.length).equals(p)) return { mechanism: { ...mech, hash }, data: data.subarray(p.length) };
    }
    throw new Ckr(CKR.DATA_INVALID, 'CKM_RSA_PKCS signs a DigestInfo (SHA-1 or SHA-2) here');
  }
  if (mech.name === 'ecdsa') {
    const hash = ({ 20: 'sha1', 28: 'sha224', 32: 'sha256', 48: 'sha384', 64: 'sha512' } as Record<number, HashName>)[data.length];
    if (!hash) throw new Ckr(CKR.DATA_LEN_RANGE, `CKM_ECDSA signs a hash (20 to 64 bytes), not ${data.length} bytes`);
    return { mechanism: { ...mech, hash }, data };
  }
  return { mechanism: mech, data };
}

type OpKind = 'sign' | 'verify' | 'digest' | 'find' | 'encrypt' | 'decrypt';

interface Operation {
  kind: OpKind;
  key?: KeyInfo;
  mechanism?: SignMechanism;
  cipher?: CipherMechanism;
  chunks: Buffer[];
  /** A result computed for a size query, kept for the call that fetches it. */
  result?: Buffer;
  found?: number[];
  hash?: HashName;
}

interface P11Session {
  rw: boolean;
  ops: Map<OpKind, Operation>;
}

/** One connection's PKCS #11 state. */
export class Token {
  #initialized = false;
  #hsm: ClusterSession | null = null;
  #loginPending: Promise<void> | null = null;
  readonly #sessions = new Map<bigint, P11Session>();
  #nextSession = 1n;

  /** The logged-in user's certificates and data objects: token ones (a file) and this connection's session ones. */
  #store: SideStore | null = null;
  #sessionObjects: SideObject[] = [];

  constructor(
    private readonly cluster: Pkcs11Cluster,
    private readonly label: string,
    private readonly serial: string,
    /** Where token certificates and data objects are kept (null: in memory only), and for which cluster. */
    private readonly objects: { folder: string | null; clusterId: string } = { folder: null, clusterId: 'cluster' },
  ) {}

  /** Ends the connection: logs out, every session and its objects go. */
  async close(): Promise<void> {
    this.#sessions.clear();
    this.#sessionObjects = [];
    this.#store = null;
    const hsm = this.#hsm;
    this.#hsm = null;
    if (hsm) await hsm.logout().catch(() => undefined);
  }

  #sideObjects(): SideObject[] {
    return [...(this.#store?.objects ?? []), ...this.#sessionObjects];
  }
  #sideObject(handle: Ulong): SideObject | undefined {
    return handle >= BigInt(FIRST_SIDE_HANDLE) ? this.#sideObjects().find((o) => BigInt(o.handle) === handle) : undefined;
  }

  #session(handle: Ulong): P11Session {
    if (!this.#initialized) throw new Ckr(CKR.CRYPTOKI_NOT_INITIALIZED);
    const s = this.#sessions.get(handle);
    if (!s) throw new Ckr(CKR.SESSION_HANDLE_INVALID);
    return s;
  }
  #slot(slot: Ulong): void {
    if (!this.#initialized) throw new Ckr(CKR.CRYPTOKI_NOT_INITIALIZED);
    if (slot !== SLOT_ID) throw new Ckr(CKR.SLOT_ID_INVALID);
  }
  #hsmSession(): ClusterSession {
    if (!this.#hsm) throw new Ckr(CKR.USER_NOT_LOGGED_IN);
    return this.#hsm;
  }
  async #key(handle: Ulong): Promise<KeyInfo> {
    const s = this.#hsmSession();
    if (handle > BigInt(Number.MAX_SAFE_INTEGER)) throw new Ckr(CKR.OBJECT_HANDLE_INVALID);
    try {
      return await s.send({ op: 'getAttributes', handle: Number(handle) });
    } catch (e) {
      const rv = rvOf(e);
      throw new Ckr(rv === CKR.OBJECT_HANDLE_INVALID || rv === CKR.FUNCTION_FAILED ? CKR.OBJECT_HANDLE_INVALID : rv);
    }
  }

  /**
   * The key an operation starts with. C_SignInit and C_VerifyInit come before every signature, so
   * what the member said of the key is kept for a second (and forgotten at this connection's own
   * changes); the member itself checks the key and its usages again at the signature.
   */
  async #keyForOperation(handle: Ulong): Promise<KeyInfo> {
    const cached = this.#keys.get(handle);
    if (cached && performance.now() - cached.at < 1000) return cached.key;
    const key = await this.#key(handle);
    this.#keys.set(handle, { key, at: performance.now() });
    return key;
  }
  readonly #keys = new Map<Ulong, { key: KeyInfo; at: number }>();

  /** Runs one call; its answer's values in the response signature's order. */
  async call(name: string, args: Value[]): Promise<Value[]> {
    if (CHANGES.has(name)) this.#keys.clear();
    try {
      return await this.#call(name, args);
    } catch (e) {
      throw e instanceof Ckr ? e : new Ckr(rvOf(e), e instanceof Error ? e.message : String(e));
    }
  }

  async #call(name: string, a: Value[]): Promise<Value[]> {
    switch (name) {
      case 'C_Initialize':
        if (this.#initialized) throw new Ckr(CKR.CRYPTOKI_ALREADY_INITIALIZED);
        this.#initialized = true;
        return [];
      case 'C_Finalize':
        await this.close();
        this.#initialized = false;
        return [];
      case 'C_GetInfo':
        return [VERSION, pad('Strongroom', 32), 0n, pad('Strongroom PKCS #11 door', 32), FIRMWARE];
      case 'C_GetSlotList':
        if (!this.#initialized) throw new Ckr(CKR.CRYPTOKI_NOT_INITIALIZED);
        return [ulongs([SLOT_ID], a[1] as number)];
      case 'C_GetSlotInfo':
        this.#slot(a[0] as Ulong);
        return [pad(`Strongroom cluster ${this.label}`, 64), pad('Strongroom', 32), BigInt(CKF.TOKEN_PRESENT | CKF.HW_SLOT), FIRMWARE, FIRMWARE];
      case 'C_GetTokenInfo':
        this.#slot(a[0] as Ulong);
        return [
          pad(this.label, 32),
          pad('Strongroom', 32),
          pad('hsm2m.medium', 16),
          pad(this.serial, 16),
          BigInt(CKF.RNG | CKF.LOGIN_REQUIRED | CKF.USER_PIN_INITIALIZED | CKF.TOKEN_INITIALIZED),
          0xffffffffffffffffn, // max sessions: CK_EFFECTIVELY_INFINITE is 0; CloudHSM reports unavailable
          BigInt(this.#sessions.size),
          0xffffffffffffffffn,
          BigInt([...this.#sessions.values()].filter((s) => s.rw).length),
          32n, // PIN length, max (user:password)
          7n, // min
          0xffffffffffffffffn,
          0xffffffffffffffffn,
          0xffffffffffffffffn,
          0xffffffffffffffffn,
          FIRMWARE,
          FIRMWARE,
          pad('', 16),
        ];
      case 'C_GetMechanismList':
        this.#slot(a[0] as Ulong);
        return [ulongs([...MECHANISMS.keys()].map(BigInt), a[1] as number)];
      case 'C_GetMechanismInfo': {
        this.#slot(a[0] as Ulong);
        const info = MECHANISMS.get(Number(a[1] as Ulong));
        if (!info) throw new Ckr(CKR.MECHANISM_INVALID);
        return [BigInt(info.min), BigInt(info.max), BigInt(info.flags)];
      }
      case 'C_OpenSession': {
        this.#slot(a[0] as Ulong);
        const flags = Number(a[1] as Ulong);
        if (!(flags & CKF.SERIAL_SESSION)) throw new Ckr(CKR.SESSION_PARALLEL_NOT_SUPPORTED);
        const handle = this.#nextSession++;
        this.#sessions.set(handle, { rw: (flags & CKF.RW_SESSION) !== 0, ops: new Map() });
        return [handle];
      }
      case 'C_CloseSession':
        this.#session(a[0] as Ulong);
        this.#sessions.delete(a[0] as Ulong);
        if (this.#sessions.size === 0) await this.close();
        return [];
      case 'C_CloseAllSessions':
        this.#slot(a[0] as Ulong);
        await this.close();
        return [];
      case 'C_GetSessionInfo': {
        const s = this.#session(a[0] as Ulong);
        const state = this.#hsm ? (s.rw ? CKS.RW_USER_FUNCTIONS : CKS.RO_USER_FUNCTIONS) : s.rw ? CKS.RW_PUBLIC_SESSION : CKS.RO_PUBLIC_SESSION;
        return [SLOT_ID, BigInt(state), BigInt(CKF.SERIAL_SESSION | (s.rw ? CKF.RW_SESSION : 0)), 0n];
      }
      case 'C_Login':
        return this.#login(a[0] as Ulong, a[1] as Ulong, a[2] as ByteArray);
      case 'C_Logout': {
        this.#session(a[0] as Ulong);
        if (!this.#hsm) throw new Ckr(CKR.USER_NOT_LOGGED_IN);
        const hsm = this.#hsm;
        this.#hsm = null;
        this.#store = null;
        this.#sessionObjects = [];
        await hsm.logout();
        return [];
      }
      case 'C_FindObjectsInit':
        return this.#findInit(a[0] as Ulong, a[1] as Attribute[]);
      case 'C_FindObjects': {
        const op = this.#op(a[0] as Ulong, 'find');
        const max = a[1] as number;
        const out = op.found!.splice(0, max);
        return [{ valid: true, values: out.map(BigInt), count: out.length }];
      }
      case 'C_FindObjectsFinal':
        this.#op(a[0] as Ulong, 'find');
        this.#session(a[0] as Ulong).ops.delete('find');
        return [];
      case 'C_GetAttributeValue': {
        this.#session(a[0] as Ulong);
        const side = this.#sideObject(a[1] as Ulong);
        if (side) {
          const { attributes, rv } = sideAttributes(side, a[2] as { type: number; length: number }[]);
          return [attributes, BigInt(rv)];
        }
        const key = await this.#key(a[1] as Ulong);
        const { attributes, rv } = getAttributes(key, a[2] as { type: number; length: number }[]);
        return [attributes, BigInt(rv)];
      }
      case 'C_CreateObject': {
        this.#session(a[0] as Ulong);
        this.#hsmSession();
        const made = completeObject(a[1] as Attribute[]);
        const handle = this.#store!.nextHandle(this.#sessionObjects.map((o) => o.handle));
        const object = { handle, token: made.token, attributes: made.attributes };
        if (made.token) this.#store!.add(object);
        else this.#sessionObjects.push(object);
        return [BigInt(handle)];
      }
      case 'C_CopyObject': {
        this.#session(a[0] as Ulong);
        const template = a[2] as Attribute[];
        const side = this.#sideObject(a[1] as Ulong);
        if (side) {
          // A certificate or data object: the copy takes the template's values over the original's.
          const made = completeObject([...side.attributes.filter((x) => !template.some((t) => t.type === x.type)), ...template]);
          const handle = this.#store!.nextHandle(this.#sessionObjects.map((o) => o.handle));
          const object = { handle, token: made.token, attributes: made.attributes };
          if (made.token) this.#store!.add(object);
          else this.#sessionObjects.push(object);
          return [BigInt(handle)];
        }
        // A key: the HSM makes a second key of the same material (Java's KeyStore stores a generated
        // session key this way, with CKA_TOKEN and its alias as CKA_ID).
        const { attributes, facts } = templateAttributes(template);
        if (facts.size) throw new Ckr(CKR.ATTRIBUTE_READ_ONLY, `attribute 0x${[...facts.keys()][0]!.toString(16)} cannot be changed in a copy`);
        const made = await this.#hsmSession().send({ op: 'copyKey', handle: Number(a[1] as Ulong), attributes });
        return [BigInt(made.handle)];
      }
      case 'C_DestroyObject': {
        this.#session(a[0] as Ulong);
        const side = this.#sideObject(a[1] as Ulong);
        if (side) {
          if (side.token) this.#store!.remove(side.handle);
          else this.#sessionObjects = this.#sessionObjects.filter((o) => o !== side);
          return [];
        }
        await this.#hsmSession().send({ op: 'deleteKey', handle: Number(a[1] as Ulong) });
        return [];
      }
      case 'C_GenerateKey':
        return this.#generateKey(a[0] as Ulong, a[1] as Mechanism, a[2] as Attribute[]);
      case 'C_SetAttributeValue': {
        this.#session(a[0] as Ulong);
        if (this.#sideObject(a[1] as Ulong)) throw new Ckr(CKR.ACTION_PROHIBITED, 'certificates and data objects are not changed in place here; destroy and create');
        const { attributes, facts } = templateAttributes(a[2] as Attribute[]);
        if (facts.size) throw new Ckr(CKR.ATTRIBUTE_READ_ONLY, `attribute 0x${[...facts.keys()][0]!.toString(16)} cannot be changed`);
        await this.#hsmSession().send({ op: 'setAttributes', handle: Number(a[1] as Ulong), attributes });
        return [];
      }
      case 'C_GenerateKeyPair':
        return this.#generateKeyPair(a[0] as Ulong, a[1] as Mechanism, a[2] as Attribute[], a[3] as Attribute[]);
      case 'C_SignInit':
      case 'C_VerifyInit': {
        const s = this.#session(a[0] as Ulong);
        const kind = name === 'C_SignInit' ? 'sign' : 'verify';
        if (s.ops.has(kind)) throw new Ckr(CKR.OPERATION_ACTIVE);
        const mechanism = signMechanism(a[1] as Mechanism);
        const key = await this.#keyForOperation(a[2] as Ulong);
        s.ops.set(kind, { kind, key, mechanism, chunks: [] });
        return [];
      }
      case 'C_Sign':
        return this.#sign(a[0] as Ulong, [(a[1] as ByteArray).data ?? Buffer.alloc(0)], a[2] as number);
      case 'C_SignUpdate':
        this.#op(a[0] as Ulong, 'sign').chunks.push((a[1] as ByteArray).data ?? Buffer.alloc(0));
        return [];
      case 'C_SignFinal':
        return this.#sign(a[0] as Ulong, null, a[1] as number);
      case 'C_Verify':
        return this.#verify(a[0] as Ulong, [(a[1] as ByteArray).data ?? Buffer.alloc(0)], (a[2] as ByteArray).data ?? Buffer.alloc(0));
      case 'C_VerifyUpdate':
        this.#op(a[0] as Ulong, 'verify').chunks.push((a[1] as ByteArray).data ?? Buffer.alloc(0));
        return [];
      case 'C_VerifyFinal':
        return this.#verify(a[0] as Ulong, null, (a[1] as ByteArray).data ?? Buffer.alloc(0));
      case 'C_EncryptInit':
      case 'C_DecryptInit': {
        const s = this.#session(a[0] as Ulong);
        const kind = name === 'C_EncryptInit' ? 'encrypt' : 'decrypt';
        if (s.ops.has(kind)) throw new Ckr(CKR.OPERATION_ACTIVE);
        const cipher = cipherMechanism(a[1] as Mechanism);
        const key = await this.#keyForOperation(a[2] as Ulong);
        s.ops.set(kind, { kind, key, cipher, chunks: [] });
        return [];
      }
      case 'C_Encrypt':
      case 'C_Decrypt':
        return this.#crypt(a[0] as Ulong, name === 'C_Encrypt' ? 'encrypt' : 'decrypt', (a[1] as ByteArray).data ?? Buffer.alloc(0), a[2] as number);
      case 'C_EncryptUpdate':
      case 'C_DecryptUpdate': {
        // Data is gathered and the result comes at the final call (an empty valid answer now).
        this.#op(a[0] as Ulong, name === 'C_EncryptUpdate' ? 'encrypt' : 'decrypt').chunks.push((a[1] as ByteArray).data ?? Buffer.alloc(0));
        return [{ data: Buffer.alloc(0), length: 0 }];
      }
      case 'C_EncryptFinal':
      case 'C_DecryptFinal':
        return this.#crypt(a[0] as Ulong, name === 'C_EncryptFinal' ? 'encrypt' : 'decrypt', null, a[1] as number);
      case 'C_DigestInit': {
        const s = this.#session(a[0] as Ulong);
        if (s.ops.has('digest')) throw new Ckr(CKR.OPERATION_ACTIVE);
        const hash = HASH_OF_MECHANISM[(a[1] as Mechanism).type];
        if (!hash) throw new Ckr(CKR.MECHANISM_INVALID);
        s.ops.set('digest', { kind: 'digest', hash, chunks: [] });
        return [];
      }
      case 'C_Digest':
      case 'C_DigestFinal': {
        const op = this.#op(a[0] as Ulong, 'digest');
        if (name === 'C_Digest') op.chunks.push((a[1] as ByteArray).data ?? Buffer.alloc(0));
        op.result ??= createHash(op.hash!).update(Buffer.concat(op.chunks)).digest();
        return this.#output(a[0] as Ulong, 'digest', op.result, (name === 'C_Digest' ? a[2] : a[1]) as number);
      }
      case 'C_DigestUpdate':
        this.#op(a[0] as Ulong, 'digest').chunks.push((a[1] as ByteArray).data ?? Buffer.alloc(0));
        return [];
      case 'C_GenerateRandom': {
        this.#session(a[0] as Ulong);
        const length = a[1] as number;
        // The HSM's random: the member makes it (at most its profile's limit per call).
        const data = length === 0 ? Buffer.alloc(0) : Buffer.from((await this.#hsmOrAnonymousRandom(length)) as Uint8Array);
        return [{ data, length: data.length }];
      }
      case 'C_SeedRandom':
        this.#session(a[0] as Ulong);
        throw new Ckr(CKR.RANDOM_SEED_NOT_SUPPORTED);
      case 'C_WaitForSlotEvent':
        if (!this.#initialized) throw new Ckr(CKR.CRYPTOKI_NOT_INITIALIZED);
        if (Number(a[0] as Ulong) & CKF.DONT_BLOCK) throw new Ckr(CKR.NO_EVENT);
        throw new Ckr(CKR.FUNCTION_NOT_SUPPORTED);
      default:
        throw new Ckr(CKR.FUNCTION_NOT_SUPPORTED, `${name} is not supported by the door yet`);
    }
  }

  async #hsmOrAnonymousRandom(length: number): Promise<Uint8Array> {
    if (this.#hsm) return (await this.#hsm.send({ op: 'generateRandom', length })).data;
    // Before a login (CloudHSM's library needs none for random bytes): the process's CSPRNG.
    return randomBytes(length);
  }

  async #login(sessionHandle: Ulong, userType: Ulong, pin: ByteArray): Promise<Value[]> {
    this.#session(sessionHandle);
    if (userType === BigInt(CKU.SO)) throw new Ckr(CKR.USER_TYPE_INVALID, 'the security officer is not a PKCS #11 user of CloudHSM; log in as CKU_USER with user:password');
    if (userType !== BigInt(CKU.USER)) throw new Ckr(CKR.USER_TYPE_INVALID);
    if (this.#hsm || this.#loginPending) throw new Ckr(CKR.USER_ALREADY_LOGGED_IN);
    const text = (pin.data ?? Buffer.alloc(0)).toString('utf8');
    const at = text.indexOf(':');
    if (at < 1) throw new Ckr(CKR.PIN_INCORRECT, 'the PIN is <crypto user>:<password>, as CloudHSM\'s PKCS #11 library takes it');
    const pending = (async () => {
      this.#hsm = await this.cluster.login(text.slice(0, at), text.slice(at + 1), { role: 'crypto-user' });
      this.#store = new SideStore(this.objects.folder, this.objects.clusterId, this.#hsm.username);
    })();
    this.#loginPending = pending;
    try {
      await pending;
    } finally {
      this.#loginPending = null;
    }
    return [];
  }

  #op(handle: Ulong, kind: OpKind): Operation {
    const op = this.#session(handle).ops.get(kind);
    if (!op) throw new Ckr(CKR.OPERATION_NOT_INITIALIZED);
    return op;
  }

  /** An output byte array: the result if it fits, else its length (a size query keeps the operation and its result). */
  #output(handle: Ulong, kind: OpKind, result: Buffer, room: number): Value[] {
    if (room === 0 || room < result.length) {
      // p11-kit 0.24 sends 0 for an empty buffer too: an empty result always goes as valid (PKCS11-RPC.md P3).
      if (result.length === 0) {
        this.#session(handle).ops.delete(kind);
        return [{ data: result, length: 0 }];
      }
      return [{ data: null, length: result.length }];
    }
    this.#session(handle).ops.delete(kind);
    return [{ data: result, length: result.length }];
  }

  async #findInit(handle: Ulong, template: Attribute[]): Promise<Value[]> {
    const s = this.#session(handle);
    if (s.ops.has('find')) throw new Ckr(CKR.OPERATION_ACTIVE);
    const found: number[] = [];
    // Public objects need no login in PKCS #11, but every Strongroom key is a private object.
    if (this.#hsm) {
      for (let token: string | null | undefined; token !== null; ) {
        const page = await this.#hsm.listKeys({ maxItems: 10_000, ...(token ? { startingToken: token } : {}) });
        for (const key of page.keys) if (matches(key, template)) found.push(key.handle);
        token = page.nextToken;
      }
      for (const o of this.#sideObjects()) if (sideMatches(o, template)) found.push(o.handle);
    }
    s.ops.set('find', { kind: 'find', chunks: [], found });
    return [];
  }

  async #sign(handle: Ulong, data: Buffer[] | null, room: number): Promise<Value[]> {
    const op = this.#op(handle, 'sign');
    if (data) op.chunks.push(...data);
    if (!op.result) {
      try {
        const input = prehashedInput(op.mechanism!, Buffer.concat(op.chunks));
        const { signature } = await this.#hsmSession().send({ op: 'sign', handle: op.key!.handle, mechanism: input.mechanism, data: input.data });
        op.result = Buffer.from(signature);
      } catch (e) {
        // A failed C_Sign ends the operation (only a buffer too small keeps it).
        this.#session(handle).ops.delete('sign');
        throw e;
      }
    }
    return this.#output(handle, 'sign', op.result, room);
  }

  async #crypt(handle: Ulong, kind: 'encrypt' | 'decrypt', data: Buffer | null, room: number): Promise<Value[]> {
    const op = this.#op(handle, kind);
    if (data) op.chunks.push(data);
    if (!op.result) {
      try {
        const r = await this.#hsmSession().send({ op: kind, handle: op.key!.handle, mechanism: op.cipher!, data: Buffer.concat(op.chunks) } as never) as { data: Uint8Array };
        op.result = Buffer.from(r.data);
      } catch (e) {
        this.#session(handle).ops.delete(kind);
        throw e;
      }
    }
    return this.#output(handle, kind, op.result, room);
  }

  async #verify(handle: Ulong, data: Buffer[] | null, signature: Buffer): Promise<Value[]> {
    const op = this.#op(handle, 'verify');
    if (data) op.chunks.push(...data);
    this.#session(handle).ops.delete('verify');
    const input = prehashedInput(op.mechanism!, Buffer.concat(op.chunks));
    const { valid } = await this.#hsmSession().send({ op: 'verify', handle: op.key!.handle, mechanism: input.mechanism, data: input.data, signature });
    if (!valid) throw new Ckr(CKR.SIGNATURE_INVALID);
    return [];
  }

  async #generateKey(handle: Ulong, mechanism: Mechanism, template: Attribute[]): Promise<Value[]> {
    this.#session(handle);
    const hsm = this.#hsmSession();
    const { attributes, facts } = templateAttributes(template);
    const keyType = mechanism.type === CKM.AES_KEY_GEN ? 'aes' : mechanism.type === CKM.GENERIC_SECRET_KEY_GEN ? 'generic-secret' : null;
    if (!keyType) throw new Ckr(CKR.MECHANISM_INVALID, `mechanism 0x${mechanism.type.toString(16)} makes no secret key here`);
    const length = facts.get(CKA.VALUE_LEN);
    if (typeof length !== 'number') throw new Ckr(CKR.TEMPLATE_INCOMPLETE, 'CKA_VALUE_LEN is required');
    const cls = facts.get(CKA.CLASS);
    if (cls !== undefined && cls !== CKO.SECRET_KEY) throw new Ckr(CKR.TEMPLATE_INCONSISTENT, 'CKA_CLASS: a secret key');
    const type = facts.get(CKA.KEY_TYPE);
    if (type !== undefined && type !== (keyType === 'aes' ? CKK.AES : CKK.GENERIC_SECRET)) throw new Ckr(CKR.TEMPLATE_INCONSISTENT, 'CKA_KEY_TYPE does not match the mechanism');
    // CloudHSM's PKCS #11 default: a session object unless CKA_TOKEN.
    const made = await hsm.send({ op: 'generateKey', keyType, lengthBytes: length, attributes: withoutImpossibleUsages({ token: false, ...attributes }, 'secret-key', keyType) }).then((r) => r.handle);
    return [BigInt(made)];
  }

  async #generateKeyPair(handle: Ulong, mechanism: Mechanism, publicTemplate: Attribute[], privateTemplate: Attribute[]): Promise<Value[]> {
    this.#session(handle);
    const hsm = this.#hsmSession();
    const pub = templateAttributes(publicTemplate);
    const priv = templateAttributes(privateTemplate);
    // CloudHSM's PKCS #11 defaults: session objects unless CKA_TOKEN, no usages unless the template says so.
    const publicAttributes = { token: false, ...pub.attributes };
    const privateAttributes = { token: false, ...priv.attributes };
    let shape: Record<string, unknown>;
    if (mechanism.type === CKM.RSA_PKCS_KEY_PAIR_GEN) {
      const bits = pub.facts.get(CKA.MODULUS_BITS);
      if (typeof bits !== 'number') throw new Ckr(CKR.TEMPLATE_INCOMPLETE, 'CKA_MODULUS_BITS is required for an RSA key pair');
      const e = pub.facts.get(CKA.PUBLIC_EXPONENT);
      const exponent = Buffer.isBuffer(e) && e.length ? Number(BigInt(`0x${e.toString('hex')}`)) : 65537;
      shape = { keyType: 'rsa', modulusBits: bits, publicExponent: exponent };
    } else if (mechanism.type === CKM.EC_KEY_PAIR_GEN) {
      const params = pub.facts.get(CKA.EC_PARAMS);
      const curve = Buffer.isBuffer(params) ? CURVE_BY_PARAMS.get(params.toString('hex')) : undefined;
      if (!curve) throw new Ckr(CKR.CURVE_NOT_SUPPORTED, 'CKA_EC_PARAMS names no curve the HSM holds (P-224, P-256, P-384, P-521, secp256k1)');
      shape = curve === 'ed25519' ? { keyType: 'ed25519' } : { keyType: 'ec', curve };
    } else throw new Ckr(CKR.MECHANISM_INVALID, `mechanism 0x${mechanism.type.toString(16)} makes no key pair here`);
    for (const [t, facts] of [[CKO.PUBLIC_KEY, pub.facts], [CKO.PRIVATE_KEY, priv.facts]] as const) {
      const cls = facts.get(CKA.CLASS);
      if (cls !== undefined && cls !== t) throw new Ckr(CKR.TEMPLATE_INCONSISTENT, 'CKA_CLASS does not match the half of the pair');
      const keyType = facts.get(CKA.KEY_TYPE);
      if (keyType !== undefined && keyType !== (mechanism.type === CKM.RSA_PKCS_KEY_PAIR_GEN ? CKK.RSA : shape.keyType === 'ed25519' ? CKK.EC_EDWARDS : CKK.EC)) {
        throw new Ckr(CKR.TEMPLATE_INCONSISTENT, 'CKA_KEY_TYPE does not match the mechanism');
      }
    }
    const type = shape.keyType as KeyType;
    withoutImpossibleUsages(publicAttributes, 'public-key', type);
    withoutImpossibleUsages(privateAttributes, 'private-key', type);
    const r = await hsm.send({ op: 'generateKeyPair', ...shape, publicAttributes, privateAttributes } as never) as { publicHandle: number; privateHandle: number };
    return [BigInt(r.publicHandle), BigInt(r.privateHandle)];
  }
}

/** Calls after which what this connection knows of its keys may be out of date. */
const CHANGES: ReadonlySet<string> = new Set(['C_SetAttributeValue', 'C_DestroyObject', 'C_Logout', 'C_Login', 'C_CloseAllSessions', 'C_Finalize']);

/** A ulong array answer: the values if the caller has room, else only their count. */
function ulongs(values: Ulong[], room: number): { valid: boolean; values: Ulong[]; count: number } {
  return room >= values.length && room > 0 ? { valid: true, values, count: values.length } : { valid: false, values: [], count: values.length };
}

/** A stored object's attributes for GetAttributeValue (as a module answers: size queries, too small, unknown). */
function sideAttributes(o: SideObject, wanted: { type: number; length: number }[]): { attributes: Attribute[]; rv: number } {
  let rv: number = CKR.OK;
  const attributes = wanted.map(({ type, length: room }): Attribute => {
    const found = o.attributes.find((a) => a.type === type);
    if (!found || found.value === null) {
      if (rv === CKR.OK) rv = CKR.ATTRIBUTE_TYPE_INVALID;
      return { type, value: null, length: -1 };
    }
    if (room === 0) {
      const cls = attributeClass(type);
      return { type, value: cls === 'byte' ? { byte: 0 } : cls === 'ulong' ? { ulong: 0n } : cls === 'date' ? { date: Buffer.alloc(0) } : { bytes: null }, length: found.length };
    }
    if (room < found.length) {
      if (rv === CKR.OK) rv = CKR.BUFFER_TOO_SMALL;
      return { type, value: null, length: -1 };
    }
    return found;
  });
  return { attributes, rv };
}

/** Whether a stored object matches a FindObjects template. */
function sideMatches(o: SideObject, template: Attribute[]): boolean {
  return template.every((t) => {
    const have = o.attributes.find((a) => a.type === t.type)?.value;
    const want = t.value;
    if (!have || !want) return false;
    if ('byte' in want) return 'byte' in have && (have.byte !== 0) === (want.byte !== 0);
    if ('ulong' in want) return 'ulong' in have && have.ulong === want.ulong;
    if ('bytes' in want) return 'bytes' in have && (have.bytes ?? Buffer.alloc(0)).equals(want.bytes ?? Buffer.alloc(0));
    return false;
  });
}

/**
 * A template's usages without those the key type cannot have: applications ask them generously
 * (pkcs11-tool asks CKA_ENCRYPT of an HMAC key and CKA_DERIVE of an EC public key), PKCS #11 modules
 * ignore them, and the member refuses them; so the door leaves them unset.
 */
function withoutImpossibleUsages<T extends Record<string, unknown>>(attributes: T, cls: KeyClass, type: KeyType): T {
  for (const usage of USAGES) if (attributes[usage] === true && !usageAllowed(cls, type, usage)) delete attributes[usage];
  return attributes;
}
