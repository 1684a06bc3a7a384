/**
 * Bringing members to the same state (CloudHSM's sync status): what one member lacks of
 * another (by generation; a key's deletion always wins), copying it across with appliance
 * sessions, repairing a member that comes back or joins, and comparing every member that is up.
 *
 * @module
 */
import { HsmError, withField, type Results } from '../hsm-core/face.js';
import { resultOf, type MemberLink } from './member-link.js';
import type { Transport } from './transport.js';
import { sleep } from './busy.js';

/** Whether the members that are up agree, and if not, the keys and users (and settings) that still differ. */
export interface SyncState {
  inSync: boolean;
  keys: number[];
  users: string[];
  settings: boolean;
}

/** What one member must take from another to agree with it: keys (or their deletions), users (or theirs), settings. */
export interface Differences {
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

/** A status's key versions in handle order, as parallel arrays (a digest of null: a deletion). */
interface KeyVersions {
  handles: number[];
  gens: number[];
  digests: (string | null)[];
}

/**
 * A status's keys and deletions merged in handle order, a deletion in place of a live entry with
 * its handle; null when either list is not in strictly rising handle order (as members send them).
 */
function keyVersions(s: Results['getSyncStatus']): KeyVersions | null {
  const { keys, deletedKeys } = s;
  const out: KeyVersions = { handles: [], gens: [], digests: [] };
  let i = 0;
  let j = 0;
  let last = -Infinity;
  while (i < keys.length || j < deletedKeys.length) {
    const live = keys[i];
    const dead = deletedKeys[j];
    const deletion = dead !== undefined && (live === undefined || dead.handle <= live.handle);
    const handle = deletion ? dead.handle : live!.handle;
    if (!(handle > last)) return null;
    last = handle;
    out.handles.push(handle);
    out.gens.push(deletion ? dead.gen : live!.gen);
    out.digests.push(deletion ? null : live!.digest);
    if (deletion && live?.handle === handle) i += 1;
    if (deletion) j += 1;
    else i += 1;
  }
  return out;
}

/** The keys whose version in `theirs` wins over `mine`'s, by one walk of both in handle order. */
function keysToTake(mine: KeyVersions, theirs: KeyVersions): number[] {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < theirs.handles.length; i++) {
    const handle = theirs.handles[i]!;
    while (j < mine.handles.length && mine.handles[j]! < handle) j += 1;
    const mineHas = j < mine.handles.length && mine.handles[j] === handle;
    if (newer(mineHas ? { gen: mine.gens[j]!, digest: mine.digests[j]! } : undefined, { gen: theirs.gens[i]!, digest: theirs.digests[i]! }, true)) out.push(handle);
  }
  return out;
}

/** The keys whose version in `theirs` wins over `mine`'s, through maps: for statuses whose lists are in another order. */
function keysToTakeAnyOrder(mine: Results['getSyncStatus'], theirs: Results['getSyncStatus']): number[] {
  const keysOf = (s: Results['getSyncStatus']) => {
    const out = new Map<number, Version>(s.keys.map((k) => [k.handle, { gen: k.gen, digest: k.digest }]));
    for (const d of s.deletedKeys) out.set(d.handle, { gen: d.gen, digest: null });
    return out;
  };
  const [myKeys, theirKeys] = [keysOf(mine), keysOf(theirs)];
  return [...theirKeys].filter(([h, v]) => newer(myKeys.get(h), v, true)).map(([h]) => h);
}

/**
 * @internal What `mine` lacks of `theirs`: every key (in handle order, when both list their keys in
 * it, as members do), user and setting where their version wins.
 */
export function differences(mine: Results['getSyncStatus'], theirs: Results['getSyncStatus']): Differences {
  // The same summary is the same status, entry for entry: nothing to compare (at 100,000 keys the
  // comparison of a member that just joined took half a second of an in-process cluster's thread).
  if (typeof mine.summary === 'string' && mine.summary === theirs.summary) return { keys: [], users: [], settings: false };
  const usersOf = (s: Results['getSyncStatus']) => {
    const out = new Map<string, Version>(s.users.map((u) => [u.username, { gen: u.gen, digest: u.digest }]));
    for (const d of s.deletedUsers) if (!out.has(d.username)) out.set(d.username, { gen: d.gen, digest: null });
    return out;
  };
  // Keys by one walk of both lists in handle order: with 100,000 keys, maps of both took about
  // 170 ms a comparison.
  const [myVersions, theirVersions] = [keyVersions(mine), keyVersions(theirs)];
  const [myUsers, theirUsers] = [usersOf(mine), usersOf(theirs)];
  return {
    keys: myVersions && theirVersions ? keysToTake(myVersions, theirVersions) : keysToTakeAnyOrder(mine, theirs),
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
      const r = await t.transport.send(withField(request, 'session', t.session));
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

/** What repairs need of the cluster: its member links, and those that take changes. */
export interface RepairHost {
  readonly links: readonly MemberLink[];
  writeMembers(): MemberLink[];
}

/** Repairs and comparisons of a cluster's members, with the appliance user (when the client has its password). */
/** Whether every status carries the same summary (one that carries none agrees with nothing). */
function sameSummaries(statuses: readonly Results['getSyncStatus'][]): boolean {
  return statuses.every((x) => typeof x.summary === 'string' && x.summary === statuses[0]!.summary);
}

/** How long a comparison waits for changes on their way to members before it compares every key (see Repairs.reconcile). */
const SETTLE_MS = 20;

export class Repairs {
  readonly #members: RepairHost;
  readonly #appliancePassword: string | undefined;

  constructor(members: RepairHost, appliancePassword: string | undefined) {
    this.#members = members;
    this.#appliancePassword = appliancePassword;
  }

  /** Logs in as the appliance user on a member; null without the appliance password. */
  async applianceSession(transport: Transport): Promise<string | null> {
    if (this.#appliancePassword === undefined) return null;
    const r = resultOf<'login'>(await transport.send({ op: 'login', username: 'app_user', password: this.#appliancePassword }));
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
  async repair(link: MemberLink, healthy: MemberLink, known?: Results['getHsmInfo']): Promise<void> {
    const target = link.transport!;
    const source = healthy.transport!;
    const info = known ?? resultOf<'getHsmInfo'>(await target.send({ op: 'getHsmInfo' }));
    const sourceSession = await this.applianceSession(source);
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
      const targetSession = (await this.applianceSession(target))!;
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
          for (const l of this.#members.writeMembers()) {
            if (l === link || l === healthy || !l.transport) continue;
            const session = await this.applianceSession(l.transport).catch(() => null);
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
   * Brings every member that is up to the newest version of everything any of them
   * holds (keys, deletions, users, settings), with the appliance user: what each lacks is
   * gathered on the first member, then spread from it. Cheap when they agree (one summary digest
   * each). The supervisor runs it now and then, so that the cluster converges even when no member
   * went down — a copy that did not arrive, a change made on one member only. Resolves with
   * whether they agree, and with what still differs when they do not.
   */
  async reconcile(): Promise<SyncState> {
    const links = this.#members.links.filter((l) => l.state === 'up' && l.transport);
    if (links.length < 2) return { inSync: true, keys: [], users: [], settings: false };
    if (this.#appliancePassword === undefined) throw new HsmError('PERMISSION_DENIED', 'reconciling members needs the appliance password (the supervisor has it)');
    const open: { transport: Transport; session: string }[] = [];
    try {
      // Appliance sessions are kept from one run to the next (a login costs a password hash).
      for (const l of links) {
        const kept = this.#reconcileSessions.get(l.index);
        const session = kept && kept.epoch === l.epoch && kept.transport === l.transport ? kept.session : (await this.applianceSession(l.transport!))!;
        this.#reconcileSessions.set(l.index, { epoch: l.epoch, transport: l.transport!, session });
        open.push({ transport: l.transport!, session });
      }
      const status = async (o: { transport: Transport; session: string }, summaryOnly: boolean) =>
        resultOf<'getSyncStatus'>(await o.transport.send({ op: 'getSyncStatus', session: o.session, ...(summaryOnly ? { summaryOnly } : {}) }));
      const agree = async () => {
        const summaries = await Promise.all(open.map((o) => status(o, true)));
        return sameSummaries(summaries);
      };
      if (await agree()) return { inSync: true, keys: [], users: [], settings: false };
      // A change on its way to every member (applied on one, not yet on another) makes their
      // summaries differ for a moment. Asked again a little later they agree, without the full
      // comparison (every key's version from every member, twice): at 100,000 keys that held an
      // in-process cluster's thread for about a third of a second.
      await sleep(SETTLE_MS);
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
        inSync: sameSummaries(after),
        keys: [...new Set(left.flatMap((d) => d.keys))],
        users: [...new Set(left.flatMap((d) => d.users))],
        settings: left.some((d) => d.settings),
      };
    } catch (e) {
      // Every session is made again next time (one may have ended: a member restarted behind the
      // same transport). Those still open are logged out, so members do not collect one per failure.
      const kept = [...this.#reconcileSessions.values()];
      this.#reconcileSessions.clear();
      await Promise.allSettled(kept.map((k) => k.transport.send({ op: 'logout', session: k.session })));
      throw e;
    }
  }

  readonly #reconcileSessions = new Map<number, { epoch: number; transport: Transport; session: string }>();
}
