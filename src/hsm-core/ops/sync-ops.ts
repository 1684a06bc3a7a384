/**
 * Synchronisation between members of one cluster: token keys travel as masked objects (see
 * masking.ts), deletions as masked tombstones, and members compare sync digests, generations and
 * tombstones to find what differs. Session keys never travel. Whatever arrives is merged by
 * generation (merge.ts): an older copy of a key, or a copy of a deleted key, is refused as stale.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { canSee } from '../access.js';
import { HsmError, keyRef } from '../errors.js';
import { mergeKey, mergeKeyTombstone, settingsDigest } from '../merge.js';
import { signedIn, type Handler } from '../state.js';

export const extractMaskedObject: Handler<'extractMaskedObject'> = (m, caller, req) => {
  const me = signedIn(caller);
  const key = m.keys.get(req.handle);
  if (!key || !canSee(me, key)) {
    // A deleted token key travels as its tombstone (which says only that the handle is gone).
    const deletedAt = m.keyTombstones.get(req.handle);
    if (!key && deletedAt !== undefined) return { maskedObject: m.masking.sealKeyTombstone(req.handle, deletedAt), deleted: true };
    throw new HsmError('KEY_NOT_FOUND', `no key ${keyRef(req.handle)} that ${me.username} can see`);
  }
  if (key.session !== null) {
    throw new HsmError('ATTRIBUTE_FORBIDS_OPERATION', `key ${keyRef(key.handle)} is a session key (token=false); session keys stay on the member that made them`);
  }
  return { maskedObject: m.masking.seal(key), deleted: false };
};

export const insertMaskedObject: Handler<'insertMaskedObject'> = (m, _caller, req) => {
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
  const keys = [...m.keys.values()]
    .filter((k) => k.session === null)
    .sort((a, b) => a.handle - b.handle)
    .map((k) => ({ handle: k.handle, digest: m.masking.digest(k), gen: k.gen }));
  const users = [...m.users.values()]
    .filter((u) => u.role !== 'appliance')
    .sort((a, b) => (a.username < b.username ? -1 : 1))
    .map((u) => ({ username: u.username, digest: m.masking.userDigest(u), gen: u.gen ?? 0 }));
  const status = {
    keys,
    users,
    settings: settingsDigest(m.quorum),
    settingsGen: m.quorumGen,
    deletedKeys: [...m.keyTombstones].sort((a, b) => a[0] - b[0]).map(([handle, gen]) => ({ handle, gen })),
    deletedUsers: [...m.userTombstones].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([username, gen]) => ({ username, gen })),
  };
  // One digest of all of it: members that agree give the same one.
  const summary = createHash('sha256').update(JSON.stringify(status)).digest('hex');
  return req.summaryOnly ? { summary, keys: [], users: [], settings: status.settings, settingsGen: status.settingsGen, deletedKeys: [], deletedUsers: [] } : { ...status, summary };
};
