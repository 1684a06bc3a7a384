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
import { HsmError, USAGES, usageAllowed, type CipherMechanism, type HashName, type KeyClass, type KeyInfo, type KeyType, type SignMechanism } from '../hsm-core/index.js';
import type { Attribute, ByteArray, Mechanism, Ulong, Value } from './codec.js';
import { CKA, CKF, CKK, CKM, CKO, CKR, CKS, CKU } from './constants.js';
import { CURVE_BY_PARAMS, Ckr, EC_PARAMS, getAttributes, matches, rvOf, templateAttributes } from './objects.js';
import { FIRST_SIDE_HANDLE, SideStore, completeObject, type SideObject } from './side-store.js';
import { attributeClass } from './attributes.js';
import { HASH_OF_MECHANISM, MECHANISMS, SINGLE_PART, cipherMechanism, deriveMechanism, prehashedInput, signMechanism, wrapMechanism } from './mechanisms.js';
import { importOf, keyKind } from './keys.js';

/** What the door needs of a cluster: a login (LocalCluster, RemoteCluster, or a test's own). */
export interface Pkcs11Cluster {
  login(username: string, password: string, options?: LoginOptions): Promise<ClusterSession>;
}

export const SLOT_ID = 1n;

const pad = (text: string, size: number) => Buffer.from(text.padEnd(size, ' ').slice(0, size), 'latin1');
const VERSION = { major: 2, minor: 40 };
const FIRMWARE = { major: 1, minor: 0 };

type OpKind = 'sign' | 'verify' | 'digest' | 'find' | 'encrypt' | 'decrypt';

interface Operation {
  kind: OpKind;
  /** The PKCS #11 mechanism (CloudHSM runs some in one part only). */
  type?: number;
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

/**
 * The most sessions one connection may have open at once, unless the door says otherwise: each
 * holds the state of its operations and searches, so an application that opens sessions in a loop
 * would otherwise grow the door's memory without bound.
 */
export const DEFAULT_MAX_SESSIONS = 1024;

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
    /** The most sessions this connection may have open at once (C_OpenSession is then refused CKR_SESSION_COUNT). */
    private readonly maxSessions = DEFAULT_MAX_SESSIONS,
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
          BigInt(this.maxSessions), // max sessions, of which any may be read/write
          BigInt(this.#sessions.size),
          BigInt(this.maxSessions),
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
        if (this.#sessions.size >= this.maxSessions) throw new Ckr(CKR.SESSION_COUNT, `this connection has ${this.maxSessions} sessions open, the door's limit; close one first`);
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
        const wanted = a[2] as { type: number; length: number }[];
        let value: Buffer | undefined;
        if (key.attributes.class === 'secret-key' && !key.attributes.sensitive && key.attributes.extractable && wanted.some((w) => w.type === CKA.VALUE)) {
          // PKCS #11's CKA_VALUE of a key that is neither sensitive nor unextractable: the member's audited export.
          // A user the key is shared with is not its owner: for them the value stays sensitive.
          value = await this.#hsmSession()
            .send({ op: 'exportKey', handle: key.handle, format: 'raw' })
            .then((r) => Buffer.from(r.keyData as Uint8Array))
            .catch((e: unknown) => {
              if (e instanceof HsmError && (e.code === 'NOT_KEY_OWNER' || e.code === 'KEY_NOT_EXTRACTABLE' || e.code === 'QUORUM_APPROVAL_REQUIRED')) return undefined;
              throw e;
            });
        }
        const { attributes, rv } = getAttributes(key, wanted, value);
        return [attributes, BigInt(rv)];
      }
      case 'C_CreateObject': {
        const s = this.#session(a[0] as Ulong);
        const hsm = this.#hsmSession();
        const { attributes, facts } = templateAttributes(a[1] as Attribute[]);
        this.#writable(s, attributes.token === true);
        if (facts.get(CKA.CLASS) === CKO.SECRET_KEY || facts.get(CKA.CLASS) === CKO.PUBLIC_KEY || facts.get(CKA.CLASS) === CKO.PRIVATE_KEY) {
          // Key import: the material goes to the HSM, which makes the key (a session key unless CKA_TOKEN, as generated ones).
          const material = importOf(facts);
          const made = await hsm.send({ op: 'importKey', ...material, attributes: withoutImpossibleUsages({ token: false, ...attributes }, material.keyClass, material.keyType) } as never) as { handle: number };
          return [BigInt(made.handle)];
        }
        const made = completeObject(a[1] as Attribute[]);
        const handle = this.#store!.nextHandle(this.#sessionObjects.map((o) => o.handle));
        const object = { handle, token: made.token, attributes: made.attributes };
        if (made.token) this.#store!.add(object);
        else this.#sessionObjects.push(object);
        return [BigInt(handle)];
      }
      case 'C_CopyObject': {
        const s = this.#session(a[0] as Ulong);
        const template = a[2] as Attribute[];
        if (!s.rw) {
          const token = templateAttributes(template).attributes.token;
          this.#writable(s, token === undefined ? await this.#isTokenObject(a[1] as Ulong) : token === true);
        }
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
      case 'C_WrapKey':
        return this.#wrap(a[0] as Ulong, a[1] as Mechanism, a[2] as Ulong, a[3] as Ulong, a[4] as number);
      case 'C_UnwrapKey':
        return this.#unwrap(a[0] as Ulong, a[1] as Mechanism, a[2] as Ulong, (a[3] as ByteArray).data ?? Buffer.alloc(0), a[4] as Attribute[]);
      case 'C_DeriveKey':
        return this.#derive(a[0] as Ulong, a[1] as Mechanism, a[2] as Ulong, a[3] as Attribute[]);
      case 'C_DestroyObject': {
        const s = this.#session(a[0] as Ulong);
        if (!s.rw) this.#writable(s, await this.#isTokenObject(a[1] as Ulong));
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
        const s = this.#session(a[0] as Ulong);
        if (!s.rw) this.#writable(s, (await this.#isTokenObject(a[1] as Ulong)) || templateAttributes(a[2] as Attribute[]).attributes.token === true);
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
        s.ops.set(kind, { kind, type: (a[1] as Mechanism).type, key, mechanism, chunks: [] });
        return [];
      }
      case 'C_Sign':
        return this.#sign(a[0] as Ulong, [(a[1] as ByteArray).data ?? Buffer.alloc(0)], a[2] as number);
      case 'C_SignUpdate':
        this.#multiPart(a[0] as Ulong, 'sign').chunks.push((a[1] as ByteArray).data ?? Buffer.alloc(0));
        return [];
      case 'C_SignFinal':
        return this.#sign(a[0] as Ulong, null, a[1] as number);
      case 'C_Verify':
        return this.#verify(a[0] as Ulong, [(a[1] as ByteArray).data ?? Buffer.alloc(0)], (a[2] as ByteArray).data ?? Buffer.alloc(0));
      case 'C_VerifyUpdate':
        this.#multiPart(a[0] as Ulong, 'verify').chunks.push((a[1] as ByteArray).data ?? Buffer.alloc(0));
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
        s.ops.set(kind, { kind, type: (a[1] as Mechanism).type, key, cipher, chunks: [] });
        return [];
      }
      case 'C_Encrypt':
      case 'C_Decrypt':
        return this.#crypt(a[0] as Ulong, name === 'C_Encrypt' ? 'encrypt' : 'decrypt', (a[1] as ByteArray).data ?? Buffer.alloc(0), a[2] as number);
      case 'C_EncryptUpdate':
      case 'C_DecryptUpdate': {
        // Data is gathered and the result comes at the final call (an empty valid answer now).
        this.#multiPart(a[0] as Ulong, name === 'C_EncryptUpdate' ? 'encrypt' : 'decrypt').chunks.push((a[1] as ByteArray).data ?? Buffer.alloc(0));
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

  /** An operation continued by C_*Update: CloudHSM refuses it for single-part mechanisms, and the operation ends. */
  #multiPart(handle: Ulong, kind: OpKind): Operation {
    const op = this.#op(handle, kind);
    if (op.type !== undefined && SINGLE_PART.has(op.type)) {
      this.#session(handle).ops.delete(kind);
      throw new Ckr(CKR.FUNCTION_NOT_SUPPORTED, `mechanism 0x${op.type.toString(16)} runs in one part (C_${kind === 'sign' ? 'Sign' : kind === 'verify' ? 'Verify' : kind === 'encrypt' ? 'Encrypt' : 'Decrypt'}), as CloudHSM's library runs it`);
    }
    return op;
  }

  /** A read-only session neither makes, changes nor destroys token objects (PKCS #11's CKR_SESSION_READ_ONLY). */
  #writable(s: P11Session, token: boolean): void {
    if (token && !s.rw) throw new Ckr(CKR.SESSION_READ_ONLY, 'a read-only session cannot make, change or destroy token objects; open the session with CKF_RW_SESSION');
  }

  /** Whether an object is a token object: a side object's flag, or the HSM's word for a key. */
  async #isTokenObject(handle: Ulong): Promise<boolean> {
    const side = this.#sideObject(handle);
    return side ? side.token : !(await this.#key(handle)).sessionKey;
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
      // A CKA_LABEL in the template goes to the member, which finds keys by label from an index;
      // every attribute of the template is still matched here, byte for byte. Left to the match
      // here: a label longer than a member's 127 characters (it matches no key), and one with
      // U+FFFD, which is also what a member's label with a lone surrogate reads as in UTF-8, so
      // the member's exact comparison would miss it.
      const value = template.find((t) => t.type === CKA.LABEL)?.value;
      const label = value && 'bytes' in value ? (value.bytes ?? Buffer.alloc(0)).toString('utf8') : undefined;
      const filter = label !== undefined && label.length <= 127 && !label.includes('\uFFFD') ? { filter: { attributes: { label } } } : {};
      for (let token: string | null | undefined; token !== null; ) {
        const page = await this.#hsm.send({ op: 'findKeys', ...filter, maxItems: 10_000, ...(token ? { startingToken: token } : {}) });
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

  async #wrap(handle: Ulong, mechanism: Mechanism, wrappingKey: Ulong, key: Ulong, room: number): Promise<Value[]> {
    this.#session(handle);
    const hsm = this.#hsmSession();
    const wrapping = wrapMechanism(mechanism);
    const r = await hsm.send({ op: 'wrapKey', mechanism: wrapping, wrappingHandle: handleOf(wrappingKey, CKR.WRAPPING_KEY_HANDLE_INVALID), payloadHandle: handleOf(key, CKR.KEY_HANDLE_INVALID) });
    const wrapped = Buffer.from(r.wrapped);
    // A size query gets the length (each wrap is audited, and AES-GCM's IV is new each time; the length is not).
    return [room === 0 || room < wrapped.length ? { data: null, length: wrapped.length } : { data: wrapped, length: wrapped.length }];
  }

  async #unwrap(handle: Ulong, mechanism: Mechanism, unwrappingKey: Ulong, wrapped: Buffer, template: Attribute[]): Promise<Value[]> {
    const s = this.#session(handle);
    const hsm = this.#hsmSession();
    const unwrapping = wrapMechanism(mechanism);
    const { attributes, facts } = templateAttributes(template);
    this.#writable(s, attributes.token === true);
    const { keyClass, keyType } = keyKind(facts, 'C_UnwrapKey');
    if (keyClass === 'public-key') throw new Ckr(CKR.TEMPLATE_INCONSISTENT, 'C_UnwrapKey makes secret and private keys');
    const r = await hsm.send({
      op: 'unwrapKey',
      mechanism: unwrapping,
      unwrappingHandle: handleOf(unwrappingKey, CKR.UNWRAPPING_KEY_HANDLE_INVALID),
      wrapped,
      keyClass,
      keyType,
      attributes: withoutImpossibleUsages({ token: false, ...attributes }, keyClass, keyType),
    });
    return [BigInt(r.handle)];
  }

  async #derive(handle: Ulong, mechanism: Mechanism, baseKey: Ulong, template: Attribute[]): Promise<Value[]> {
    const s = this.#session(handle);
    const hsm = this.#hsmSession();
    const { attributes, facts } = templateAttributes(template);
    this.#writable(s, attributes.token === true);
    const base = await this.#key(baseKey);
    const curve = base.attributes.curve;
    if (base.attributes['key-type'] !== 'ec' || !curve) throw new Ckr(CKR.KEY_TYPE_INCONSISTENT, 'CKM_ECDH1_DERIVE derives from an EC private key');
    const derive = deriveMechanism(mechanism, Buffer.from(EC_PARAMS[curve]!, 'hex'));
    const { keyClass, keyType } = keyKind(new Map([[CKA.CLASS, CKO.SECRET_KEY], ...facts]), 'C_DeriveKey');
    if (keyClass !== 'secret-key') throw new Ckr(CKR.TEMPLATE_INCONSISTENT, 'C_DeriveKey makes a secret key');
    const length = facts.get(CKA.VALUE_LEN);
    if (typeof length !== 'number') throw new Ckr(CKR.TEMPLATE_INCOMPLETE, 'C_DeriveKey: CKA_VALUE_LEN is required');
    const r = await hsm.send({ op: 'deriveKey', mechanism: derive, baseHandle: base.handle, keyType: keyType as 'aes' | 'generic-secret', lengthBytes: length, attributes: withoutImpossibleUsages({ token: false, ...attributes }, 'secret-key', keyType) });
    return [BigInt(r.handle)];
  }

  async #generateKey(handle: Ulong, mechanism: Mechanism, template: Attribute[]): Promise<Value[]> {
    const s = this.#session(handle);
    const hsm = this.#hsmSession();
    const { attributes, facts } = templateAttributes(template);
    this.#writable(s, attributes.token === true);
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
    this.#writable(this.#session(handle), pub.attributes.token === true || priv.attributes.token === true);
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
const CHANGES: ReadonlySet<string> = new Set(['C_SetAttributeValue', 'C_DestroyObject', 'C_Logout', 'C_Login', 'C_CloseAllSessions', 'C_Finalize', 'C_CloseSession']);

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

/** A handle the member can take (a number it could have made), else the call's own CK_RV for a bad handle. */
function handleOf(handle: Ulong, rv: number): number {
  if (handle > BigInt(Number.MAX_SAFE_INTEGER)) throw new Ckr(rv);
  return Number(handle);
}
