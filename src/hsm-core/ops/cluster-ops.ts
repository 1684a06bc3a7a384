/**
 * What members of one cluster exchange besides masked key objects: users as masked users (name,
 * role, password hash and token-sign key under the cluster's masking key) or their tombstones,
 * the cluster settings as masked settings, and where the members are. Each carries its
 * generation, and an older version never replaces a newer one (merge.ts). New
 * members join, and members that missed too much are brought back, by restoring a backup of an
 * existing member (backup-ops.ts): the cluster's masking key travels only inside backups.
 *
 * @module
 */
import { isManager, requireSelfOrManager } from '../access.js';
import { HsmError } from '../errors.js';
import { signedIn, type Handler } from '../state.js';
import { normaliseUsername } from '../users.js';
import { mergeSettings, mergeUser, mergeUserTombstone } from '../merge.js';

export const extractMaskedUser: Handler<'extractMaskedUser'> = (m, caller, req) => {
  const session = signedIn(caller);
  const username = normaliseUsername(req.username);
  requireSelfOrManager(session, username, `only an admin, the appliance user or ${username} may extract ${username}`);
  const user = m.users.get(username);
  if (!user) {
    // A deleted user travels as its tombstone.
    const deletedAt = m.userTombstones.get(username);
    if (deletedAt !== undefined && session.role !== 'crypto-user') return { maskedUser: m.masking.sealUserTombstone(username, deletedAt), deleted: true };
    throw new HsmError('USER_NOT_FOUND', `no user named ${username} on this member`);
  }
  if (user.role === 'appliance') throw new HsmError('PERMISSION_DENIED', 'the appliance user is per member and does not travel');
  return { maskedUser: m.masking.sealUser(user), deleted: false };
};

export const insertMaskedUser: Handler<'insertMaskedUser'> = (m, caller, req) => {
  const session = signedIn(caller);
  const incoming = m.masking.openUser(req.maskedUser);
  const manager = isManager(session);
  if ('deleted' in incoming) {
    if (!manager) throw new HsmError('PERMISSION_DENIED', 'only an admin or the appliance user may delete users');
    return { username: incoming.username, deleted: true, merged: mergeUserTombstone(m, incoming.username, incoming.gen) };
  }
  requireSelfOrManager(session, incoming.username, `only an admin, the appliance user or ${incoming.username} may insert ${incoming.username}`);
  const existing = m.users.get(incoming.username);
  if (!manager && (!existing || existing.role !== incoming.role)) {
    throw new HsmError('PERMISSION_DENIED', existing ? `${incoming.username} cannot change their own role` : 'only an admin or the appliance user may add users');
  }
  return { username: incoming.username, deleted: false, merged: mergeUser(m, incoming) };
};

/** The cluster settings (quorum values and token timeouts), sealed for the other members. */
export const extractMaskedSettings: Handler<'extractMaskedSettings'> = (m) => ({
  maskedSettings: m.masking.sealSettings({ values: { ...m.quorum.values }, timeouts: { ...m.quorum.timeouts }, ...(m.quorum.mtls ? { mtls: structuredClone(m.quorum.mtls) } : {}), gen: m.quorumGen }),
});

export const insertMaskedSettings: Handler<'insertMaskedSettings'> = (m, _caller, req) => ({
  merged: mergeSettings(m, m.masking.openSettings(req.maskedSettings)),
});

export const setClusterAddresses: Handler<'setClusterAddresses'> = (m, _caller, req) => {
  m.addresses = [...new Set(req.addresses)];
  return { addresses: [...m.addresses] };
};
