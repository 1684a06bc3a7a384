/**
 * The cluster as an application sees it: one HSM made of several members (CloudHSM's client SDK,
 * CLOUDHSM.md §4).
 *
 * - Load balancing by spare capacity: a request goes to the member with the fewest requests
 *   outstanding relative to its capacity (its queue limit).
 * - A member that answers MEMBER_BUSY (0xBB) is retried with exponential backoff, up to 3 times
 *   (`retry: 'standard'`, as in SDK 5), on whichever member has the most room then.
 * - Token keys are made on one member and copied to every other as masked objects, keeping their
 *   handle; a new token key must be on at least 2 members before use (`keyAvailabilityCheck`).
 * - Session keys live on the member that made them; requests that use them go there.
 * - Changes to users, token keys and cluster settings are made on one member (which checks them
 *   and their approval: a request with a quorum token goes to the member of its first segment),
 *   then travel to the others as sealed versions (masked objects, users, settings, tombstones),
 *   which each member merges by generation (hsm-core's merge.ts).
 * - A member that fails is marked down, requests that are safe to repeat go to another, and the
 *   member is probed in the background; when it answers again it is compared with a healthy
 *   member (sync digests, generations, tombstones) and the two are merged — or, if it is new or
 *   empty, it first gets a backup restored — with the appliance user's credentials, before it
 *   takes traffic.
 *
 * @module
 */
import { HsmError, keyRef, type Request, type Response, type Results, type UserInfo, type UserRole } from '../hsm-core/index.js';
import type { Transport } from './transport.js';

export type MemberState = 'up' | 'down' | 'repairing' | 'removed';

export interface MemberStatus {
  index: number;
  description: string;
  state: MemberState;
  /** Requests sent and not yet answered. */
  outstanding: number;
  /** The member's queue limit: what load balancing divides by. */
  capacity: number;
  /** Since the cluster handle was opened. */
  counters: { requests: number; busy: number; retries: number; failovers: number; downs: number; repairs: number };
  /** Why it is down, when it is. */
  reason: string | null;
}

export interface ClusterOptions {
  /** `standard` (default): retry busy members up to 3 times with exponential backoff. `off`: never. */
  retry?: 'standard' | 'off';
  /**
   * A new token key must be on at least 2 members before it is used (CloudHSM's SDK 5 rule).
   * Default true; always off for a one-member cluster.
   */
  keyAvailabilityCheck?: boolean;
  /** The appliance user's password: lets the client repair a member that missed changes. */
  appliancePassword?: string;
  /** How often a down member is probed, in ms (doubling up to 5 s). Default 100. */
  probeIntervalMs?: number;
  /** A request not answered in this many ms marks its member down. Default 30 000. */
  requestTimeoutMs?: number;
}

/** How to reach one member slot: returns a live transport (connects, or starts a new member). */
export type MemberStarter = () => Promise<Transport>;

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

/** Operations that change a user, which then travels to the other members as a masked user. */
const CHANGES_USER = new Set<string>(['createUser', 'changePassword', 'changeMfa', 'registerQuorumKey']);
/** Cluster settings: every member applies the same request (and checks its approval itself). */
const CHANGES_SETTING = new Set<string>(['setQuorumValue', 'setQuorumTimeouts']);

const AVAILABILITY_MESSAGE = (ref: string) =>
  `Key ${ref} does not meet the availability requirements - The key must be available on at least 2 HSMs before being used.`;

const CREATES_KEYS = new Set<string>(['generateKey', 'generateKeyPair', 'importKey', 'importEncryptedKey', 'unwrapKey', 'deriveKey']);
const CHANGES_KEY = new Set<string>(['setAttributes', 'shareKey', 'unshareKey', 'deleteKey']);
/** The quorum tokens (approval_data) a request carries: approvals and a registration. */
function tokensOf(req: Record<string, unknown>): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const field of ['approval', 'payloadApproval', 'registration']) {
    const a = req[field] as { approvalData?: unknown } | undefined;
    if (a && a.approvalData instanceof Uint8Array) out.push(a.approvalData);
  }
  return out;
}

/** Requests answered by one member with nothing to replicate or merge: the fast path. */
const SIMPLE = new Set<string>(['encrypt', 'decrypt', 'sign', 'verify', 'digest', 'generateRandom', 'deriveBits', 'wrapKey', 'exportKey', 'exportEncryptedKey', 'getAttributes', 'getSyncStatus', 'extractMaskedObject']);

/** The result of an answer, or its refusal thrown as an HsmError. */
export function resultOf<O extends keyof Results>(response: Response): Results[O] {
  if (!response.ok) throw HsmError.fromWire(response.error);
  return response.result as Results[O];
}

/** Every key handle a request names. */
export function handlesOf(req: Record<string, unknown>): number[] {
  const out: number[] = [];
  for (const field of ['handle', 'wrappingHandle', 'payloadHandle', 'unwrappingHandle', 'baseHandle']) {
    const v = req[field];
    if (typeof v === 'number') out.push(v);
  }
  const mechanism = req.mechanism as { publicHandle?: unknown } | undefined;
  if (mechanism && typeof mechanism.publicHandle === 'number') out.push(mechanism.publicHandle);
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
  return [{ handle: result.handle as number, token: token(req.attributes) }];
}

/** Whether the members that are up agree, and if not, the keys and users (and settings) that still differ. */
export interface SyncState {
  inSync: boolean;
  keys: number[];
  users: string[];
  settings: boolean;
}

/** What one member must take from another to agree with it: keys (or their deletions), users (or theirs), settings. */
interface Differences {
  keys: number[];
  users: string[];
  settings: boolean;
}

const isEmpty = (d: Differences) => !d.keys.length && !d.users.length && !d.settings;

type Version = { gen: number; digest: string | null };

/** Whether `b` (another member's version) wins over `a` (this member's): deletions of keys always, otherwise the newer, ties by digest. */
function newer(a: Version | undefined, b: Version | undefined, deletionWins: boolean): boolean {
  if (!b) return false;
  if (!a) return true;
  if (deletionWins && (a.digest === null || b.digest === null)) return a.digest !== null;
  if (b.gen !== a.gen) return b.gen > a.gen;
  if (a.digest === null || b.digest === null) return false;
  return b.digest > a.digest;
}

/** What `mine` lacks of `theirs`: every key, user and setting where their version wins. */
function differences(mine: Results['getSyncStatus'], theirs: Results['getSyncStatus']): Differences {
  const keysOf = (s: Results['getSyncStatus']) => {
    const out = new Map<number, Version>(s.keys.map((k) => [k.handle, { gen: k.gen, digest: k.digest }]));
    for (const d of s.deletedKeys) out.set(d.handle, { gen: d.gen, digest: null });
    return out;
  };
  const usersOf = (s: Results['getSyncStatus']) => {
    const out = new Map<string, Version>(s.users.map((u) => [u.username, { gen: u.gen, digest: u.digest }]));
    for (const d of s.deletedUsers) if (!out.has(d.username)) out.set(d.username, { gen: d.gen, digest: null });
    return out;
  };
  const [myKeys, theirKeys, myUsers, theirUsers] = [keysOf(mine), keysOf(theirs), usersOf(mine), usersOf(theirs)];
  return {
    keys: [...theirKeys].filter(([h, v]) => newer(myKeys.get(h), v, true)).map(([h]) => h),
    users: [...theirUsers].filter(([u, v]) => newer(myUsers.get(u), v, false)).map(([u]) => u),
    settings: newer({ gen: mine.settingsGen, digest: mine.settings }, { gen: theirs.settingsGen, digest: theirs.settings }, false),
  };
}

/**
 * Copies what differs from one member to others with appliance sessions: users first (keys
 * need their owners), then keys and deletions, then the settings. Each member merges by
 * generation, so a copy that is older than what it meets changes nothing.
 */
async function copyAll(diff: Differences, from: { transport: Transport; session: string }, to: { transport: Transport; session: string }[]): Promise<void> {
  const send = async (request: Record<string, unknown>) => {
    await Promise.all(to.map(async (t) => {
      const r = await t.transport.send({ ...request, session: t.session });
      if (!r.ok && r.error.code !== 'MASKED_OBJECT_STALE') throw HsmError.fromWire(r.error);
    }));
  };
  const live = diff.users;
  for (const username of live) {
    const r = await from.transport.send({ op: 'extractMaskedUser', username, session: from.session });
    if (r.ok) await send({ op: 'insertMaskedUser', maskedUser: (r.result as Results['extractMaskedUser']).maskedUser });
  }
  // Keys many at a time (each connection pipelines), in batches so that memory stays bounded.
  for (let at = 0; at < diff.keys.length; at += 64) {
    await Promise.all(diff.keys.slice(at, at + 64).map(async (handle) => {
      const r = await from.transport.send({ op: 'extractMaskedObject', handle, session: from.session });
      if (r.ok) await send({ op: 'insertMaskedObject', maskedObject: (r.result as Results['extractMaskedObject']).maskedObject });
    }));
  }
  if (diff.settings) {
    const r = await from.transport.send({ op: 'extractMaskedSettings', session: from.session });
    if (r.ok) await send({ op: 'insertMaskedSettings', maskedSettings: (r.result as Results['extractMaskedSettings']).maskedSettings });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How many times the standard retry mode retries a member that answered MEMBER_BUSY (CloudHSM's SDK: 3). */
export const BUSY_RETRIES = 3;

/** Exponential backoff with jitter: about 10, 20, 40 ms for the 1st, 2nd, 3rd retry. */
const backoff = (retry: number) => Math.min(1000, 5 * 2 ** retry) * (0.5 + Math.random());

export class MemberLink {
  readonly index: number;
  state: MemberState = 'down';
  transport: Transport | null = null;
  outstanding = 0;
  capacity = 1;
  reason: string | null = 'not started';
  /** Bumped whenever the member's sessions are gone (restart, repair): sessions must log in again. */
  epoch = 0;
  /** While repairing: it holds the cluster's state and takes changes, but not yet reads. */
  accepting = false;
  readonly counters = { requests: 0, busy: 0, retries: 0, failovers: 0, downs: 0, repairs: 0 };
  readonly start: MemberStarter;
  description: string;

  constructor(index: number, start: MemberStarter, description: string) {
    this.index = index;
    this.start = start;
    this.description = description;
  }
}

export class Cluster {
  readonly #links: MemberLink[];
  readonly #options: Required<Omit<ClusterOptions, 'appliancePassword'>> & { appliancePassword?: string };
  #closed = false;
  #probes = new Set<Promise<void>>();
  #roundRobin = 0;

  private constructor(links: MemberLink[], options: ClusterOptions) {
    this.#links = links;
    this.#options = {
      retry: options.retry ?? 'standard',
      keyAvailabilityCheck: links.length > 1 && (options.keyAvailabilityCheck ?? true),
      probeIntervalMs: options.probeIntervalMs ?? 100,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      ...(options.appliancePassword !== undefined ? { appliancePassword: options.appliancePassword } : {}),
    };
    if (options.retry !== undefined && options.retry !== 'standard' && options.retry !== 'off') {
      throw new HsmError('BAD_REQUEST', `retry: expected 'standard' or 'off', got ${JSON.stringify(options.retry)}`);
    }
  }

  /**
   * Opens a cluster handle over member slots. Members that cannot be reached now are marked down
   * and probed in the background; at least one must answer.
   */
  static async open(starters: { start: MemberStarter; description: string }[], options: ClusterOptions = {}): Promise<Cluster> {
    const cluster = new Cluster(
      starters.map((s, i) => new MemberLink(i, s.start, s.description)),
      options,
    );
    await Promise.all(
      cluster.#links.map((l) =>
        cluster.#bringUp(l, false).catch((e: unknown) => {
          l.state = 'up'; // so that #markDown records the reason, closes what was opened and probes
          cluster.#markDown(l, e instanceof Error ? e.message : String(e));
        }),
      ),
    );
    if (!cluster.#links.some((l) => l.state === 'up')) {
      const reasons = cluster.#links.map((l) => `${l.description}: ${l.reason}`).join('; ');
      await cluster.close();
      throw new HsmError('MEMBER_UNAVAILABLE', `no member of the cluster answered (${reasons})`);
    }
    return cluster;
  }

  get size(): number {
    return this.#links.length;
  }

  get options(): Readonly<ClusterOptions> {
    return this.#options;
  }

  /** What each member is doing: state, outstanding requests, capacity and counters. */
  status(): MemberStatus[] {
    return this.#links.map((l) => ({
      index: l.index,
      description: l.description,
      state: l.state,
      outstanding: l.outstanding,
      capacity: l.capacity,
      counters: { ...l.counters },
      reason: l.reason,
    }));
  }

  /** @internal the member links, for sessions and the local supervisor. */
  get links(): readonly MemberLink[] {
    return this.#links;
  }

  /** Waits until every member is up (after a failure, a restart and a repair). */
  async whenAllUp(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#links.some((l) => l.state !== 'up' && l.state !== 'removed')) {
      if (Date.now() > deadline) {
        throw new HsmError('MEMBER_UNAVAILABLE', `members not up after ${timeoutMs} ms: ${this.#links.filter((l) => l.state !== 'up').map((l) => `${l.description} (${l.state}: ${l.reason})`).join(', ')}`);
      }
      await sleep(20);
    }
  }

  // ---- sending ----------------------------------------------------------------------------------

  /** The up member with the most spare capacity, not in `exclude`. */
  pick(exclude: ReadonlySet<number> = new Set()): MemberLink | undefined {
    let best: MemberLink | undefined;
    let bestLoad = Infinity;
    const n = this.#links.length;
    this.#roundRobin = (this.#roundRobin + 1) % n;
    for (let k = 0; k < n; k++) {
      const l = this.#links[(this.#roundRobin + k) % n]!;
      if (l.state !== 'up' || exclude.has(l.index)) continue;
      const load = (l.outstanding + 1) / l.capacity;
      if (load < bestLoad) {
        best = l;
        bestLoad = load;
      }
    }
    return best;
  }

  upMembers(): MemberLink[] {
    return this.#links.filter((l) => l.state === 'up');
  }

  /** Members that changes must reach: those up, and those being repaired once they are in the cluster. */
  writeMembers(): MemberLink[] {
    return this.#links.filter((l) => l.state === 'up' || (l.state === 'repairing' && l.accepting));
  }

  /** One request to one member, counted; a lost member answers MEMBER_UNAVAILABLE and is marked down. */
  async sendTo(link: MemberLink, request: unknown): Promise<Response> {
    const transport = link.transport;
    if (!transport || (link.state !== 'up' && link.state !== 'repairing')) {
      return { ok: false, error: { code: 'MEMBER_UNAVAILABLE', message: `${link.description} is ${link.state}` } };
    }
    link.outstanding += 1;
    link.counters.requests += 1;
    // (Requests that are never answered are failed by the transport's watchdog, not a timer each.)
    const response = await transport.send(request);
    link.outstanding -= 1;
    if (!response.ok) {
      if (response.error.code === 'MEMBER_UNAVAILABLE' && link.transport === transport) this.#markDown(link, response.error.message);
      else if (response.error.code === 'MEMBER_BUSY') link.counters.busy += 1;
    }
    return response;
  }

  /** Sends to one given member, retrying MEMBER_BUSY with backoff as the retry mode says. */
  async sendRetrying(link: MemberLink, request: unknown, busyRetriesUsed = 0): Promise<Response> {
    for (let retries = busyRetriesUsed; ; retries++) {
      const response = await this.sendTo(link, request);
      if (response.ok || response.error.code !== 'MEMBER_BUSY' || this.#options.retry !== 'standard' || retries >= BUSY_RETRIES) return response;
      link.counters.retries += 1;
      await sleep(backoff(retries + 1));
    }
  }

  /**
   * Sends to the best member; on MEMBER_UNAVAILABLE tries the others (failover), on MEMBER_BUSY
   * retries with backoff (retry mode permitting). `prepare` turns the request into what this
   * member needs (its session token) and may refuse the member.
   */
  async sendBalanced(prepare: (link: MemberLink) => Promise<unknown>, options: { failover?: boolean; busyRetriesUsed?: number } = {}): Promise<{ response: Response; link: MemberLink }> {
    const failover = options.failover ?? true;
    const tried = new Set<number>();
    let busyRetries = options.busyRetriesUsed ?? 0;
    let last: { response: Response; link: MemberLink } | undefined;
    for (;;) {
      const link = this.pick(tried);
      if (!link) {
        if (last) return last;
        throw new HsmError('MEMBER_UNAVAILABLE', 'no member of the cluster is up');
      }
      const request = await prepare(link);
      const response = await this.sendTo(link, request);
      last = { response, link };
      if (response.ok) return last;
      const code = response.error.code;
      if (code === 'MEMBER_UNAVAILABLE' && failover) {
        tried.add(link.index);
        link.counters.failovers += 1;
        continue;
      }
      if (code === 'MEMBER_BUSY' && this.#options.retry === 'standard' && busyRetries < BUSY_RETRIES) {
        busyRetries += 1;
        link.counters.retries += 1;
        await sleep(backoff(busyRetries));
        continue;
      }
      return last;
    }
  }

  // ---- failure and repair -----------------------------------------------------------------------

  #markDown(link: MemberLink, reason: string): void {
    if (link.state === 'down' || link.state === 'removed' || this.#closed) return;
    link.state = 'down';
    link.reason = reason;
    link.counters.downs += 1;
    link.epoch += 1;
    const transport = link.transport;
    link.transport = null;
    if (transport) void transport.close().catch(() => undefined);
    this.#probe(link);
  }

  #probe(link: MemberLink): void {
    const run = (async () => {
      let interval = this.#options.probeIntervalMs;
      while (!this.#closed && link.state === 'down') {
        await this.#idle(interval);
        if (this.#closed) return;
        try {
          await this.#bringUp(link, true);
        } catch (e) {
          link.reason = e instanceof Error ? e.message : String(e);
          if (link.transport) {
            const t = link.transport;
            link.transport = null;
            await t.close().catch(() => undefined);
          }
          link.state = 'down';
          interval = Math.min(5000, interval * 2);
        }
      }
    })();
    this.#probes.add(run);
    void run.finally(() => this.#probes.delete(run));
  }

  /** Connects (or starts) the member; when `repair`, compares it with a healthy member first. */
  async #bringUp(link: MemberLink, repair: boolean, prepare?: (transport: Transport) => Promise<void>): Promise<void> {
    const transport = await link.start();
    if (this.#closed) {
      // The cluster handle closed while the member started: it is not left running.
      await transport.close().catch(() => undefined);
      throw new HsmError('MEMBER_CLOSED', 'the cluster has been closed');
    }
    if (prepare) {
      try {
        await prepare(transport);
      } catch (e) {
        await transport.close().catch(() => undefined);
        throw e;
      }
    }
    transport.watchdog?.(this.#options.requestTimeoutMs);
    link.description = transport.description;
    link.transport = transport;
    link.state = 'repairing';
    transport.onDown((reason) => {
      if (link.transport === transport) this.#markDown(link, reason);
    });
    const info = resultOf<'getHsmInfo'>(await transport.send({ op: 'getHsmInfo' }));
    link.capacity = info.queueLimit;
    if (repair) {
      const healthy = this.upMembers().find((l) => l !== link);
      if (healthy) await this.#repair(link, healthy, info);
    }
    link.epoch += 1;
    link.reason = null;
    link.state = 'up';
  }

  /** Logs in as the appliance user on a member; null without the appliance password. */
  async #applianceSession(transport: Transport): Promise<string | null> {
    if (this.#options.appliancePassword === undefined) return null;
    const r = resultOf<'login'>(await transport.send({ op: 'login', username: 'app_user', password: this.#options.appliancePassword }));
    return r.session;
  }

  /**
   * Brings `link` and `healthy` to the same state (CloudHSM's sync status: compare, bring over
   * what differs). A member that is not in the cluster (new, or restarted without its state)
   * first gets a backup of `healthy` restored onto it. From then on it takes every change, and
   * the two are *merged*: each key, user and the settings go from whichever member holds the
   * newer version (by generation; a key's deletion always wins) to the other, so nothing only
   * one of them holds is lost — what only the returning member has reaches every member. It
   * takes reads once the two agree.
   */
  async #repair(link: MemberLink, healthy: MemberLink, known?: Results['getHsmInfo']): Promise<void> {
    const target = link.transport!;
    const source = healthy.transport!;
    const info = known ?? resultOf<'getHsmInfo'>(await target.send({ op: 'getHsmInfo' }));
    const sourceSession = await this.#applianceSession(source);
    if (sourceSession === null) {
      if (info.clusterId === null) throw new HsmError('MEMBER_UNAVAILABLE', `${link.description} is a new member and this client has no appliance password to restore a backup onto it`);
      return; // Without the appliance user the client cannot compare or repair; a supervisor must.
    }
    const sessions: { transport: Transport; session: string }[] = [];
    try {
      if (info.clusterId === null) {
        // CloudHSM's way in: a backup of a healthy member, restored onto this one (the masking
        // key travels only inside backups).
        const { backup } = resultOf<'createBackup'>(await source.send({ op: 'createBackup', session: sourceSession }));
        resultOf<'restoreBackup'>(await target.send({ op: 'restoreBackup', backup }));
        link.epoch += 1;
        link.counters.repairs += 1;
      }
      link.accepting = true;
      const targetSession = (await this.#applianceSession(target))!;
      sessions.push({ transport: target, session: targetSession });
      const from = { transport: source, session: sourceSession };
      const to = { transport: target, session: targetSession };
      for (let attempt = 0; ; attempt++) {
        const [mine, theirs] = (await Promise.all([target.send({ op: 'getSyncStatus', session: targetSession }), source.send({ op: 'getSyncStatus', session: sourceSession })])).map(
          (r) => resultOf<'getSyncStatus'>(r),
        ) as [Results['getSyncStatus'], Results['getSyncStatus']];
        const toTarget = differences(mine, theirs);
        const toSource = differences(theirs, mine);
        if (isEmpty(toTarget) && isEmpty(toSource)) return;
        if (attempt >= 5) throw new HsmError('MEMBER_UNAVAILABLE', `${link.description} still differs from ${healthy.description} after ${attempt} repair passes`);
        await copyAll(toTarget, from, [to]);
        if (!isEmpty(toSource)) {
          // What only the returning member holds is newer than the cluster's: every other member takes it.
          const others = [from];
          for (const l of this.writeMembers()) {
            if (l === link || l === healthy || !l.transport) continue;
            const session = await this.#applianceSession(l.transport).catch(() => null);
            if (session === null) continue;
            sessions.push({ transport: l.transport, session });
            others.push({ transport: l.transport, session });
          }
          await copyAll(toSource, to, others);
          sessions.splice(1).forEach((o) => void o.transport.send({ op: 'logout', session: o.session }));
        }
        link.counters.repairs += 1;
      }
    } finally {
      link.accepting = false;
      await Promise.all([...sessions, { transport: source, session: sourceSession }].map((o) => o.transport.send({ op: 'logout', session: o.session })));
    }
  }

  /**
   * @internal Adds a member slot: starts it, lets `prepare` make it a member (a restore), then
   * compares and repairs it like a returning member before it takes reads.
   */
  async addMember(slot: { start: MemberStarter; description: string }, prepare: (transport: Transport) => Promise<void>): Promise<number> {
    this.#checkOpen();
    const link = new MemberLink(this.#links.length, slot.start, slot.description);
    link.state = 'repairing';
    this.#links.push(link);
    try {
      await this.#bringUp(link, true, prepare);
    } catch (e) {
      link.state = 'removed';
      link.reason = `could not be added: ${e instanceof Error ? e.message : String(e)}`;
      throw e;
    }
    return link.index;
  }

  /**
   * @internal Takes a member out: no new requests go to it, those in flight finish (up to
   * `drainMs`), then its transport is closed. It stays in `status()` as `removed`.
   */
  async removeMember(index: number, drainMs = 30_000): Promise<void> {
    const link = this.#links[index];
    if (!link || link.state === 'removed') return;
    link.state = 'removed';
    link.reason = 'removed from the cluster';
    const deadline = Date.now() + drainMs;
    while (link.outstanding > 0 && Date.now() < deadline) await sleep(5);
    const t = link.transport;
    link.transport = null;
    if (t) await t.close().catch(() => undefined);
  }

  /** @internal The supervisor stopped member `index` itself: route around it at once. */
  memberStopped(index: number, reason: string): void {
    const link = this.#links[index];
    if (link && link.state !== 'down') this.#markDown(link, reason);
  }

  /**
   * @internal Brings every member that is up to the newest version of everything any of them
   * holds (keys, deletions, users, settings), with the appliance user: what each lacks is
   * gathered on the first member, then spread from it. Cheap when they agree (one summary digest
   * each). The supervisor runs it now and then, so that the cluster converges even when no member
   * went down — a copy that did not arrive, a change made on one member only. Resolves with
   * whether they agree, and with what still differs when they do not.
   */
  async reconcile(): Promise<SyncState> {
    this.#checkOpen();
    const links = this.#links.filter((l) => l.state === 'up' && l.transport);
    if (links.length < 2) return { inSync: true, keys: [], users: [], settings: false };
    if (this.#options.appliancePassword === undefined) throw new HsmError('PERMISSION_DENIED', 'reconciling members needs the appliance password (the supervisor has it)');
    const open: { transport: Transport; session: string }[] = [];
    try {
      // Appliance sessions are kept from one run to the next (a login costs a password hash).
      for (const l of links) {
        const kept = this.#reconcileSessions.get(l.index);
        const session = kept && kept.epoch === l.epoch && kept.transport === l.transport ? kept.session : (await this.#applianceSession(l.transport!))!;
        this.#reconcileSessions.set(l.index, { epoch: l.epoch, transport: l.transport!, session });
        open.push({ transport: l.transport!, session });
      }
      const status = async (o: { transport: Transport; session: string }, summaryOnly: boolean) =>
        resultOf<'getSyncStatus'>(await o.transport.send({ op: 'getSyncStatus', session: o.session, ...(summaryOnly ? { summaryOnly } : {}) }));
      const agree = async () => {
        const summaries = await Promise.all(open.map((o) => status(o, true)));
        return summaries.every((x) => x.summary === summaries[0]!.summary);
      };
      if (await agree()) return { inSync: true, keys: [], users: [], settings: false };
      const [hub, ...rest] = open as [{ transport: Transport; session: string }, ...{ transport: Transport; session: string }[]];
      // Gather on the hub what any member holds newer, then spread the hub's state.
      for (const o of rest) await copyAll(differences(await status(hub, false), await status(o, false)), o, [hub]);
      const union = await status(hub, false);
      for (const o of rest) await copyAll(differences(await status(o, false), union), hub, [o]);
      // The full lists again only when something is still not everywhere (changes made meanwhile).
      if (await agree()) return { inSync: true, keys: [], users: [], settings: false };
      const after = await Promise.all(open.map((o) => status(o, false)));
      const left = after.slice(1).map((x) => differences(x, after[0]!));
      return {
        inSync: after.every((x) => x.summary === after[0]!.summary),
        keys: [...new Set(left.flatMap((d) => d.keys))],
        users: [...new Set(left.flatMap((d) => d.users))],
        settings: left.some((d) => d.settings),
      };
    } catch (e) {
      // A session that ended (a member restarted behind the same transport) is made again next time.
      this.#reconcileSessions.clear();
      throw e;
    }
  }

  readonly #reconcileSessions = new Map<number, { epoch: number; transport: Transport; session: string }>();

  /**
   * @internal Brings a member that is up but not (or no longer) in line with the others into the
   * cluster: restore a backup and compare, as after a failure. Used by the local supervisor to join members.
   */
  async resync(index: number, from: number): Promise<void> {
    const link = this.#links[index]!;
    const healthy = this.#links[from];
    if (!healthy) throw new HsmError('MEMBER_UNAVAILABLE', `member ${from}: no such member to copy from`);
    link.state = 'repairing';
    try {
      await this.#repair(link, healthy);
      link.epoch += 1;
      link.state = 'up';
    } catch (e) {
      this.#markDown(link, e instanceof Error ? e.message : String(e));
      throw e;
    }
  }

  // ---- what the cluster says about itself -------------------------------------------------------

  /** Logs in on every member that is up; the session follows members as they come and go. */
  async login(username: string, password: string, options: LoginOptions = {}): Promise<ClusterSessionChannel> {
    this.#checkOpen();
    const channel = new ClusterSessionChannel(this, username, password, options.role, options.mfa);
    await channel.open();
    return channel;
  }

  /** The same request, which needs no login, on every member that is up: one answer each. */
  async askEveryMember<O extends 'getHsmInfo' | 'listUsers' | 'listQuorumTokens' | 'getQuorumSettings'>(op: O): Promise<Results[O][]> {
    this.#checkOpen();
    return Promise.all(this.upMembers().map(async (l) => resultOf<O>(await this.sendTo(l, { op } as Request))));
  }

  /** Activates a never-activated cluster: its unactivated admin `admin` gets `password`. */
  async activate(password: string): Promise<void> {
    this.#checkOpen();
    resultOf<'activateCluster'>(await this.sendOnce({ op: 'activateCluster', password }));
  }

  /** Every up member's own description. */
  hsmInfo(): Promise<Results['getHsmInfo'][]> {
    return this.askEveryMember('getHsmInfo');
  }

  /** The users, with CloudHSM's cluster coverage: `full` when every up member has the user. */
  async listUsers(): Promise<(UserInfo & { clusterCoverage: 'full' | 'inconsistent' })[]> {
    const lists = (await this.askEveryMember('listUsers')).map((r) => r.users);
    const seen = new Map<string, { user: UserInfo; count: number }>();
    for (const list of lists) {
      for (const u of list) {
        const entry = seen.get(u.username);
        if (entry) entry.count += 1;
        else seen.set(u.username, { user: u, count: 1 });
      }
    }
    return [...seen.values()]
      .sort((a, b) => (a.user.username < b.user.username ? -1 : 1))
      .map(({ user, count }) => ({ ...user, clusterCoverage: count === lists.length ? 'full' : 'inconsistent' }));
  }

  /** @internal the retry mode and its backoff, for the session fast path. */
  get retryMode(): 'standard' | 'off' {
    return this.#options.retry;
  }

  /** @internal an unauthenticated request to one member (activation, join). */
  async sendOnce(request: Request): Promise<Response> {
    return (await this.sendBalanced(async () => request)).response;
  }

  /** Background probes' waits: they do not keep the process alive, and closing ends them at once. */
  readonly #sleepers = new Set<() => void>();
  #idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms).unref();
      this.#sleepers.add(wake);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const wake of [...this.#sleepers]) wake();
    await Promise.all(this.#links.map(async (l) => {
      const t = l.transport;
      l.transport = null;
      l.state = 'down';
      l.reason = 'the cluster handle was closed';
      if (t) await t.close().catch(() => undefined);
    }));
    await Promise.all([...this.#probes]);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #checkOpen(): void {
    if (this.#closed) throw new HsmError('MEMBER_CLOSED', 'the cluster has been closed');
  }
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
  readonly #cluster: Cluster;
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

  constructor(cluster: Cluster, username: string, password: string, role: UserRole | undefined, mfa?: MfaSigner) {
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

  /** The member a request must go to because it names a session key, or undefined. */
  #stickyMember(handles: number[]): MemberLink | undefined {
    let index: number | undefined;
    for (const h of handles) {
      const where = this.#sessionKeys.get(h);
      if (where === undefined) continue;
      if (index !== undefined && index !== where) {
        throw new HsmError('KEY_NOT_FOUND', `session keys ${keyRef(h)} and the others named live on different members; session keys cannot be used together across members`);
      }
      index = where;
    }
    if (index === undefined) return undefined;
    const link = this.#cluster.links[index]!;
    if (link.state !== 'up') {
      throw new HsmError('MEMBER_UNAVAILABLE', `session key ${keyRef(handles.find((h) => this.#sessionKeys.get(h) === index)!)} lived on ${link.description}, which is ${link.state}; session keys do not survive their member`);
    }
    return link;
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
    const prepare = async (link: MemberLink) => ({ ...req, session: await this.#tokenFor(link) });
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
    if (SIMPLE.has(req.op) && req.approval === undefined && req.payloadApproval === undefined) {
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
    if (!sticky && this.#coverage.size && handles.some((h) => this.#coverage.has(h))) return null;
    const link = sticky ?? this.#cluster.pick();
    const known = link ? this.#tokens.get(link.index) : undefined;
    if (!link || !known || known.epoch !== link.epoch) return null;
    return this.#cluster.sendTo(link, { ...req, session: known.token }).then(async (response) => {
      if (response.ok) return response.result;
      const code = response.error.code;
      if (code === 'MEMBER_BUSY') {
        if (this.#cluster.retryMode === 'off') throw HsmError.fromWire(response.error);
        link.counters.retries += 1;
        await sleep(backoff(1));
        return this.#sendFull(req, 1);
      }
      if (code === 'MEMBER_UNAVAILABLE') {
        if (!sticky) link.counters.failovers += 1; // the full path goes to another member
        return this.#sendFull(req, 0);
      }
      if (code === 'NOT_LOGGED_IN') return this.#sendFull(req, 0);
      throw HsmError.fromWire(response.error);
    });
  }

  async #sendFull(req: Record<string, unknown> & { op: string }, busyRetriesUsed: number): Promise<unknown> {
    const op = req.op;
    if (op === 'logout') {
      await this.logout();
      return { loggedOut: true };
    }
    const handles = handlesOf(req);
    const sessionKeyMember = this.#sessionKeys.size ? this.#stickyMember(handles) : undefined;
    const consumer = this.#consumerOf(req);
    if (consumer && sessionKeyMember && consumer !== sessionKeyMember) {
      throw new HsmError('QUORUM_TOKEN_INVALID', `approval: the token is used on ${consumer.description}, but the session key it names lives on ${sessionKeyMember.description}`);
    }
    if (!sessionKeyMember && this.#coverage.size) await this.#checkAvailability(handles);

    if (op === 'generateQuorumToken') {
      // One segment from every member, the one that will use the token first (members refuse a
      // token whose first segment is not theirs: one use in the whole cluster). That is the first
      // member up, so that the tokens one request carries (an approval and a registration, or a
      // wrap's two approvals) are used on the same member.
      const ordered = this.#cluster.upMembers();
      const parts = await Promise.all(ordered.map(async (l) => resultOf<'generateQuorumToken'>(await this.#cluster.sendTo(l, { ...req, session: await this.#tokenFor(l) }))));
      const approvalData = new Uint8Array(parts.reduce((n, p) => n + p.approvalData.length, 0));
      let at = 0;
      for (const p of parts) {
        approvalData.set(p.approvalData, at);
        at += p.approvalData.length;
      }
      return { approvalData };
    }
    if (op === 'deleteQuorumTokens') {
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

    if (CREATES_KEYS.has(op)) {
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
    if (CHANGES_KEY.has(op)) {
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
    if (CHANGES_USER.has(op) || op === 'deleteUser') {
      await this.#copyUser((result as { username: string }).username, link);
      return result;
    }
    if (CHANGES_SETTING.has(op)) {
      await this.#copySettings(link);
      return result;
    }
    if (op === 'findKeys' && req.startingToken === undefined) await this.#addSessionKeys(req, link, result as unknown as Results['findKeys']);
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
    return resultOf(await this.#cluster.sendTo(link, { ...req, session: await this.#tokenFor(link) }));
  }

  async everyMember(req: Record<string, unknown> & { op: string }): Promise<unknown[]> {
    const up = this.#cluster.upMembers();
    return Promise.all(up.map(async (l) => resultOf(await this.#cluster.sendTo(l, { ...req, session: await this.#tokenFor(l) }))));
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
      const r = await this.#cluster.sendTo(l, { ...request, session: token });
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
