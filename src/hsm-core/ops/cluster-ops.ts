/**
 * What members of one cluster exchange besides masked key objects: users as masked users (name,
 * role and password hash under the cluster's masking key), and where the members are. New
 * members join, and members that missed too much are brought back, by restoring a backup of an
 * existing member (backup-ops.ts): the cluster's masking key travels only inside backups.
 *
 * @module
 */
import type { Caller } from '../access.js';
import { HsmError } from '../errors.js';
import { signedIn, type Handler } from '../state.js';
import { normaliseUsername } from '../users.js';

export function requireManager(caller: Caller, what: string): void {
  if (!caller) throw new HsmError('NOT_LOGGED_IN', `${what}: this member is in a cluster; log in first as an admin or the appliance user`);
  if (caller.role !== 'admin' && caller.role !== 'appliance') {
    throw new HsmError('PERMISSION_DENIED', `${what} is not allowed for a ${caller.role} on a member that is in a cluster; it needs an admin or the appliance user`);
  }
}

export const extractMaskedUser: Handler<'extractMaskedUser'> = (m, caller, req) => {
  const session = signedIn(caller);
  const username = normaliseUsername(req.username);
  if (session.role !== 'admin' && session.role !== 'appliance' && session.username !== username) {
    throw new HsmError('PERMISSION_DENIED', `only an admin, the appliance user or ${username} may extract ${username}`);
  }
  const user = m.users.get(username);
  if (!user) throw new HsmError('USER_NOT_FOUND', `no user named ${username} on this member`);
  if (user.role === 'appliance') throw new HsmError('PERMISSION_DENIED', 'the appliance user is per member and does not travel');
  return { maskedUser: m.masking.sealUser(user) };
};

export const insertMaskedUser: Handler<'insertMaskedUser'> = (m, caller, req) => {
  const session = signedIn(caller);
  const user = m.masking.openUser(req.maskedUser);
  if (session.role !== 'admin' && session.role !== 'appliance' && session.username !== user.username) {
    throw new HsmError('PERMISSION_DENIED', `only an admin, the appliance user or ${user.username} may insert ${user.username}`);
  }
  const existing = m.users.get(user.username);
  if (existing?.role === 'appliance' || user.role === 'appliance') throw new HsmError('PERMISSION_DENIED', 'the appliance user is per member and does not travel');
  if (existing && session.role === 'crypto-user' && existing.role !== user.role) {
    throw new HsmError('PERMISSION_DENIED', `${user.username} cannot change their own role`);
  }
  if (!existing && session.role === 'crypto-user') throw new HsmError('PERMISSION_DENIED', 'only an admin or the appliance user may add users');
  if (existing) {
    existing.role = user.role;
    existing.password = user.password;
    existing.tokenSign = user.tokenSign ?? null;
    existing.failedLogins = 0;
  } else {
    m.users.set(user.username, { ...user, failedLogins: 0 });
  }
  return { username: user.username };
};

export const setClusterAddresses: Handler<'setClusterAddresses'> = (m, _caller, req) => {
  m.addresses = [...new Set(req.addresses)];
  return { addresses: [...m.addresses] };
};
