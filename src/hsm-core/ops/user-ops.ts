/**
 * Cluster activation, logins, sessions and user management (CLOUDHSM.md §1).
 *
 * Every operation does its slow work (password hashing) first and then checks and changes state
 * in one synchronous step, so two concurrent requests cannot both pass a check that only one of
 * them should.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { HsmError, withArticle } from '../errors.js';
import { liftHint } from '../profiles.js';
import { signedIn, type Handler, type MemberState } from '../state.js';
import { requireSelfOrAdmin, type Caller } from '../access.js';
import {
  LOCKOUT_THRESHOLD,
  checkPasswordRule,
  hashPassword,
  isLocked,
  normaliseUsername,
  verifyPassword,
  type UserRecord,
} from '../users.js';
import { adminApproval, checkMfaAnswer, issueMfaChallenge } from './quorum-ops.js';
import { APPLIANCE_USERNAME, type RequestOf } from '../protocol.js';
import { withShare } from '../key-store.js';

function findUser(m: MemberState, name: string): UserRecord {
  const username = normaliseUsername(name);
  const user = m.users.get(username);
  if (!user) throw new HsmError('USER_NOT_FOUND', `no user named ${username} on this member`);
  return user;
}

/** Makes the unactivated admin the first admin and the member active. */
function activate(m: MemberState, user: UserRecord): void {
  user.role = 'admin';
  user.gen = m.stamp();
  m.lifecycle = 'active';
  m.clusterId = `cluster-${randomBytes(8).toString('hex')}`;
  for (const s of m.sessions.ofUser(user.username)) s.role = 'admin';
}

export const getHsmInfo: Handler<'getHsmInfo'> = (m) => ({
  model: 'hsm2m.medium',
  serialNumber: m.serialNumber,
  firmware: 'strongroom-emulated',
  state: m.lifecycle,
  clusterId: m.clusterId,
  queueLimit: m.queueLimit,
  mode: m.backupKeys.mode,
  clusterAddresses: [...m.addresses],
  profile: m.profile.name,
  memberIndex: m.memberIndex,
  keys: m.keys.size,
  sessionKeys: [...m.keys.values()].filter((k) => k.session !== null).length,
  users: m.users.size,
  maxUsers: Number.isFinite(m.profile.maxUsers) ? m.profile.maxUsers : null,
  sessions: m.sessions.size,
  auditHead: m.audit.head,
  lastChange: m.lastChange,
});

export const activateCluster: Handler<'activateCluster'> = async (m, _caller, req) => {
  if (m.lifecycle === 'active') throw new HsmError('CLUSTER_ALREADY_ACTIVATED', 'the cluster is already active');
  checkPasswordRule(req.password);
  const password = await hashPassword(req.password, m.passwordCost);
  const preco = [...m.users.values()].find((u) => u.role === 'unactivated-admin');
  if (!preco) throw new HsmError('CLUSTER_ALREADY_ACTIVATED', 'the cluster is already active');
  preco.password = password;
  preco.failedLogins = 0;
  activate(m, preco);
  return { activated: true };
};

/**
 * Checks a username, role and password. A wrong password counts towards the lockout; a locked
 * user is refused before the password is checked.
 */
async function checkCredentials(m: MemberState, req: Pick<RequestOf<'login'>, 'username' | 'password' | 'role'>): Promise<UserRecord> {
  const user = findUser(m, req.username);
  if (req.role !== undefined && req.role !== user.role) {
    throw new HsmError('LOGIN_FAILED', `${user.username} is ${withArticle(user.role)}, not ${withArticle(req.role)}`);
  }
  if (isLocked(user)) throw lockedError(user);
  const good = await verifyPassword(req.password, user.password);
  const current = m.users.get(user.username);
  if (current !== user) throw new HsmError('USER_NOT_FOUND', `no user named ${user.username} on this member`);
  if (isLocked(user)) throw lockedError(user);
  if (!good) throw failedLogin(user, 'wrong password');
  return user;
}

function lockedError(user: UserRecord): HsmError {
  return new HsmError('USER_LOCKED', `${user.username} is locked after ${LOCKOUT_THRESHOLD} failed logins; an admin must reset the password`);
}

/** Counts a failed login and says how many are left before the lockout. */
function failedLogin(user: UserRecord, why: string): HsmError {
  user.failedLogins += 1;
  const left = LOCKOUT_THRESHOLD - user.failedLogins;
  return new HsmError(
    'LOGIN_FAILED',
    left > 0
      ? `${why} for ${user.username}; ${left} more failed login${left === 1 ? ' locks' : 's lock'} the user`
      : `${why} for ${user.username}; the user is now locked until an admin resets the password`,
  );
}

export const getMfaToken: Handler<'getMfaToken'> = async (m, _caller, req) => {
  const user = await checkCredentials(m, req);
  if (!user.tokenSign?.mfa) throw new HsmError('MFA_NOT_ENABLED', `${user.username} has no MFA registered; log in with the password alone`);
  return { unsigned: issueMfaChallenge(m, user) };
};

export const login: Handler<'login'> = async (m, _caller, req) => {
  const user = await checkCredentials(m, req);
  try {
    checkMfaAnswer(m, user, req.mfa);
  } catch (e) {
    if (e instanceof HsmError && e.code === 'LOGIN_FAILED') throw failedLogin(user, 'the MFA token did not verify');
    throw e;
  }
  if (m.sessions.size >= m.profile.maxSessions) {
    throw new HsmError('QUOTA_EXCEEDED', `the member has ${m.sessions.size} open sessions; the ${m.profile.name} profile allows ${m.profile.maxSessions}${liftHint(m.profile)}`);
  }
  user.failedLogins = 0;
  const session = m.sessions.open(user.username, user.role);
  return { session: session.token, username: user.username, role: user.role };
};

/** Ends a session: its session keys, quorum tokens, waiting derivations and the session itself. */
function endSession(m: MemberState, caller: Caller): { loggedOut: true } {
  const me = signedIn(caller);
  m.keys.dropSession(me.token);
  m.quorumTokens.dropSession(me.token);
  m.slowWork.cancel(me.token);
  m.sessions.close(me.token);
  return { loggedOut: true };
}

export const logout: Handler<'logout'> = (m, caller) => endSession(m, caller);
export const closeSession: Handler<'closeSession'> = (m, caller) => endSession(m, caller);

export const listUsers: Handler<'listUsers'> = (m) => ({
  users: [...m.users.values()]
    .sort((a, b) => (a.username < b.username ? -1 : 1))
    .map((u) => ({
      username: u.username,
      role: u.role,
      locked: isLocked(u),
      failedLogins: u.failedLogins,
      mfa: u.tokenSign?.mfa === true,
      quorum: u.tokenSign?.quorum === true,
    })),
});

export const createUser: Handler<'createUser'> = async (m, caller, req) => {
  const username = normaliseUsername(req.username);
  checkPasswordRule(req.password);
  const approve = adminApproval(m, signedIn(caller), 'user', req.approval);
  const refuseIfExists = () => {
    if (m.users.has(username)) throw new HsmError('USER_EXISTS', `a user named ${username} already exists`);
    if (m.users.size >= m.profile.maxUsers) {
      throw new HsmError('QUOTA_EXCEEDED', `the member has ${m.users.size} users; the ${m.profile.name} profile allows ${m.profile.maxUsers}${liftHint(m.profile)}`);
    }
  };
  refuseIfExists();
  const password = await hashPassword(req.password, m.passwordCost);
  refuseIfExists();
  approve();
  m.users.set(username, { username, role: req.role, password, failedLogins: 0, gen: m.stamp() });
  // A user created again after a deletion is newer than the deletion.
  m.userTombstones.delete(username);
  return { username, role: req.role };
};

export const deleteUser: Handler<'deleteUser'> = (m, caller, req) => {
  const user = findUser(m, req.username);
  if (user.username === APPLIANCE_USERNAME) throw new HsmError('PERMISSION_DENIED', `${APPLIANCE_USERNAME} is the internal appliance user and cannot be deleted`);
  if (m.sessions.isLoggedIn(user.username)) throw new HsmError('USER_LOGGED_IN', `${user.username} is logged in; they must log out before they can be deleted`);
  const owned = m.keys.ownedBy(user.username);
  if (owned > 0) throw new HsmError('USER_OWNS_KEYS', `${user.username} owns ${owned} key${owned === 1 ? '' : 's'}; delete them before deleting the user`);
  adminApproval(m, signedIn(caller), 'user', req.approval)();
  m.users.delete(user.username);
  m.userTombstones.set(user.username, m.stamp());
  for (const key of m.keys.values()) key.shared = withShare(key.shared, user.username, false);
  return { username: user.username };
};

export const changePassword: Handler<'changePassword'> = async (m, caller, req) => {
  const me = signedIn(caller);
  const self = normaliseUsername(req.username) === me.username;
  requireSelfOrAdmin(me, normaliseUsername(req.username), `only an admin can change another user's password`);
  const user = findUser(m, req.username);
  if (!self) {
    if (user.username === APPLIANCE_USERNAME) throw new HsmError('PERMISSION_DENIED', `${APPLIANCE_USERNAME} is the internal appliance user; its password cannot be changed`);
    if (m.sessions.isLoggedIn(user.username)) {
      throw new HsmError('USER_LOGGED_IN', `${user.username} is logged in; their password cannot change until they log out`);
    }
  }
  checkPasswordRule(req.password);
  const approve = adminApproval(m, me, 'user', req.approval);
  const password = await hashPassword(req.password, m.passwordCost);
  if (m.users.get(user.username) !== user) throw new HsmError('USER_NOT_FOUND', `no user named ${user.username} on this member`);
  if (!self && m.sessions.isLoggedIn(user.username)) {
    throw new HsmError('USER_LOGGED_IN', `${user.username} is logged in; their password cannot change until they log out`);
  }
  approve();
  user.password = password;
  user.failedLogins = 0;
  user.gen = m.stamp();
  if (user.tokenSign && (req.deregisterMfa || req.deregisterQuorum)) {
    // One key serves both, so either deregistration ends the quorum registration (deregistering
    // MFA removes the key itself, CLOUDHSM.md §1.5); MFA stays unless it is deregistered.
    user.tokenSign = user.tokenSign.mfa && !req.deregisterMfa ? { ...user.tokenSign, quorum: false } : null;
  }
  if (user.role === 'unactivated-admin') activate(m, user);
  return { username: user.username, role: user.role };
};

export const getAuditLog: Handler<'getAuditLog'> = (m, _caller, req) => ({
  records: m.audit.read(req.fromSequence ?? 0, req.maxItems ?? 1000),
  head: m.audit.head,
});
