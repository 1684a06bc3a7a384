/**
 * Quorum tokens, quorum values and timeouts, token-sign registration (quorum and MFA) and MFA
 * login challenges (CLOUDHSM.md §1.5, §1.6). The rules themselves are in quorum.ts.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { HsmError, keyRef, withArticle } from '../errors.js';
import type { KeyRecord } from '../key-store.js';
import {
  APPROVAL_REQUIRED,
  MAX_TOKENS,
  parseTokenSignKey,
  sha256,
  spkiOf,
  verifyDigestSignature,
  type Approval,
} from '../quorum.js';
import type { AdminService, QuorumService } from '../protocol.js';
import { requireSelfOrAdmin } from '../access.js';
import { signedIn, type Handler, type MemberState } from '../state.js';
import type { SessionRecord } from '../sessions.js';
import { normaliseUsername, type UserRecord } from '../users.js';

const NOTHING = (): void => undefined;

/**
 * Checks an approval for an operation that needs `required` approvals (≤ 1: none) and returns
 * what to call when the operation commits: it consumes the token (single use) and writes
 * CN_APPROVE_TOKEN, or throws if the token went meanwhile (an operation that awaits between the
 * check and its commit). Nothing is consumed if the operation is refused later.
 */
export function requireApproval(
  m: MemberState,
  caller: SessionRecord,
  service: QuorumService,
  handle: number | null,
  approval: Approval | undefined,
  required: number,
  eligible: (user: UserRecord) => boolean,
  who: string,
): () => void {
  if (required <= 1) return NOTHING;
  if (!approval) throw new HsmError('QUORUM_APPROVAL_REQUIRED', `${APPROVAL_REQUIRED} (${service} service: ${required} approvals; generate a token with quorum token-sign generate)`);
  const token = m.quorumTokens.find(approval.approvalData, caller, service, handle);
  const digest = sha256(approval.approvalData);
  const approvers = new Set<string>();
  for (const { username: name, signature } of approval.signatures) {
    let username: string;
    try {
      username = normaliseUsername(name);
    } catch {
      throw new HsmError('QUORUM_TOKEN_INVALID', `approval: signature by ${JSON.stringify(name.slice(0, 40))}: not a username`);
    }
    if (approvers.has(username)) continue;
    const user = m.users.get(username);
    if (!user) throw new HsmError('QUORUM_TOKEN_INVALID', `approval: signature by ${username}: no such user`);
    if (!user.tokenSign?.quorum) throw new HsmError('QUORUM_TOKEN_INVALID', `approval: signature by ${username}: they have no registered quorum key`);
    if (!eligible(user)) throw new HsmError('QUORUM_TOKEN_INVALID', `approval: signature by ${username}: only ${who} can approve this token`);
    if (!verifyDigestSignature(user.tokenSign.key, digest, signature)) {
      throw new HsmError('QUORUM_TOKEN_INVALID', `approval: the signature by ${username} does not verify (sign the base64-decoded token, SHA-256, RSA PKCS #1 v1.5, with their registered key)`);
    }
    approvers.add(username);
  }
  if (approvers.size < required) {
    throw new HsmError('QUORUM_APPROVAL_REQUIRED', `${APPROVAL_REQUIRED} (${approvers.size} valid approval${approvers.size === 1 ? '' : 's'} of the ${required} needed)`);
  }
  return () => {
    if (!m.quorumTokens.consume(token.id)) {
      throw new HsmError('QUORUM_TOKEN_INVALID', 'approval: the token was used, deleted or dropped while the operation ran; generate a new one');
    }
    m.audit.append({
      opcode: 'CN_APPROVE_TOKEN',
      sessionHandle: caller.handle,
      user: caller.username,
      userType: caller.role,
      targetUser: null,
      keyHandles: handle === null ? [] : [handle],
      response: 'SUCCESS',
    });
  };
}

/** Approval by admins for the `user` or `quorum` service. */
export function adminApproval(m: MemberState, caller: SessionRecord, service: AdminService, approval: Approval | undefined): () => void {
  return requireApproval(m, caller, service, null, approval, m.quorum.values[service], (u) => u.role === 'admin', 'admins');
}

/** Approval by the users associated with a key (its owner and the users it is shared with). */
export function keyApproval(m: MemberState, caller: SessionRecord, key: KeyRecord, kind: 'manage' | 'use', approval: Approval | undefined): () => void {
  const required = (kind === 'manage' ? key.attrs['manage-key-quorum-value'] : key.attrs['use-key-quorum-value']) ?? 0;
  if (required <= 1) return NOTHING;
  return requireApproval(
    m,
    caller,
    kind === 'manage' ? 'key-management' : 'key-usage',
    key.handle,
    approval,
    required,
    (u) => u.username === key.owner || key.shared.has(u.username),
    `the owner of key ${keyRef(key.handle)} and the users it is shared with`,
  );
}

// ---- tokens -----------------------------------------------------------------------------------

export const generateQuorumToken: Handler<'generateQuorumToken'> = (m, caller, req) => {
  const me = signedIn(caller);
  const keyService = req.service === 'key-management' || req.service === 'key-usage';
  if (keyService) {
    if (me.role !== 'crypto-user') throw new HsmError('PERMISSION_DENIED', `a ${req.service} token is for crypto users`);
    if (req.handle === undefined) throw new HsmError('BAD_REQUEST', `handle: a ${req.service} token names the key it is for`);
    const key = m.keys.get(req.handle);
    if (!key || (key.owner !== me.username && !key.shared.has(me.username))) throw new HsmError('KEY_NOT_FOUND', `no key ${keyRef(req.handle)} that ${me.username} owns or shares`);
  } else {
    if (req.handle !== undefined) throw new HsmError('BAD_REQUEST', `handle: only key-management and key-usage tokens name a key`);
    if ((req.service === 'user' || req.service === 'quorum' || req.service === 'cluster') && me.role !== 'admin') {
      throw new HsmError('PERMISSION_DENIED', `a ${req.service} token is for admins`);
    }
    if (req.service === 'quorum' && m.quorum.values.quorum <= 1) {
      throw new HsmError('QUORUM_NOT_ENABLED', 'the quorum service has quorum value 1, so it needs no token; raise it with quorum token-sign set-quorum-value --service quorum first');
    }
  }
  const approvalData = m.quorumTokens.issue(me, req.service, req.handle ?? null, m.quorum.timeouts.generated);
  return { approvalData };
};

export const listQuorumTokens: Handler<'listQuorumTokens'> = (m) => ({
  tokens: m.quorumTokens.list().map((t) => ({
    username: t.username,
    service: t.service,
    handle: t.handle,
    approvalsRequired: t.service === 'user' || t.service === 'quorum' || t.service === 'cluster' ? m.quorum.values[t.service] : t.handle === null ? 1 : requiredForKey(m, t.service, t.handle),
    approvals: 0,
    secondsLeft: t.secondsLeft,
  })),
  limit: MAX_TOKENS,
});

function requiredForKey(m: MemberState, service: QuorumService, handle: number): number {
  const key = m.keys.get(handle);
  if (!key) return 0;
  return (service === 'key-usage' ? key.attrs['use-key-quorum-value'] : key.attrs['manage-key-quorum-value']) ?? 0;
}

export const deleteQuorumTokens: Handler<'deleteQuorumTokens'> = (m, caller, req) => {
  const me = signedIn(caller);
  const ids = req.approvalData ? new Set(m.quorumTokens.idsIn(req.approvalData)) : null;
  const username = req.username !== undefined ? normaliseUsername(req.username) : undefined;
  if (username !== undefined) requireSelfOrAdmin(me, username, `only an admin can delete another user's tokens`);
  const deleted = m.quorumTokens.delete((t) => {
    if (ids && !ids.has(t.id)) return false;
    if (me.role !== 'admin' && t.username !== me.username) return false;
    if (username !== undefined && t.username !== username) return false;
    return req.service === undefined || t.service === req.service;
  });
  return { deleted };
};

// ---- settings ---------------------------------------------------------------------------------

export const getQuorumSettings: Handler<'getQuorumSettings'> = (m) => ({
  values: { ...m.quorum.values },
  timeouts: { ...m.quorum.timeouts },
});

export const setQuorumValue: Handler<'setQuorumValue'> = (m, caller, req) => {
  const me = signedIn(caller);
  if (req.value > 1) {
    const approvers = [...m.users.values()].filter((u) => u.role === 'admin').length;
    if (req.value > approvers) {
      throw new HsmError('QUORUM_VALUE_INVALID', `value: ${req.value} approvals would need ${req.value} admins, and the cluster has ${approvers}; create more admins first (best practice: M+1)`);
    }
  }
  adminApproval(m, me, 'quorum', req.approval)();
  m.quorum.values[req.service] = req.value;
  m.quorumGen = m.stamp();
  return { service: req.service, value: req.value };
};

export const setQuorumTimeouts: Handler<'setQuorumTimeouts'> = (m, _caller, req) => {
  if (req.generated === undefined && req.approved === undefined) throw new HsmError('BAD_REQUEST', 'name --generated or --approved (seconds)');
  if (req.generated !== undefined) m.quorum.timeouts.generated = req.generated;
  if (req.approved !== undefined) m.quorum.timeouts.approved = req.approved;
  m.quorumGen = m.stamp();
  return { ...m.quorum.timeouts };
};

// ---- token-sign registration ------------------------------------------------------------------

/** Checks a registration: a live registration token of the caller's session, signed by the key (`spki`). */
function checkRegistration(m: MemberState, me: SessionRecord, spki: string, registration: { approvalData: Uint8Array; signature: Uint8Array }): void {
  const token = m.quorumTokens.find(registration.approvalData, me, 'registration', null);
  if (!verifyDigestSignature(spki, sha256(registration.approvalData), registration.signature)) {
    throw new HsmError('QUORUM_TOKEN_INVALID', 'registration: the signed token does not verify under the public key (sign the base64-decoded unsigned token with the matching private key, SHA-256, RSA PKCS #1 v1.5)');
  }
  m.quorumTokens.consume(token.id);
}

export const registerQuorumKey: Handler<'registerQuorumKey'> = (m, caller, req) => {
  const me = signedIn(caller);
  const user = m.users.get(me.username)!;
  const spki = spkiOf(parseTokenSignKey(req.publicKey));
  if (user.tokenSign?.mfa && user.tokenSign.key !== spki) {
    throw new HsmError('KEY_INVALID', `${me.username} uses another key for MFA; the same token-sign key serves MFA and quorum, so register that key (or change MFA first)`);
  }
  checkRegistration(m, me, spki, req.registration);
  user.tokenSign = { key: spki, mfa: user.tokenSign?.mfa ?? false, quorum: true };
  user.gen = m.stamp();
  return { username: user.username, role: user.role };
};

export const changeMfa: Handler<'changeMfa'> = (m, caller, req) => {
  const me = signedIn(caller);
  const username = normaliseUsername(req.username);
  requireSelfOrAdmin(me, username, `only an admin can change another user's MFA`);
  const user = m.users.get(username);
  if (!user) throw new HsmError('USER_NOT_FOUND', `no user named ${username} on this member`);
  if (user.role !== 'admin' && user.role !== 'crypto-user') throw new HsmError('PERMISSION_DENIED', `${username} is ${user.role}; MFA is for admins and crypto users`);
  if (req.role !== undefined && req.role !== user.role) throw new HsmError('USER_NOT_FOUND', `${username} is ${withArticle(user.role)}, not ${withArticle(req.role)}`);
  if (req.deregister) {
    if (req.publicKey || req.registration) throw new HsmError('BAD_REQUEST', 'give either --deregister or a key with its signed token, not both');
    adminApproval(m, me, 'user', req.approval)();
    // The same key serves quorum: deregistering MFA deregisters quorum too (CLOUDHSM.md §1.5).
    user.tokenSign = null;
    user.gen = m.stamp();
    return { username, role: user.role, mfa: false, quorum: false };
  }
  if (!req.publicKey || !req.registration) throw new HsmError('BAD_REQUEST', 'publicKey and registration: give the token-sign public key and the signed registration token, or deregister');
  const spki = spkiOf(parseTokenSignKey(req.publicKey));
  // A key registered for someone else signs their MFA logins and their quorum approvals: an admin
  // who could do that alone could approve in their name. It needs the user service's approval.
  const approve = username !== me.username ? adminApproval(m, me, 'user', req.approval) : NOTHING;
  checkRegistration(m, me, spki, req.registration);
  approve();
  const quorum = req.changeQuorum === true || (user.tokenSign?.quorum === true && user.tokenSign.key === spki);
  user.tokenSign = { key: spki, mfa: true, quorum };
  user.gen = m.stamp();
  return { username, role: user.role, mfa: true, quorum };
};

// ---- MFA login --------------------------------------------------------------------------------

const CHALLENGE_SECONDS = 600;

/** Issues an MFA login challenge to a user whose password was right (see user-ops login). */
export function issueMfaChallenge(m: MemberState, user: UserRecord): Uint8Array {
  const now = Date.now();
  for (const [k, c] of m.mfaChallenges) if (c.expires <= now) m.mfaChallenges.delete(k);
  if (m.mfaChallenges.size >= MAX_TOKENS) throw new HsmError('QUOTA_EXCEEDED', `the member holds ${MAX_TOKENS} unanswered MFA challenges; try again in a few minutes`);
  const unsigned = sha256(Buffer.concat([randomBytes(32), Buffer.from(user.username)]));
  m.mfaChallenges.set(unsigned.toString('hex'), { username: user.username, expires: now + CHALLENGE_SECONDS * 1000 });
  return new Uint8Array(unsigned);
}

/** Whether an MFA answer is good; the challenge is used up either way. */
export function checkMfaAnswer(m: MemberState, user: UserRecord, answer: { unsigned: Uint8Array; signature: Uint8Array } | undefined): void {
  if (!user.tokenSign?.mfa) return;
  if (!answer) {
    throw new HsmError('MFA_REQUIRED', `${user.username} has MFA (token-sign); log in with mfa-token-sign and sign the unsigned token with the registered key`);
  }
  const id = Buffer.from(answer.unsigned).toString('hex');
  const challenge = m.mfaChallenges.get(id);
  m.mfaChallenges.delete(id);
  if (!challenge || challenge.username !== user.username || challenge.expires <= Date.now()) {
    throw new HsmError('LOGIN_FAILED', `the MFA token is not one this member issued to ${user.username}, or it expired or was used; log in again for new tokens`);
  }
  if (!verifyDigestSignature(user.tokenSign.key, Buffer.from(answer.unsigned), answer.signature)) {
    throw new HsmError('LOGIN_FAILED', `the MFA token's signature does not verify under ${user.username}'s registered key`);
  }
}

