/**
 * One HSM member behind one door: `handle(request) → response`. Whatever arrives is checked
 * against the protocol's schema, the session is resolved, the role matrix is applied, and the
 * operation runs; management operations are written to the audit log whether they succeed or are
 * refused. A refusal never changes state, because operations commit only after every check.
 *
 * @example
 * ```ts
 * const member = await createMember({ profile: 'cloudhsm' });
 * await member.handle({ op: 'activateCluster', password: 'admin-password' });
 * const login = await member.handle({ op: 'login', username: 'admin', password: 'admin-password' });
 * ```
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { checkRole, type Caller } from './access.js';
import { HsmError, checkPositiveIntegers, type WireError } from './errors.js';
import { PROFILE_NAMES, checkProfileMode, getProfile, type ProfileName } from './profiles.js';
import { APPLIANCE_USERNAME, PRECO_INITIAL_PASSWORD, PRECO_USERNAME, requestSchemas, type Op, type RequestOf, type Response, type Results, type UserRole } from './protocol.js';
import { OPERATIONS, type AuditSpec, type OperationFacts } from './operations.js';
import { MEMBER_MODES, MemberState, type BackupKeys, type Handler } from './state.js';
import { readHotRequest } from './hot-requests.js';
import { AuditLog } from './audit.js';
import { Masking } from './masking.js';
import { MemberStore, type CommitScope, type LoadedState } from './store.js';
import { PROCESS_MANUFACTURER_KEY } from './ops/backup-ops.js';
import { hashPassword, normaliseUsername } from './users.js';
import { defaultQuorumSettings } from './quorum.js';
import * as userOps from './ops/user-ops.js';
import * as keyOps from './ops/key-ops.js';
import * as cryptoOps from './ops/crypto-ops.js';
import * as syncOps from './ops/sync-ops.js';
import * as clusterOps from './ops/cluster-ops.js';
import * as backupOps from './ops/backup-ops.js';
import * as quorumOps from './ops/quorum-ops.js';
import * as mtlsOps from './ops/mtls-ops.js';
import { detachBytes } from './detach.js';
import { answersInLaterTurns, inTurns } from './mechanisms/pool.js';

export interface MemberOptions {
  /** `cloudhsm` (default): CloudHSM's limits and key types. `unlimited`: the same rules without limits. */
  profile?: ProfileName;
  /** This member's number in its cluster, 0–31 (makes key handles cluster-unique). Default 0. */
  memberIndex?: number;
  /** Shown by getHsmInfo. Default: random. */
  serialNumber?: string;
  /**
   * A password for the appliance user (`app_user`), for tools that synchronise members. Without
   * it the appliance user exists but nobody can log in as it.
   */
  appliancePassword?: string;
  /** log2 of scrypt's N for password hashes, 10–20. Default 15 (32 MiB per hash); below 15 only for tests. */
  passwordCost?: number;
  /**
   * A folder that makes the member durable (see store.ts): its token keys, users, cluster
   * settings and audit log survive restarts, and a change is on disk before it is acknowledged.
   * Without it the member lives in memory only.
   */
  dataDir?: string;
  /**
   * Protects the storage key of `dataDir` (default: `STRONGROOM_MASTER_PASSPHRASE` from the
   * environment, if set). Without one, the storage key is kept in a file only its owner can read.
   */
  passphrase?: string;
  /** `fips` (default) or `non-fips`, as CloudHSM's cluster modes: backups restore only into the same mode. */
  mode?: 'fips' | 'non-fips';
  /**
   * MKBK: the emulated manufacturer's backup key, 32 bytes: the installation's "hardware" secret.
   * Default: one made at random for this process (so only this process's members share it).
   */
  manufacturerKey?: Uint8Array;
  /** AKBK: the installation's service key, 32 bytes. Without one the member makes and opens no backups. */
  serviceKey?: Uint8Array;
  /**
   * How many requests the member works on at once. One more is answered MEMBER_BUSY at once
   * (CloudHSM's 0xBB), and clients retry with backoff. Default 1024.
   */
  queueLimit?: number;
}

/** An HSM member. `handle` is the only way in; nothing else reaches its keys. */
export interface Member {
  /** Answers one request. Never throws: a refusal is `{ ok: false, error }`. */
  handle(request: unknown): Promise<Response>;
  /**
   * How many answers the members of this thread have given in a later turn of the event loop than
   * their request's (a signature from the thread pool or an RSA thread, or one made on the
   * member's thread and given in the next turn), counted just before each is given. The
   * in-process transport reads it from the member, not from a module of its own: a process may
   * load hsm-core twice (a test runner's CommonJS graph beside the member's ES module one), and
   * then only the member's count moves.
   */
  answersInLaterTurns(): number;
  /**
   * Ends every session and forgets every key (a durable member keeps its token keys on disk).
   * Later requests answer MEMBER_CLOSED. Resolves once the data folder is closed.
   */
  close(): Promise<void>;
}

/** Every operation's implementation (its facts, audit record and persistence: operations.ts). */
const HANDLERS: { readonly [O in Op]: Handler<O> } = {
  getHsmInfo: userOps.getHsmInfo,
  activateCluster: userOps.activateCluster,
  login: userOps.login,
  getMfaToken: userOps.getMfaToken,
  changeMfa: quorumOps.changeMfa,
  registerQuorumKey: quorumOps.registerQuorumKey,
  generateQuorumToken: quorumOps.generateQuorumToken,
  listQuorumTokens: quorumOps.listQuorumTokens,
  deleteQuorumTokens: quorumOps.deleteQuorumTokens,
  getQuorumSettings: quorumOps.getQuorumSettings,
  setQuorumValue: quorumOps.setQuorumValue,
  setQuorumTimeouts: quorumOps.setQuorumTimeouts,
  registerTrustAnchor: mtlsOps.registerTrustAnchor,
  deregisterTrustAnchor: mtlsOps.deregisterTrustAnchor,
  getMtlsSettings: mtlsOps.getMtlsSettings,
  setMtlsEnforcement: mtlsOps.setMtlsEnforcement,
  logout: userOps.logout,
  closeSession: userOps.closeSession,
  listUsers: userOps.listUsers,
  createUser: userOps.createUser,
  deleteUser: userOps.deleteUser,
  changePassword: userOps.changePassword,
  getAuditLog: userOps.getAuditLog,

  generateKey: keyOps.generateKey,
  generateKeyPair: keyOps.generateKeyPair,
  importKey: keyOps.importKey,
  copyKey: keyOps.copyKey,
  exportKey: keyOps.exportKey,
  exportEncryptedKey: keyOps.exportEncryptedKey,
  importEncryptedKey: keyOps.importEncryptedKey,
  getAttributes: keyOps.getAttributes,
  setAttributes: keyOps.setAttributes,
  findKeys: keyOps.findKeys,
  deleteKey: keyOps.deleteKey,
  shareKey: keyOps.shareKey,
  unshareKey: keyOps.unshareKey,
  wrapKey: keyOps.wrapKey,
  unwrapKey: keyOps.unwrapKey,
  deriveKey: keyOps.deriveKey,

  encrypt: cryptoOps.encrypt,
  decrypt: cryptoOps.decrypt,
  sign: cryptoOps.sign,
  verify: cryptoOps.verify,
  digest: cryptoOps.digest,
  generateRandom: cryptoOps.generateRandom,
  deriveBits: cryptoOps.deriveBits,

  extractMaskedObject: syncOps.extractMaskedObject,
  insertMaskedObject: syncOps.insertMaskedObject,
  getSyncStatus: syncOps.getSyncStatus,
  extractMaskedUser: clusterOps.extractMaskedUser,
  insertMaskedUser: clusterOps.insertMaskedUser,
  extractMaskedSettings: clusterOps.extractMaskedSettings,
  insertMaskedSettings: clusterOps.insertMaskedSettings,
  setClusterAddresses: clusterOps.setClusterAddresses,
  createBackup: backupOps.createBackup,
  restoreBackup: backupOps.restoreBackup,
};

/** "field.path: problem" from the first schema issue. */
function describeSchemaError(op: string, error: z.ZodError, raw: unknown): string {
  const issue = error.issues[0]!;
  const path = [op, ...issue.path.map(String)].join('.');
  if (issue.code === 'unrecognized_keys') return `${path}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
  if (issue.code === 'invalid_union' && 'note' in issue && issue.note === 'No matching discriminator') {
    return `${path}: unknown name ${JSON.stringify(valueAt(raw, issue.path))}`;
  }
  const value = valueAt(raw, issue.path);
  if (value === undefined && (issue.code === 'invalid_type' || issue.code === 'custom')) return `${path}: required`;
  const message = issue.message.replace(/^Invalid input: /, '');
  if (issue.code === 'custom') return `${path}: ${message}, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`;
  return `${path}: ${message}`;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const p of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

function validUsername(name: string): boolean {
  try {
    normaliseUsername(name);
    return true;
  } catch {
    return false;
  }
}

/** What the audit log records for a name that is no user's: a marker and its length, never the text. */
function unknownUserMarker(typed: string): string {
  return `(no such user: ${typed.length} characters)`;
}

/** The answer for a refusal: one line, whatever the underlying library wrote. */
function toWire(e: unknown): WireError {
  const wire: WireError =
    e instanceof HsmError
      ? e.toWire()
      : { code: 'INTERNAL_ERROR', message: `the member failed unexpectedly: ${e instanceof Error ? e.message : String(e)}` };
  return { code: wire.code, message: wire.message.replace(/\s*\n\s*/g, ' ') };
}

function backupKeysOf(options: MemberOptions): BackupKeys {
  const mode = options.mode ?? 'fips';
  if (!MEMBER_MODES.includes(mode)) throw new HsmError('BAD_REQUEST', `mode: expected fips or non-fips, got ${JSON.stringify(mode)}`);
  for (const [name, key] of [['manufacturerKey', options.manufacturerKey], ['serviceKey', options.serviceKey]] as const) {
    if (key !== undefined && (!(key instanceof Uint8Array) || key.length !== 32)) throw new HsmError('BAD_REQUEST', `${name}: 32 bytes`);
  }
  return {
    mode,
    manufacturerKey: options.manufacturerKey ? Buffer.from(options.manufacturerKey) : PROCESS_MANUFACTURER_KEY,
    serviceKey: options.serviceKey ? Buffer.from(options.serviceKey) : null,
  };
}

const SYSTEM = { sessionHandle: null, user: null, userType: null, targetUser: null, keyHandles: [], response: 'SUCCESS' } as const;

/** A never-activated member: the unactivated admin `admin` (password `password`) and `app_user`. */
async function initialise(options: MemberOptions, profileName: ProfileName, cost: number): Promise<MemberState> {
  const m = new MemberState(
    getProfile(profileName),
    options.memberIndex ?? 0,
    options.serialNumber ?? `SR-${randomBytes(6).toString('hex').toUpperCase()}`,
    cost,
  );
  m.audit.append({ ...SYSTEM, keyHandles: [], opcode: 'CN_INIT_TOKEN' });
  m.users.set(PRECO_USERNAME, {
    username: PRECO_USERNAME,
    role: 'unactivated-admin',
    password: await hashPassword(PRECO_INITIAL_PASSWORD, cost),
    failedLogins: 0,
  });
  m.audit.append({ ...SYSTEM, keyHandles: [], opcode: 'CN_GEN_PSWD_ENC_KEY' });
  m.users.set(APPLIANCE_USERNAME, {
    username: APPLIANCE_USERNAME,
    role: 'appliance',
    password: await hashPassword(options.appliancePassword ?? randomBytes(32).toString('base64'), cost),
    failedLogins: 0,
  });
  m.audit.append({ ...SYSTEM, keyHandles: [], opcode: 'CN_CREATE_APPLIANCE_USER', targetUser: APPLIANCE_USERNAME, userType: 'appliance' });
  m.audit.append({ ...SYSTEM, keyHandles: [], opcode: 'CN_INIT_DONE' });
  return m;
}

/** A member as its data folder left it; one more start on its reboot counter. */
async function restore(loaded: LoadedState, options: MemberOptions, profileName: ProfileName, cost: number): Promise<MemberState> {
  const { meta } = loaded;
  const where = `data folder ${options.dataDir}`;
  if (options.memberIndex !== undefined && options.memberIndex !== meta.memberIndex) {
    throw new HsmError('BAD_REQUEST', `${where} holds member ${meta.memberIndex}, not member ${options.memberIndex}; nothing was changed`);
  }
  if (options.profile !== undefined && meta.profile !== profileName) {
    throw new HsmError('BAD_REQUEST', `${where} holds a ${meta.profile} member, not ${profileName}; nothing was changed`);
  }
  const m = new MemberState(getProfile(meta.profile as ProfileName), meta.memberIndex, meta.serialNumber, cost);
  m.lifecycle = meta.lifecycle;
  m.clusterId = meta.clusterId;
  m.addresses = [...meta.addresses];
  m.lastChange = meta.lastChange ?? null;
  if (meta.quorum) m.quorum = { ...structuredClone(meta.quorum), values: { ...defaultQuorumSettings().values, ...meta.quorum.values } };
  m.quorumGen = meta.quorumGen ?? 0;
  m.clock = meta.clock ?? 0;
  for (const [handle, gen] of loaded.deletedKeys) m.keyTombstones.set(handle, gen);
  for (const [name, gen] of loaded.deletedUsers) m.userTombstones.set(name, gen);
  for (const u of loaded.users) m.users.set(u.username, { ...u });
  // A piece a turn on a member that shares its thread (100,000 keys held it 45 ms); nothing sees
  // this member before it is made.
  for await (const piece of inTurns(loaded.keys)) {
    for (const k of piece) {
      m.keys.add(k);
      m.observe(k.gen);
    }
  }
  for (const u of loaded.users) m.observe(u.gen ?? 0);
  m.keys.counter = meta.keyCounter;
  if (loaded.masking) m.masking = new Masking(loaded.masking);
  m.audit = new AuditLog(meta.rebootCounter + 1, loaded.audit);
  const appliance = m.users.get(APPLIANCE_USERNAME);
  if (appliance && options.appliancePassword !== undefined) appliance.password = await hashPassword(options.appliancePassword, cost);
  return m;
}

/**
 * Creates a member: a new, never-activated one, or, with a `dataDir` that holds one, the member
 * as it was when it stopped.
 */
export async function createMember(options: MemberOptions = {}): Promise<Member> {
  const profileName = options.profile ?? 'cloudhsm';
  if (!PROFILE_NAMES.includes(profileName)) {
    throw new HsmError('BAD_REQUEST', `profile: expected ${PROFILE_NAMES.join(' or ')}, got ${JSON.stringify(profileName)}`);
  }
  if (options.mode !== undefined && MEMBER_MODES.includes(options.mode)) checkProfileMode(getProfile(profileName), options.mode);
  const cost = options.passwordCost ?? 15;
  if (!Number.isInteger(cost) || cost < 10 || cost > 20) throw new HsmError('BAD_REQUEST', `passwordCost: 10–20, got ${cost}`);
  // Every option is checked before the folder is opened: a refused option leaves it as it was.
  const queueLimit = options.queueLimit ?? 1024;
  checkPositiveIntegers({ queueLimit });
  const backupKeys = backupKeysOf(options);
  const store = options.dataDir !== undefined ? await MemberStore.open(options.dataDir, options.passphrase ?? process.env.STRONGROOM_MASTER_PASSPHRASE) : null;
  let m: MemberState;
  try {
    const loaded = store ? await store.load() : null;
    m = loaded ? await restore(loaded, options, profileName, cost) : await initialise(options, profileName, cost);
    // A new member writes everything; a restarted one, its own record (meta, with the reboot
    // counter) and its users: its keys and masking key are in the folder as they were read.
    if (store) {
      await store.commit(m, loaded ? { keys: [], masking: false } : { keys: 'all', masking: true });
      // A new member's first records are in its folder now: from here its log keeps only new ones in memory.
      if (!loaded) m.audit = new AuditLog(m.audit.rebootCounter, store.auditArchive());
    }
  } catch (e) {
    await store?.close();
    throw e;
  }
  let closed = false;
  m.queueLimit = queueLimit;
  m.backupKeys = backupKeys;
  if (store) m.prepareKeys = (keys) => store.sealAhead(keys);
  let inFlight = 0;

  /**
   * The name of an existing user, or null. The audit log never records what was typed for a user
   * that does not exist: people type passwords into username fields.
   */
  function knownUsername(typed: string): string | null {
    if (!validUsername(typed)) return null;
    const name = normaliseUsername(typed);
    return m.users.has(name) ? name : null;
  }

  function resolveCaller(req: { session?: string | undefined }): Caller {
    if (req.session === undefined) return null;
    const session = m.sessions.get(req.session);
    if (!session) throw new HsmError('NOT_LOGGED_IN', 'session: not logged in (the session ended, or it never existed on this member)');
    return session;
  }

  function actorOf(op: Op, req: RequestOf<Op>, caller: Caller): { user: string | null; userType: UserRole | null } {
    if (caller) return { user: caller.username, userType: caller.role };
    if (op === 'login' || op === 'getMfaToken') {
      const attempted = (req as RequestOf<'login'>).username;
      const name = knownUsername(attempted);
      return name === null ? { user: unknownUserMarker(attempted), userType: null } : { user: name, userType: m.users.get(name)!.role };
    }
    if (op === 'activateCluster') return { user: PRECO_USERNAME, userType: 'unactivated-admin' };
    return { user: null, userType: null };
  }

  /**
   * An operation that neither changes nor audits anything (sign, encrypt, digest…) is its
   * handler's answer as it is, with no async wrapper around it (one promise less per call);
   * `handle` awaits it, and catches a refusal thrown at once. The rest: runAudited.
   */
  function run<O extends Op>(op: O, req: RequestOf<O>, caller: Caller): Results[O] | Promise<Results[O]> {
    const facts = OPERATIONS[op] as OperationFacts<O>;
    const handler = HANDLERS[op] as Handler<O>;
    if (facts.durable === false) {
      checkRole(op, caller);
      return handler(m, caller, req);
    }
    // Whatever it changes is in the sync summary: the one kept goes when the operation begins, and
    // again when it ends (one made while it awaited may not show all it did).
    m.syncSummary = undefined;
    return runAudited(op, req, caller, facts, handler).finally(() => {
      m.syncSummary = undefined;
    });
  }

  async function runAudited<O extends Op>(op: O, req: RequestOf<O>, caller: Caller, facts: Extract<OperationFacts<O>, { durable: 'change' | 'audit' }>, handler: Handler<O>): Promise<Results[O]> {
    const audit = facts.audit;
    const actor = actorOf(op, req as RequestOf<Op>, caller);
    // The user an operation is about, as it is before the operation (a deleted user was known);
    // a user being created is not known yet, but a valid name is what it will be called.
    let target: string | null = null;
    if (audit.target) {
      const named = audit.target(req);
      target = knownUsername(named) ?? (op === 'createUser' && validUsername(named) ? normaliseUsername(named) : unknownUserMarker(named));
    }
    const record = (response: string, result: Results[O] | undefined, session: Caller) => {
      m.audit.append({
        opcode: typeof audit.opcode === 'string' ? audit.opcode : audit.opcode(req),
        sessionHandle: session?.handle ?? null,
        ...actor,
        targetUser: target,
        keyHandles: (audit.keys?.(req, result) ?? []).filter((h): h is number => h !== undefined),
        response,
      });
    };
    let result: Results[O];
    try {
      checkRole(op, caller);
      result = await handler(m, caller, req);
    } catch (e) {
      record(e instanceof HsmError ? e.code : 'INTERNAL_ERROR', undefined, caller);
      // A refusal changes nothing but the audit log (and a failed login's count): keep those too.
      await persist(op, req, undefined, audit).catch(() => undefined);
      throw e;
    }
    const session = op === 'login' ? (m.sessions.get((result as Results['login']).session) ?? null) : caller;
    record('SUCCESS', result, session);
    if (facts.durable === 'change') m.lastChange = new Date().toISOString();
    try {
      await persist(op, req, result, audit);
    } catch (e) {
      throw new HsmError('INTERNAL_ERROR', `the change was made in memory but could not be written to the data folder (${e instanceof Error ? e.message : String(e)}); the member's next change writes it again, and until then a restart loses it: check the folder's disk`);
    }
    return result;
  }

  /** Makes what an audited operation changed durable before it is acknowledged. */
  async function persist<O extends Op>(op: O, req: RequestOf<O>, result: Results[O] | undefined, audit: AuditSpec<O>): Promise<void> {
    if (!store) return;
    const scope: CommitScope = {
      // A user's deletion drops the user from every key's shares; a restore replaces every key.
      keys:
        op === 'deleteUser' || op === 'restoreBackup' || (op === 'insertMaskedUser' && (result as Results['insertMaskedUser'] | undefined)?.deleted)
          ? 'all'
          : (audit.keys?.(req, result) ?? []).filter((h): h is number => h !== undefined),
      masking: op === 'activateCluster' || op === 'restoreBackup',
    };
    await store.commit(m, scope);
  }

  /** Reads a raw request and runs it: its answer, or the refusal thrown. */
  function start(raw: unknown): Results[Op] | Promise<Results[Op]> {
    if (closed) throw new HsmError('MEMBER_CLOSED', 'this member has been closed');
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new HsmError('BAD_REQUEST', 'request: expected an object with an op');
    }
    const op = (raw as { op?: unknown }).op;
    if (typeof op !== 'string' || !Object.hasOwn(HANDLERS, op)) {
      throw new HsmError('UNKNOWN_OPERATION', `op: unknown operation ${JSON.stringify(op)}`);
    }
    let parsed: ReturnType<(typeof requestSchemas)[Op]['safeParse']>;
    try {
      const hot = readHotRequest(op, raw);
      parsed = hot ? ({ success: true, data: hot } as typeof parsed) : requestSchemas[op as Op].safeParse(raw);
    } catch (e) {
      // A getter that throws, a proxy: whatever it was, it is not a request.
      throw new HsmError('BAD_REQUEST', `${op}: the request could not be read (${e instanceof Error ? e.message.split('\n')[0] : 'it threw'}); send plain data`);
    }
    if (!parsed.success) throw new HsmError('BAD_REQUEST', describeSchemaError(op, parsed.error, raw));
    const req = parsed.data as RequestOf<Op>;
    return run(op as Op, req, resolveCaller(req as { session?: string }));
  }

  return {
    answersInLaterTurns,
    handle(raw: unknown): Promise<Response> {
      if (inFlight >= queueLimit) {
        return Promise.resolve({ ok: false, error: { code: 'MEMBER_BUSY', message: `the member is working on ${inFlight} requests, its limit; retry with backoff or add members (0xBB)` } });
      }
      inFlight += 1;
      // Not an async function: every request passes here, and an async function's promises and
      // continuation cost about 300 bytes a request (heap sampling, a raw digest).
      let answer: unknown;
      try {
        answer = start(raw);
      } catch (e) {
        inFlight -= 1;
        return Promise.resolve({ ok: false, error: toWire(e) });
      }
      return Promise.resolve(answer).then(
        (result) => {
          inFlight -= 1;
          return { ok: true, result: detachBytes(result) } as Response;
        },
        (e: unknown) => {
          inFlight -= 1;
          return { ok: false, error: toWire(e) };
        },
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      m.sessions.clear();
      m.keys.clear();
      await store?.close();
    },
  };
}
