/**
 * One user's session across the cluster (the channel under `HsmSession`): a session token per
 * member, logged in on demand (with MFA when the user has it); requests routed to the member a
 * session key or a quorum token binds them to, or balanced; and what a request changed brought
 * to the other members — new and changed token keys as masked objects, users and settings — as
 * the operations table (hsm-core/operations.ts) says of each operation.
 *
 * - Token keys are made on one member and copied to every other as masked objects, keeping their
 *   handle; a new token key must be on at least 2 members before use (`keyAvailabilityCheck`).
 * - Session keys live on the member that made them; requests that use them go there.
 * - Changes to users, token keys and cluster settings are made on one member (which checks them
 *   and their approval: a request with a quorum token goes to the member of its first segment),
 *   then travel to the others as sealed versions (masked objects, users, settings, tombstones),
 *   which each member merges by generation (hsm-core's merge.ts).
 *
 * @module
 */
import { HsmError, OPERATIONS, handlesOf, keyRef, withField, type ClusterRule, type Response, type Results, type UserRole, type WireError } from '../hsm-core/client.js';
import { retriesBusy, waitToRetry, type RetryMode } from './busy.js';
import { resultOf, type MemberLink } from './member-link.js';

/**
 * Signs MFA login tokens: given one unsigned token (a SHA-256 digest) per member, returns one
 * signature per token, PKCS #1 v1.5 with the user's registered RSA-2048 key, in the same order.
 */
export type MfaSigner = (unsignedTokens: Uint8Array[]) => Promise<Uint8Array[]>;

export interface LoginOptions {
  role?: UserRole;
  /** For a user with MFA (token-sign): signs each member's login token. */
  mfa?: MfaSigner;
}

const AVAILABILITY_MESSAGE = (ref: string) =>
  `Key ${ref} does not meet the availability requirements - The key must be available on at least 2 HSMs before being used.`;

/** How the cluster runs an operation (operations.ts); an operation no member knows goes to one member, which refuses it. */
const ruleOf = (op: string): ClusterRule => (OPERATIONS as Record<string, { cluster: ClusterRule } | undefined>)[op]?.cluster ?? 'one-member';

/** The quorum tokens (approval_data) a request carries: approvals and a registration. */
function tokensOf(req: Record<string, unknown>): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const field of ['approval', 'payloadApproval', 'registration']) {
    const a = req[field] as { approvalData?: unknown } | undefined;
    if (a && a.approvalData instanceof Uint8Array) out.push(a.approvalData);
  }
  return out;
}

/** The handles a key-creating request made, with whether each is a token key. */
function createdKeys(req: Record<string, unknown>, result: Record<string, unknown>): { handle: number; token: boolean }[] {
  const token = (attrs: unknown) => (attrs as { token?: boolean } | undefined)?.token === true;
  if (req.op === 'generateKeyPair') {
    return [
      { handle: result.privateHandle as number, token: token(req.privateAttributes) },
      { handle: result.publicHandle as number, token: token(req.publicAttributes) },
    ];
  }
  // A copy is a token key when its original was, unless the request changes that.
  if (req.op === 'copyKey') return [{ handle: result.handle as number, token: token((result.key as { attributes?: unknown } | undefined)?.attributes) }];
  return [{ handle: result.handle as number, token: token(req.attributes) }];
}

/** What a session's channel needs of the cluster: its members, and the ways of sending to them. */
export interface ChannelHost {
  readonly links: readonly MemberLink[];
  readonly size: number;
  readonly closed: boolean;
  readonly retryMode: RetryMode;
  readonly options: Readonly<{ keyAvailabilityCheck?: boolean }>;
  pick(exclude?: ReadonlySet<number>): MemberLink | undefined;
  upMembers(): MemberLink[];
  writeMembers(): MemberLink[];
  sendTo(link: MemberLink, request: unknown): Promise<Response>;
  sendRetrying(link: MemberLink, request: unknown, busyRetriesUsed?: number): Promise<Response>;
  sendBalanced(prepare: (link: MemberLink) => Promise<unknown>, options?: { failover?: boolean; busyRetriesUsed?: number }): Promise<{ response: Response; link: MemberLink }>;
}

/** What a session needs from wherever its requests go. */
export interface SessionChannel {
  send(request: Record<string, unknown> & { op: string }): Promise<unknown>;
  sendToMember(index: number, request: Record<string, unknown> & { op: string }): Promise<unknown>;
  /** The same read on every member that is up; one answer per member. */
  everyMember(request: Record<string, unknown> & { op: string }): Promise<unknown[]>;
  logout(): Promise<void>;
  readonly username: string;
  readonly role: UserRole;
}

/**
 * One user's session across the cluster: a session token per member (logged in on demand, so
 * members that join or come back are used), the session keys this session made and where each
 * lives, and the token keys not yet on enough members.
 */
export class ClusterSessionChannel implements SessionChannel {
  readonly #cluster: ChannelHost;
  #username: string;
  #role: UserRole = 'crypto-user';
  readonly #password: string;
  readonly #requestedRole: UserRole | undefined;
  readonly #mfa: MfaSigner | undefined;
  /** member index → the signed MFA token for its first login (single use). */
  readonly #mfaAnswers = new Map<number, { unsigned: Uint8Array; signature: Uint8Array }>();
  /** member index → { token, epoch } */
  readonly #tokens = new Map<number, { token: string; epoch: number }>();
  /** session key handle → member index */
  readonly #sessionKeys = new Map<number, number>();
  /** token key handle → members known to hold it, while fewer than all */
  readonly #coverage = new Map<number, Set<number>>();
  #open = true;

  constructor(cluster: ChannelHost, username: string, password: string, role: UserRole | undefined, mfa?: MfaSigner) {
    this.#cluster = cluster;
    this.#username = username;
    this.#password = password;
    this.#requestedRole = role;
    this.#mfa = mfa;
  }

  get role(): UserRole {
    return this.#role;
  }

  /** The username as the members spell it (lowercase). */
  get username(): string {
    return this.#username;
  }

  /** Logs in on every up member; refused if the first answer is a refusal. */
  async open(): Promise<void> {
    const up = this.#cluster.upMembers();
    if (this.#mfa) await this.#answerMfa(up);
    const results = await Promise.allSettled(up.map((l) => this.#tokenFor(l)));
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof HsmError && r.reason.code === 'MEMBER_UNAVAILABLE'));
    if (refused) {
      await this.logout().catch(() => undefined);
      throw refused.reason;
    }
    if (this.#tokens.size === 0) {
      throw new HsmError('MEMBER_UNAVAILABLE', 'no member of the cluster could be reached to log in');
    }
  }

  /**
   * MFA: asks every member for a login token (each checks the password first), has the signer
   * sign them all, and keeps each answer for that member's login. A member that joins later asks
   * for a new MFA login: this session does not use it.
   */
  async #answerMfa(up: MemberLink[]): Promise<void> {
    const role = this.#requestedRole ? { role: this.#requestedRole } : {};
    const tokens = await Promise.all(up.map(async (l) =>
      resultOf<'getMfaToken'>(await this.#cluster.sendTo(l, { op: 'getMfaToken', username: this.#username, password: this.#password, ...role })).unsigned,
    ));
    const signatures = await this.#mfa!(tokens);
    if (!Array.isArray(signatures) || signatures.length !== tokens.length || !signatures.every((s) => s instanceof Uint8Array)) {
      throw new HsmError('BAD_REQUEST', `mfa: the signer must return ${tokens.length} signatures (Uint8Array), one per token, in order`);
    }
    up.forEach((l, i) => this.#mfaAnswers.set(l.index, { unsigned: tokens[i]!, signature: signatures[i]! }));
  }

  /** This session's token on a member, logging in there when needed. */
  async #tokenFor(link: MemberLink): Promise<string> {
    // A request still under way when the session logged out does not log it in again.
    if (!this.#open) throw new HsmError('NOT_LOGGED_IN', `the session of ${this.username} has logged out`);
    const known = this.#tokens.get(link.index);
    if (known && known.epoch === link.epoch) return known.token;
    const epoch = link.epoch;
    const mfa = this.#mfaAnswers.get(link.index);
    this.#mfaAnswers.delete(link.index);
    const response = await this.#cluster.sendTo(link, {
      op: 'login',
      username: this.username,
      password: this.#password,
      ...(this.#requestedRole ? { role: this.#requestedRole } : {}),
      ...(mfa ? { mfa } : {}),
    });
    if (!response.ok) throw HsmError.fromWire(response.error);
    const r = response.result as Results['login'];
    this.#role = r.role;
    this.#username = r.username;
    this.#tokens.set(link.index, { token: r.session, epoch });
    return r.session;
  }

  /**
   * The member a request must go to because it names a session key, or undefined; `spread` when
   * the session keys it names live on different members (see {@link #gather}).
   */
  #stickyMember(handles: number[]): MemberLink | 'spread' | undefined {
    let index: number | undefined;
    let spread = false;
    for (const h of handles) {
      const where = this.#sessionKeys.get(h);
      if (where === undefined) continue;
      if (index === undefined) index = where;
      else if (where !== index) spread = true;
    }
    if (index === undefined) return undefined;
    return spread ? 'spread' : this.#liveHome(handles.find((h) => this.#sessionKeys.get(h) === index)!);
  }

  /** The member a session key lives on, which must be up: session keys do not survive their member. */
  #liveHome(handle: number): MemberLink {
    const link = this.#cluster.links[this.#sessionKeys.get(handle)!]!;
    if (link.state !== 'up') {
      throw new HsmError('MEMBER_UNAVAILABLE', `session key ${keyRef(handle)} lived on ${link.description}, which is ${link.state}; session keys do not survive their member`);
    }
    return link;
  }

  /** Session keys being moved: handle → the move under way (a second caller waits for it). */
  readonly #moving = new Map<number, Promise<void>>();

  /**
   * A call that combines session keys made on different members (a wrap, an unwrap, a key
   * agreement) runs on the member of the first one; the others move there first: each is sealed
   * as a masked object by its member (under the cluster's masking key, for this session's login
   * only), taken in by this session's login on the target, and deleted where it was. From then on
   * it lives on the target. Members of other clusters cannot open the blob, and it is never a
   * token key.
   */
  async #gather(handles: number[]): Promise<MemberLink> {
    const first = handles.find((h) => this.#sessionKeys.has(h))!;
    const target = this.#liveHome(first);
    for (const h of handles) {
      const pending = this.#moving.get(h);
      if (pending) await pending;
      if (!this.#sessionKeys.has(h) || this.#sessionKeys.get(h) === target.index) continue;
      const move = this.#move(h, target).finally(() => this.#moving.delete(h));
      this.#moving.set(h, move);
      await move;
    }
    return target;
  }

  async #move(handle: number, target: MemberLink): Promise<void> {
    const from = this.#liveHome(handle);
    const extracted = resultOf<'extractMaskedObject'>(await this.#cluster.sendRetrying(from, { op: 'extractMaskedObject', handle, session: await this.#tokenFor(from) }, 0));
    resultOf(await this.#cluster.sendRetrying(target, { op: 'insertMaskedObject', maskedObject: extracted.maskedObject, session: await this.#tokenFor(target) }, 0));
    this.#sessionKeys.set(handle, target.index);
    // The copy left behind goes; requests sent to it earlier reach that member first.
    void this.#cluster.sendTo(from, { op: 'deleteKey', handle, session: await this.#tokenFor(from) }).catch(() => undefined);
  }

  async #checkAvailability(handles: number[]): Promise<void> {
    if (!this.#cluster.options.keyAvailabilityCheck) return;
    for (const h of handles) {
      const members = this.#coverage.get(h);
      if (!members || members.size >= 2) continue;
      await this.#replicate(h, this.#cluster.links[[...members][0]!]!);
      if ((this.#coverage.get(h)?.size ?? 2) < 2) throw new HsmError('KEY_NOT_AVAILABLE', AVAILABILITY_MESSAGE(keyRef(h)));
    }
  }

  /** Sends to one member (the sticky one, or the best), with this session's token there. */
  async #sendOne(req: Record<string, unknown>, sticky: MemberLink | undefined, busyRetriesUsed = 0): Promise<{ response: Response; link: MemberLink }> {
    const prepare = async (link: MemberLink) => withField(req, 'session', await this.#tokenFor(link));
    if (sticky) {
      const response = await this.#cluster.sendRetrying(sticky, await prepare(sticky), busyRetriesUsed);
      return { response, link: sticky };
    }
    let { response, link } = await this.#cluster.sendBalanced(prepare, { busyRetriesUsed });
    if (!response.ok && response.error.code === 'NOT_LOGGED_IN') {
      // The member lost its sessions (it restarted behind the same address): log in again once.
      this.#tokens.delete(link.index);
      ({ response, link } = await this.#cluster.sendBalanced(prepare));
    }
    return { response, link };
  }


  send(req: Record<string, unknown> & { op: string }): Promise<unknown> {
    if (!this.#open) return Promise.reject(new HsmError('NOT_LOGGED_IN', `the session of ${this.username} has logged out`));
    if (this.#cluster.closed) return Promise.reject(new HsmError('MEMBER_CLOSED', 'the cluster has been closed'));
    if (ruleOf(req.op) === 'one-member' && req.approval === undefined && req.payloadApproval === undefined) {
      try {
        const fast = this.#fast(req);
        if (fast) return fast;
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.#sendFull(req, 0);
  }

  /**
   * The common case, kept small: a request that changes nothing that must be replicated, to a
   * member this session is logged in on, goes straight there. Busy, gone and logged-out answers
   * continue on the full path (retries, failover, re-login). Null when the full path is needed.
   */
  #fast(req: Record<string, unknown> & { op: string }): Promise<unknown> | null {
    const handles = handlesOf(req);
    const sticky = this.#sessionKeys.size ? this.#stickyMember(handles) : undefined;
    if (sticky === 'spread') return null;
    if (!sticky && this.#coverage.size && handles.some((h) => this.#coverage.has(h))) return null;
    const link = sticky ?? this.#cluster.pick();
    const known = link ? this.#tokens.get(link.index) : undefined;
    if (!link || !known || known.epoch !== link.epoch) return null;
    // The answer handler is not async: a success is passed on with no promise of its own.
    return this.#cluster.sendTo(link, withField(req, 'session', known.token)).then((response) => (response.ok ? response.result : this.#fastRefused(req, link, !sticky, response.error)));
  }

  /** After a refusal on the fast path: busy, gone and logged-out continue on the full path; anything else is the caller's error. */
  async #fastRefused(req: Record<string, unknown> & { op: string }, link: MemberLink, balanced: boolean, error: WireError): Promise<unknown> {
    const code = error.code;
    if (code === 'MEMBER_BUSY') {
      if (!retriesBusy(this.#cluster.retryMode, 0)) throw HsmError.fromWire(error);
      await waitToRetry(link, 1);
      return this.#sendFull(req, 1);
    }
    if (code === 'MEMBER_UNAVAILABLE') {
      if (balanced) link.counters.failovers += 1; // the full path goes to another member
      return this.#sendFull(req, 0);
    }
    if (code === 'NOT_LOGGED_IN') return this.#sendFull(req, 0);
    throw HsmError.fromWire(error);
  }

  async #sendFull(req: Record<string, unknown> & { op: string }, busyRetriesUsed: number): Promise<unknown> {
    const op = req.op;
    const rule = ruleOf(op);
    if (op === 'logout') {
      await this.logout();
      return { loggedOut: true };
    }
    const handles = handlesOf(req);
    const sticky = this.#sessionKeys.size ? this.#stickyMember(handles) : undefined;
    const sessionKeyMember = sticky === 'spread' ? await this.#gather(handles) : sticky;
    const consumer = this.#consumerOf(req);
    if (consumer && sessionKeyMember && consumer !== sessionKeyMember) {
      throw new HsmError('QUORUM_TOKEN_INVALID', `approval: the token is used on ${consumer.description}, but the session key it names lives on ${sessionKeyMember.description}`);
    }
    if (!sessionKeyMember && this.#coverage.size) await this.#checkAvailability(handles);

    if (rule === 'every-member' && op === 'generateQuorumToken') {
      // One segment from every member, the one that will use the token first (members refuse a
      // token whose first segment is not theirs: one use in the whole cluster). That is the first
      // member up, so that the tokens one request carries (an approval and a registration, or a
      // wrap's two approvals) are used on the same member.
      const ordered = this.#cluster.upMembers();
      const parts = await Promise.all(ordered.map(async (l) => resultOf<'generateQuorumToken'>(await this.#cluster.sendTo(l, withField(req, 'session', await this.#tokenFor(l))))));
      const approvalData = new Uint8Array(parts.reduce((n, p) => n + p.approvalData.length, 0));
      let at = 0;
      for (const p of parts) {
        approvalData.set(p.approvalData, at);
        at += p.approvalData.length;
      }
      return { approvalData };
    }
    if (rule === 'every-member') {
      const results = (await this.everyMember(req)) as Results['deleteQuorumTokens'][];
      return { deleted: results.reduce((n, r) => n + r.deleted, 0) };
    }
    const result = await this.#sendRouted(req, sessionKeyMember ?? consumer, sessionKeyMember !== undefined, busyRetriesUsed);
    // An approved operation ran on the token's member and used it up there; the other members'
    // segments (which they would refuse anyway) are retired so that token lists stay true.
    const approvals = tokensOf(req);
    if (approvals.length) {
      await Promise.all(approvals.map((a) => this.everyMember({ op: 'deleteQuorumTokens', approvalData: a }).catch(() => undefined)));
    }
    return result;
  }

  /** The member that must run an approved request: the one of its token's first segment. */
  #consumerOf(req: Record<string, unknown>): MemberLink | undefined {
    let consumer: MemberLink | undefined;
    for (const data of tokensOf(req)) {
      const index = data.length >= 6 && data[0] === 0x53 && data[1] === 0x52 && data[2] === 0x51 ? data[5]! : undefined;
      if (index === undefined) continue; // the member refuses it with the reason
      const link = this.#cluster.links.find((l) => l.index === index);
      if (!link) throw new HsmError('QUORUM_TOKEN_INVALID', `approval: the token was made for member ${index}, which this cluster does not have`);
      if (consumer && consumer !== link) throw new HsmError('QUORUM_TOKEN_INVALID', 'approval: the tokens of one request must be used on the same member (generate them in one session)');
      consumer = link;
    }
    if (consumer && consumer.state !== 'up') {
      throw new HsmError('MEMBER_UNAVAILABLE', `approval: the token is used on ${consumer.description}, which is ${consumer.state}; generate a new token`);
    }
    return consumer;
  }

  /**
   * Runs a request on one member (`target`, or the best one) and brings what it changed to the
   * other members: new token keys and changed or deleted ones as masked objects or tombstones,
   * users (and deletions) as masked users, cluster settings as masked settings. Each member
   * merges by generation, so the change is made once, with one approval, and copies never
   * undo it. A session key's changes stay on its member (`sessionKey`).
   */
  async #sendRouted(req: Record<string, unknown> & { op: string }, target: MemberLink | undefined, sessionKey: boolean, busyRetriesUsed: number): Promise<unknown> {
    const op = req.op;
    const { response, link } = await this.#sendOne(req, target, busyRetriesUsed);
    const result = resultOf(response) as Record<string, unknown>;

    const rule = ruleOf(op);
    if (rule === 'creates-key') {
      const made = createdKeys(req, result);
      for (const k of made) if (!k.token) this.#sessionKeys.set(k.handle, link.index);
      const tokens = made.filter((k) => k.token);
      if (tokens.length) {
        await Promise.all(tokens.map((k) => this.#replicate(k.handle, link)));
        if (this.#cluster.options.keyAvailabilityCheck) {
          const short = tokens.find((k) => (this.#coverage.get(k.handle)?.size ?? 2) < 2);
          if (short) throw new HsmError('KEY_NOT_AVAILABLE', AVAILABILITY_MESSAGE(keyRef(short.handle)));
        }
      }
      return result;
    }
    if (rule === 'changes-key') {
      const handle = req.handle as number;
      if (sessionKey) {
        if (op === 'deleteKey') this.#sessionKeys.delete(handle);
        if (op === 'setAttributes' && (req.attributes as { token?: boolean }).token === true) {
          // A session key made a token key: from now on it is synced like one.
          this.#sessionKeys.delete(handle);
          await this.#replicate(handle, link);
        }
        return result;
      }
      await this.#propagateKey(handle, link);
      if (op === 'deleteKey') this.#coverage.delete(handle);
      return result;
    }
    if (rule === 'changes-user') {
      await this.#copyUser((result as { username: string }).username, link);
      return result;
    }
    if (rule === 'changes-setting') {
      await this.#copySettings(link);
      return result;
    }
    if (rule === 'search' && req.startingToken === undefined) await this.#addSessionKeys(req, link, result as unknown as Results['findKeys']);
    return result;
  }

  /**
   * A key search runs on one member, which knows the token keys and its own session keys; this
   * session's session keys on other members are searched there and added to the first page.
   */
  async #addSessionKeys(req: Record<string, unknown>, searched: MemberLink, page: Results['findKeys']): Promise<void> {
    const elsewhere = new Set([...this.#sessionKeys.values()].filter((i) => i !== searched.index));
    for (const index of elsewhere) {
      const link = this.#cluster.links[index]!;
      if (link.state !== 'up') continue;
      const r = await this.#cluster.sendTo(link, { ...req, maxItems: 10_000, session: await this.#tokenFor(link) });
      if (r.ok) page.keys.push(...(r.result as Results['findKeys']).keys.filter((k) => k.sessionKey));
    }
  }

  /** One request on one given member (per-member reads such as audit logs, and tests). */
  async sendToMember(index: number, req: Record<string, unknown> & { op: string }): Promise<unknown> {
    if (!this.#open) throw new HsmError('NOT_LOGGED_IN', `the session of ${this.username} has logged out`);
    const link = this.#cluster.links[index];
    if (!link) throw new HsmError('BAD_REQUEST', `member: no member ${index} (the cluster has ${this.#cluster.size})`);
    if (link.state !== 'up') throw new HsmError('MEMBER_UNAVAILABLE', `${link.description} is ${link.state}`);
    return resultOf(await this.#cluster.sendTo(link, withField(req, 'session', await this.#tokenFor(link))));
  }

  async everyMember(req: Record<string, unknown> & { op: string }): Promise<unknown[]> {
    const up = this.#cluster.upMembers();
    return Promise.all(up.map(async (l) => resultOf(await this.#cluster.sendTo(l, withField(req, 'session', await this.#tokenFor(l))))));
  }

  /** Copies the cluster settings from `from` to every other member that takes changes. */
  async #copySettings(from: MemberLink): Promise<void> {
    const others = this.#cluster.writeMembers().filter((l) => l !== from);
    if (!others.length) return;
    const { maskedSettings } = resultOf<'extractMaskedSettings'>(await this.#cluster.sendTo(from, { op: 'extractMaskedSettings', session: await this.#tokenFor(from) }));
    await this.#toOthers(others, { op: 'insertMaskedSettings', maskedSettings }, 'the cluster settings');
  }

  /** Copies a user (or its deletion) from `from` to every other member that takes changes. */
  async #copyUser(username: string, from: MemberLink): Promise<void> {
    const others = this.#cluster.writeMembers().filter((l) => l !== from);
    if (!others.length) return;
    const masked = resultOf<'extractMaskedUser'>(await this.#cluster.sendTo(from, { op: 'extractMaskedUser', username, session: await this.#tokenFor(from) }));
    await this.#toOthers(others, { op: 'insertMaskedUser', maskedUser: masked.maskedUser }, username);
  }

  /**
   * Sends an insert to members; a member that holds something newer (MASKED_OBJECT_STALE) is
   * fine, one that is gone is left to repair, and any other refusal is an error.
   */
  async #toOthers(others: MemberLink[], request: Record<string, unknown>, what: string): Promise<void> {
    await Promise.all(others.map(async (l) => {
      const token = await this.#tokenFor(l).catch(() => null);
      if (token === null) return;
      const r = await this.#cluster.sendTo(l, withField(request, 'session', token));
      if (!r.ok && r.error.code !== 'MEMBER_UNAVAILABLE' && r.error.code !== 'MASKED_OBJECT_STALE') {
        throw new HsmError(r.error.code, `${l.description} did not take ${what}: ${r.error.message}`);
      }
    }));
  }

  /** Copies a changed or deleted token key from `from` to every other member that takes changes. */
  async #propagateKey(handle: number, from: MemberLink): Promise<void> {
    const others = this.#cluster.writeMembers().filter((l) => l !== from);
    if (!others.length) return;
    const { maskedObject } = resultOf<'extractMaskedObject'>(await this.#cluster.sendTo(from, { op: 'extractMaskedObject', handle, session: await this.#tokenFor(from) }));
    await this.#toOthers(others, { op: 'insertMaskedObject', maskedObject }, `key ${keyRef(handle)}`);
  }

  /** Copies a new token key from `from` to every other up member; records where it is. */
  async #replicate(handle: number, from: MemberLink): Promise<void> {
    const have = this.#coverage.get(handle) ?? new Set([from.index]);
    this.#coverage.set(handle, have);
    const others = this.#cluster.writeMembers().filter((l) => !have.has(l.index));
    if (others.length && from.state === 'up') {
      const extracted = await this.#cluster.sendTo(from, { op: 'extractMaskedObject', handle, session: await this.#tokenFor(from) });
      if (extracted.ok) {
        const { maskedObject } = extracted.result as Results['extractMaskedObject'];
        await Promise.all(others.map(async (l) => {
          const token = await this.#tokenFor(l).catch(() => null);
          if (token === null) return;
          const r = await this.#cluster.sendTo(l, { op: 'insertMaskedObject', maskedObject, session: token });
          if (r.ok || r.error.code === 'MASKED_OBJECT_STALE') have.add(l.index);
        }));
      }
    }
    if (have.size >= this.#cluster.size) this.#coverage.delete(handle);
  }

  /** Logs out on every member where this session is logged in. */
  async logout(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    const tokens = [...this.#tokens.entries()];
    this.#tokens.clear();
    this.#sessionKeys.clear();
    await Promise.all(tokens.map(async ([index, { token, epoch }]) => {
      const link = this.#cluster.links[index]!;
      if (link.epoch !== epoch || link.state !== 'up') return;
      await this.#cluster.sendTo(link, { op: 'logout', session: token });
    }));
  }
}
