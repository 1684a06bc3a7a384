/**
 * The cluster as an application sees it: one HSM made of several members (CloudHSM's client SDK,
 * CLOUDHSM.md §4). This file holds the cluster handle: its member links and which member takes
 * a request, failover, probing a member that failed and bringing it back, and membership. Beside
 * it: busy.ts (the one MEMBER_BUSY retry rule), repair.ts (comparing and merging members),
 * channel.ts (one user's session across the members, and replication), member-link.ts.
 *
 * - Load balancing by spare capacity: a request goes to the member with the fewest requests
 *   outstanding relative to its capacity (its queue limit).
 * - A member that answers MEMBER_BUSY (0xBB) is retried with exponential backoff, up to 3 times
 *   (`retry: 'standard'`, as in SDK 5), on whichever member has the most room then.
 * - A member that fails is marked down, requests that are safe to repeat go to another, and the
 *   member is probed in the background; when it answers again it is compared with a healthy
 *   member (sync digests, generations, tombstones) and the two are merged — or, if it is new or
 *   empty, it first gets a backup restored — with the appliance user's credentials, before it
 *   takes traffic.
 *
 * @module
 */
import { HsmError, type Request, type Response, type Results, type UserInfo } from '../hsm-core/face.js';
import { retriesBusy, sleep, waitToRetry } from './busy.js';
import { ClusterSessionChannel, type LoginOptions } from './channel.js';
import { MemberLink, resultOf, type MemberStarter, type MemberStatus } from './member-link.js';
import { Repairs, type SyncState } from './repair.js';
import type { Transport } from './transport.js';

/** No member excluded (a default that allocates nothing on each request). */
const NONE: ReadonlySet<number> = new Set();

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

export class Cluster {
  readonly #links: MemberLink[];
  readonly #options: Required<Omit<ClusterOptions, 'appliancePassword'>> & { appliancePassword?: string };
  #closed = false;
  #probes = new Set<Promise<void>>();
  #roundRobin = 0;
  readonly #repairs: Repairs;

  private constructor(links: MemberLink[], options: ClusterOptions) {
    this.#links = links;
    this.#options = {
      retry: options.retry ?? 'standard',
      keyAvailabilityCheck: links.length > 1 && (options.keyAvailabilityCheck ?? true),
      probeIntervalMs: options.probeIntervalMs ?? 100,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      ...(options.appliancePassword !== undefined ? { appliancePassword: options.appliancePassword } : {}),
    };
    this.#repairs = new Repairs(this, options.appliancePassword);
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
  pick(exclude: ReadonlySet<number> = NONE): MemberLink | undefined {
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

  /**
   * One request to one member, counted; a lost member answers MEMBER_UNAVAILABLE and is marked
   * down. Not an async function: every request passes here, and an async function's promise and
   * continuation are allocated on each call (transports never throw: they answer).
   */
  sendTo(link: MemberLink, request: unknown): Promise<Response> {
    const transport = link.transport;
    if (!transport || (link.state !== 'up' && link.state !== 'repairing')) {
      return Promise.resolve({ ok: false, error: { code: 'MEMBER_UNAVAILABLE', message: `${link.description} is ${link.state}` } });
    }
    link.outstanding += 1;
    link.counters.requests += 1;
    // (Requests that are never answered are failed by the transport's watchdog, not a timer each.)
    return transport.send(request).then((response) => {
      link.outstanding -= 1;
      if (!response.ok) {
        if (response.error.code === 'MEMBER_UNAVAILABLE' && link.transport === transport) this.#markDown(link, response.error.message);
        else if (response.error.code === 'MEMBER_BUSY') link.counters.busy += 1;
      }
      return response;
    });
  }

  /** Sends to one given member, retrying MEMBER_BUSY with backoff as the retry mode says. */
  async sendRetrying(link: MemberLink, request: unknown, busyRetriesUsed = 0): Promise<Response> {
    for (let retries = busyRetriesUsed; ; retries++) {
      const response = await this.sendTo(link, request);
      if (response.ok || response.error.code !== 'MEMBER_BUSY' || !retriesBusy(this.#options.retry, retries)) return response;
      await waitToRetry(link, retries + 1);
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
      if (code === 'MEMBER_BUSY' && retriesBusy(this.#options.retry, busyRetries)) {
        busyRetries += 1;
        await waitToRetry(link, busyRetries);
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
      if (healthy) await this.#repairs.repair(link, healthy, info);
    }
    link.epoch += 1;
    link.reason = null;
    link.state = 'up';
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
   * holds (keys, deletions, users, settings), with the appliance user; see {@link Repairs.reconcile}.
   * The supervisor runs it now and then, so that the cluster converges even when no member went down.
   */
  reconcile(): Promise<SyncState> {
    this.#checkOpen();
    return this.#repairs.reconcile();
  }

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
      await this.#repairs.repair(link, healthy);
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

  /** @internal the retry mode, for the session fast path. */
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
