/**
 * Where two versions of one thing meet: a key, a user or the cluster settings that arrive from
 * another member (a masked object, a masked user, masked settings) or from a backup restored onto
 * an active member. Every version carries a generation (MemberState.stamp); the larger one wins,
 * and a deletion is a version too (a tombstone). So nothing older ever replaces anything newer:
 * a deleted admin or key does not come back, an old password or quorum value does not return, and
 * restoring an old backup onto a live member rolls nothing back.
 *
 * Rules:
 * - keys: a key's handle is never reused, so a deleted key stays deleted, whatever its copy says;
 *   otherwise the larger generation wins, and equal generations with different content (which
 *   replication can produce when two members apply the same deletion of a user at different
 *   times) are settled by the larger sync digest, so every member settles on the same one;
 * - users: the larger generation wins, deletion included; a user created again after a deletion
 *   is newer than the deletion;
 * - settings: the larger generation wins (ties, from members older than generations, by digest).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { HsmError, keyRef } from './errors.js';
import { contentOf, keyFromContent, type MaskedContent, type MaskedSettings, type MaskedUser } from './masking.js';
import { checkKeyQuota, type MemberState } from './state.js';
import { APPLIANCE_USERNAME } from './protocol.js';
import { defaultQuorumSettings, type MtlsSettings } from './quorum.js';
import { withShare } from './key-store.js';

/** What a version did when it arrived: replaced or added (`applied`), was already here (`same`), or was older (`stale`). */
export type Merged = 'applied' | 'same' | 'stale';

/** The refusal for a version older than what the member holds. */
export function staleError(field: string, what: string): HsmError {
  return new HsmError('MASKED_OBJECT_STALE', `${field}: ${what}; an older copy never replaces a newer one`);
}

/** Brings in a key version. Throws MASKED_OBJECT_STALE with the reason when it is older. */
export function mergeKey(m: MemberState, content: MaskedContent, field = 'maskedObject'): Merged {
  const gen = content.gen ?? 0;
  const ref = keyRef(content.handle);
  const deletedAt = m.keyTombstones.get(content.handle);
  if (deletedAt !== undefined) throw staleError(field, `key ${ref} was deleted on this member; a deleted key never comes back`);
  const owner = m.users.get(content.owner);
  if (!owner || owner.role !== 'crypto-user') {
    throw new HsmError('MASKED_OBJECT_INVALID', `${field}: its owner ${content.owner} is not a crypto user on this member; synchronise users first`);
  }
  const key = keyFromContent(content, (u) => m.users.get(u)?.role === 'crypto-user');
  const existing = m.keys.get(content.handle);
  m.observe(gen);
  if (!existing) {
    checkKeyQuota(m, 1, key.cls === 'secret-key' ? 0 : 1);
    m.keys.add(key);
    return 'applied';
  }
  if (existing.session !== null || existing.owner !== key.owner || existing.cls !== key.cls || existing.type !== key.type || contentOf(existing).material !== content.material) {
    throw new HsmError('HANDLE_IN_USE', `key handle ${ref} holds a different key on this member`);
  }
  if (existing.gen > gen) throw staleError(field, `this member holds a newer version of key ${ref}`);
  if (existing.gen === gen) {
    const mine = m.masking.digest(existing);
    const theirs = m.masking.digest(key);
    if (mine >= theirs) return mine === theirs ? 'same' : 'stale';
  }
  m.keys.delete(existing.handle);
  m.keys.add(key);
  return 'applied';
}

/** Brings in a key's deletion: the key goes (whatever its generation), and its handle is retired here. */
export function mergeKeyTombstone(m: MemberState, handle: number, gen: number): Merged {
  m.observe(gen);
  const known = m.keyTombstones.get(handle);
  const existing = m.keys.get(handle);
  if (existing && existing.session !== null) throw new HsmError('HANDLE_IN_USE', `key handle ${keyRef(handle)} holds a session key on this member`);
  if (existing) m.keys.delete(handle);
  if (known === undefined || gen > known) m.keyTombstones.set(handle, gen);
  return existing || known === undefined ? 'applied' : 'same';
}

/** The generation of what a member holds for `username`: the user's, its deletion's, or -1 for nothing. */
function userGen(m: MemberState, username: string): number {
  const user = m.users.get(username);
  if (user) return user.gen ?? 0;
  return m.userTombstones.get(username) ?? -1;
}

/** Brings in a user version (name, role, password hash, token-sign key). */
export function mergeUser(m: MemberState, incoming: MaskedUser, field = 'maskedUser'): Merged {
  const gen = incoming.gen ?? 0;
  const existing = m.users.get(incoming.username);
  if (existing?.role === 'appliance' || incoming.role === 'appliance' || incoming.username === APPLIANCE_USERNAME) {
    throw new HsmError('PERMISSION_DENIED', 'the appliance user is per member and does not travel');
  }
  m.observe(gen);
  const current = userGen(m, incoming.username);
  if (gen < current) throw staleError(field, `this member holds a newer version of ${incoming.username}${existing ? '' : ' (its deletion)'}`);
  if (gen === current && existing) {
    const mine = m.masking.userDigest(existing);
    const theirs = m.masking.userDigest({ ...incoming, failedLogins: 0 });
    if (mine >= theirs) return mine === theirs ? 'same' : 'stale';
  }
  if (existing) {
    existing.role = incoming.role;
    existing.password = incoming.password;
    existing.tokenSign = incoming.tokenSign ?? null;
    existing.gen = gen;
    existing.failedLogins = 0;
  } else {
    m.users.set(incoming.username, { username: incoming.username, role: incoming.role, password: incoming.password, tokenSign: incoming.tokenSign ?? null, gen, failedLogins: 0 });
    m.userTombstones.delete(incoming.username);
  }
  return 'applied';
}

/**
 * Brings in a user's deletion: the user goes, with their shares; their sessions on this member end
 * (with their session keys and quorum tokens).
 */
export function mergeUserTombstone(m: MemberState, username: string, gen: number, field = 'maskedUser'): Merged {
  m.observe(gen);
  const existing = m.users.get(username);
  if (existing?.role === 'appliance') throw new HsmError('PERMISSION_DENIED', 'the appliance user is per member and does not travel');
  const current = userGen(m, username);
  if (gen < current) throw staleError(field, `this member holds a newer version of ${username}`);
  if (gen === current) return 'same';
  if (existing) {
    for (const s of m.sessions.ofUser(username)) {
      m.keys.dropSession(s.token);
      m.quorumTokens.dropSession(s.token);
      m.sessions.close(s.token);
    }
    m.users.delete(username);
    for (const key of m.keys.values()) key.shared = withShare(key.shared, username, false);
  }
  m.userTombstones.set(username, gen);
  return 'applied';
}

/** Brings in the cluster settings (quorum values and token timeouts). */
export function mergeSettings(m: MemberState, incoming: MaskedSettings, field = 'maskedSettings'): Merged {
  m.observe(incoming.gen);
  if (incoming.gen < m.quorumGen) throw staleError(field, 'this member holds newer cluster settings');
  if (incoming.gen === m.quorumGen) {
    const mine = settingsDigest(m.quorum);
    const theirs = settingsDigest(incoming);
    if (mine >= theirs) return mine === theirs ? 'same' : 'stale';
  }
  m.quorum = { values: { ...defaultQuorumSettings().values, ...incoming.values }, timeouts: { ...incoming.timeouts }, ...(incoming.mtls ? { mtls: structuredClone(incoming.mtls) } : {}) };
  m.quorumGen = incoming.gen;
  return 'applied';
}

/** SHA-256 of the settings that travel (quorum values and timeouts): what sync status compares. */
export function settingsDigest(q: { values: { user: number; quorum: number; cluster?: number }; timeouts: { generated: number; approved: number }; mtls?: MtlsSettings }): string {
  // The cluster value and mTLS join the digest only when set, so settings from before them digest as they did.
  const cluster = (q.values.cluster ?? 1) === 1 ? [] : [q.values.cluster];
  // In a fixed shape: the settings come back from a masked object with their keys reordered.
  const mtls = q.mtls && (q.mtls.anchors.length > 0 || q.mtls.enforcement !== 'none') ? [[q.mtls.enforcement, q.mtls.anchors.map((a) => [a.reference, a.certificate])]] : [];
  return createHash('sha256').update(JSON.stringify([q.values.user, q.values.quorum, q.timeouts.generated, q.timeouts.approved, ...cluster, ...mtls])).digest('hex');
}

/** Runs a merge, counting a stale version as nothing done (for restores, which take what is newer). */
export function takeNewer(merge: () => Merged): Merged {
  try {
    return merge();
  } catch (e) {
    if (e instanceof HsmError && e.code === 'MASKED_OBJECT_STALE') return 'stale';
    throw e;
  }
}
