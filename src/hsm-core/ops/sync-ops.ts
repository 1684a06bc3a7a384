/**
 * Synchronisation between members of one cluster: token keys travel as masked objects (see
 * masking.ts), deletions as masked tombstones, and members compare sync digests, generations and
 * tombstones to find what differs. A session key travels only to its own session's login on
 * another member (sealed apart, so it can never become a token key). Whatever arrives is merged by
 * generation (merge.ts): an older copy of a key, or a copy of a deleted key, is refused as stale.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { canSee } from '../access.js';
import { HsmError, keyRef } from '../errors.js';
import { mergeKey, mergeKeyTombstone, settingsDigest } from '../merge.js';
import { checkKeyQuota, signedIn, type Handler, type MemberState } from '../state.js';
import { keyFromContent, type MaskedContent } from '../masking.js';
import type { Results } from '../protocol.js';
import type { SessionRecord } from '../sessions.js';
import type { KeyRecord } from '../key-store.js';
import type { UserRecord } from '../users.js';
import { KEYS_A_TURN, nextTurn, turnOfItsOwn, usesThreadPool } from '../mechanisms/pool.js';

export const extractMaskedObject: Handler<'extractMaskedObject'> = (m, caller, req) => {
  const me = signedIn(caller);
  const key = m.keys.get(req.handle);
  if (!key || !canSee(me, key)) {
    // A deleted token key travels as its tombstone (which says only that the handle is gone).
    const deletedAt = m.keyTombstones.get(req.handle);
    if (!key && deletedAt !== undefined) return { maskedObject: m.masking.sealKeyTombstone(req.handle, deletedAt), deleted: true };
    throw new HsmError('KEY_NOT_FOUND', `no key ${keyRef(req.handle)} that ${me.username} can see`);
  }
  // A session key (which only its own session sees) moves only within that session: to the same
  // user's login on another member of the cluster (the cluster client does this when a call
  // combines keys of two members).
  if (key.session !== null) return { maskedObject: m.masking.sealSessionKey(key), deleted: false };
  return { maskedObject: m.masking.seal(key), deleted: false };
};

export const insertMaskedObject: Handler<'insertMaskedObject'> = (m, caller, req) => {
  const moved = m.masking.openSessionKey(req.maskedObject);
  if (moved) return insertSessionKey(m, signedIn(caller), moved);
  const content = m.masking.open(req.maskedObject);
  if ('deleted' in content) {
    const merged = mergeKeyTombstone(m, content.handle, content.gen);
    return { handle: content.handle, deleted: true, merged };
  }
  const merged = mergeKey(m, content);
  return { handle: content.handle, deleted: false, merged };
};

export const getSyncStatus: Handler<'getSyncStatus'> = (m, caller, req) => {
  signedIn(caller);
  if (req.summaryOnly && m.syncSummary !== undefined) {
    return { summary: m.syncSummary, keys: [], users: [], settings: settingsDigest(m.quorum), settingsGen: m.quorumGen, deletedKeys: [], deletedUsers: [] };
  }
  // On a member that shares its thread, in a turn of its own: a cluster asks all its members at once.
  return usesThreadPool() ? digestsMade(m).then(turnOfItsOwn).then(() => syncStatus(m, req)) : syncStatus(m, req);
};

/**
 * Makes the sync digests of token keys that have none yet (a member's first comparison, or the
 * first after keys came in), {@link KEYS_A_TURN} a turn of the event loop: the status, made in one
 * turn, then finds them made. At a member's first comparison with 100,000 keys, making them all in
 * the status's turn held an in-process member's thread for about 1.5 s.
 */
async function digestsMade(m: MemberState): Promise<void> {
  let made = 0;
  for (const key of m.keys.values()) {
    if (key.session !== null || m.masking.hasDigest(key)) continue;
    m.masking.digest(key);
    if (++made % KEYS_A_TURN === 0) await nextTurn();
  }
}

/** The member's token keys in the order of their handles (mostly the order they came in: then not sorted again). */
function tokenKeysInOrder(m: MemberState): KeyRecord[] {
  const keys: KeyRecord[] = [];
  let inOrder = true;
  for (const key of m.keys.values()) {
    if (key.session !== null) continue;
    if (inOrder && keys.length > 0 && key.handle < keys[keys.length - 1]!.handle) inOrder = false;
    keys.push(key);
  }
  return inOrder ? keys : keys.sort((a, b) => a.handle - b.handle);
}

/**
 * One digest of a member's whole sync status: every token key's handle, generation and digest,
 * every user's name, generation and digest, the settings and the tombstones, each in order, a line
 * each, hashed in pieces of 64 KiB. Members that agree give the same one. A cluster asks for it
 * every 2 s once anything changed: hashing the status as one JSON text of objects made for it took
 * 170 ms at 100,000 keys.
 */
function summaryOf(
  m: MemberState,
  keys: { records: readonly KeyRecord[]; digests: readonly string[] },
  users: { records: readonly UserRecord[]; digests: readonly string[] },
  deletedKeys: readonly [number, number][],
  deletedUsers: readonly [string, number][],
): string {
  const hash = createHash('sha256');
  let text = '';
  const line = (next: string) => {
    text += next;
    if (text.length < 1 << 16) return;
    hash.update(text);
    text = '';
  };
  keys.records.forEach((k, i) => line(`k ${k.handle} ${k.gen} ${keys.digests[i]}\n`));
  users.records.forEach((u, i) => line(`u ${JSON.stringify(u.username)} ${u.gen ?? 0} ${users.digests[i]}\n`));
  line(`s ${settingsDigest(m.quorum)} ${m.quorumGen}\n`);
  for (const [handle, gen] of deletedKeys) line(`dk ${handle} ${gen}\n`);
  for (const [username, gen] of deletedUsers) line(`du ${JSON.stringify(username)} ${gen}\n`);
  return hash.update(text).digest('hex');
}

/**
 * A member's sync status, all of it read in one turn (its digests made, or most of them: see
 * digestsMade). Each digest is looked up once, for the summary and the lists both; the lists'
 * objects are made only when they are asked for (at 100,000 keys they tripled a summary's time).
 */
function syncStatus(m: MemberState, req: { summaryOnly?: boolean }): Results['getSyncStatus'] {
  const keyRecords = tokenKeysInOrder(m);
  const keys = { records: keyRecords, digests: keyRecords.map((k) => m.masking.digest(k)) };
  const userRecords = [...m.users.values()].filter((u) => u.role !== 'appliance').sort((a, b) => (a.username < b.username ? -1 : 1));
  const users = { records: userRecords, digests: userRecords.map((u) => m.masking.userDigest(u)) };
  const deletedKeys = [...m.keyTombstones].sort((a, b) => a[0] - b[0]);
  const deletedUsers = [...m.userTombstones].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const summary = summaryOf(m, keys, users, deletedKeys, deletedUsers);
  m.syncSummary = summary;
  const settings = settingsDigest(m.quorum);
  if (req.summaryOnly) return { summary, keys: [], users: [], settings, settingsGen: m.quorumGen, deletedKeys: [], deletedUsers: [] };
  return {
    keys: keyRecords.map((k, i) => ({ handle: k.handle, digest: keys.digests[i]!, gen: k.gen })),
    users: userRecords.map((u, i) => ({ username: u.username, digest: users.digests[i]!, gen: u.gen ?? 0 })),
    settings,
    settingsGen: m.quorumGen,
    deletedKeys: deletedKeys.map(([handle, gen]) => ({ handle, gen })),
    deletedUsers: deletedUsers.map(([username, gen]) => ({ username, gen })),
    summary,
  };
}

/** A session key arriving from its session's login on another member: it joins the caller's session here, under its handle. */
function insertSessionKey(m: MemberState, me: SessionRecord, content: MaskedContent): Results['insertMaskedObject'] {
  if (me.username !== content.owner) {
    throw new HsmError('PERMISSION_DENIED', `maskedObject: session key ${keyRef(content.handle)} belongs to ${content.owner}'s session; only that user's session takes it`);
  }
  if (m.keys.get(content.handle)) throw new HsmError('HANDLE_IN_USE', `key handle ${keyRef(content.handle)} is already in use on this member`);
  const key = keyFromContent(content, (u) => m.users.get(u)?.role === 'crypto-user', me.token);
  checkKeyQuota(m, 1, key.cls === 'secret-key' ? 0 : 1);
  m.keys.add(key);
  return { handle: key.handle, deleted: false, merged: 'applied' };
}
