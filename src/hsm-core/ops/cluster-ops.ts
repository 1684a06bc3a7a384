/**
 * Joining a cluster: how a new member gets the cluster's masking key, users and token keys from
 * an existing member without any of them being in the clear outside a member.
 *
 * 1. The new member offers a join key (`getJoinKey`): the public half of an X25519 key pair it
 *    keeps inside.
 * 2. An existing member, asked by an admin or the appliance user (`cloneMember`), seals its
 *    cluster state to that public key: ECDH with a fresh X25519 key, HKDF-SHA256, AES-256-GCM.
 * 3. The new member opens the clone with its private half (`installClone`) and becomes a member
 *    of the cluster: same cluster id, masking key, users and token keys, same handles.
 *
 * This is CloudHSM's "restore a backup of an existing HSM onto the new HSM" in one step, done by
 * whoever runs the members (`startLocalCluster`, `strongroom up`). A member that is already in a
 * cluster accepts a clone only from its own cluster (same masking key) and only from an admin or
 * appliance session: that is how a member that missed changes is brought back in line.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import type { Caller } from '../access.js';
import { HsmError } from '../errors.js';
import { Masking, contentOf, keyFromContent, type MaskedContent, type MaskedUser } from '../masking.js';
import { signedIn, type Handler, type MemberState } from '../state.js';
import { APPLIANCE_USERNAME, normaliseUsername } from '../users.js';

const MAGIC = Buffer.from('SRCL1');
const INFO = 'strongroom:clone:v1';

interface CloneContent {
  v: 1;
  clusterId: string;
  profile: string;
  masking: string;
  addresses: string[];
  users: MaskedUser[];
  keys: MaskedContent[];
}

function rawX25519(key: KeyObject): Buffer {
  // The last 32 bytes of an X25519 SPKI are the public value.
  return key.export({ format: 'der', type: 'spki' }).subarray(-32);
}

function channelKey(privateKey: KeyObject, publicKey: KeyObject, senderRaw: Buffer, receiverRaw: Buffer): Buffer {
  const shared = diffieHellman({ privateKey, publicKey });
  try {
    return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([senderRaw, receiverRaw]), INFO, 32));
  } finally {
    shared.fill(0);
  }
}

function inCluster(m: MemberState): boolean {
  return m.clusterId !== null;
}

export function requireManager(caller: Caller, what: string): void {
  if (!caller) throw new HsmError('NOT_LOGGED_IN', `${what}: this member is in a cluster; log in first as an admin or the appliance user`);
  if (caller.role !== 'admin' && caller.role !== 'appliance') {
    throw new HsmError('PERMISSION_DENIED', `${what} is not allowed for a ${caller.role} on a member that is in a cluster; it needs an admin or the appliance user`);
  }
}

export const getJoinKey: Handler<'getJoinKey'> = (m, caller) => {
  if (inCluster(m)) requireManager(caller, 'getJoinKey');
  if (!m.joinKey) m.joinKey = generateKeyPairSync('x25519').privateKey;
  return { joinKey: new Uint8Array(createPublicKey(m.joinKey).export({ format: 'der', type: 'spki' })) };
};

export const cloneMember: Handler<'cloneMember'> = (m, caller, req) => {
  signedIn(caller);
  if (m.lifecycle !== 'active' || m.clusterId === null) {
    throw new HsmError('CLUSTER_NOT_ACTIVE', 'this member is not in an active cluster; activate the cluster first');
  }
  let receiver: KeyObject;
  try {
    receiver = createPublicKey({ key: Buffer.from(req.joinKey), format: 'der', type: 'spki' });
  } catch {
    throw new HsmError('BAD_REQUEST', 'joinKey: not an X25519 public key (SPKI DER) from getJoinKey');
  }
  if (receiver.asymmetricKeyType !== 'x25519') throw new HsmError('BAD_REQUEST', `joinKey: expected an X25519 key, got ${receiver.asymmetricKeyType}`);
  const secret = m.masking.exportSecret();
  const content: CloneContent = {
    v: 1,
    clusterId: m.clusterId,
    profile: m.profile.name,
    masking: secret.toString('base64'),
    addresses: [...m.addresses],
    users: [...m.users.values()].filter((u) => u.role !== 'appliance').map((u) => ({ username: u.username, role: u.role, password: u.password })),
    keys: [...m.keys.values()].filter((k) => k.session === null).map(contentOf),
  };
  secret.fill(0);
  const sender = generateKeyPairSync('x25519');
  const senderRaw = rawX25519(sender.publicKey);
  const key = channelKey(sender.privateKey, receiver, senderRaw, rawX25519(receiver));
  const plain = Buffer.from(JSON.stringify(content));
  content.masking = '';
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(MAGIC);
  const body = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  plain.fill(0);
  key.fill(0);
  return { clone: new Uint8Array(Buffer.concat([MAGIC, senderRaw, iv, body])) };
};

function openClone(m: MemberState, blob: Uint8Array): CloneContent {
  const refuse = (why: string): never => {
    throw new HsmError('CLONE_INVALID', `clone: ${why}`);
  };
  if (!m.joinKey) return refuse('this member has not offered a join key; call getJoinKey on it first');
  const data = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (data.length < MAGIC.length + 32 + 12 + 16 || !MAGIC.equals(data.subarray(0, MAGIC.length))) refuse('not a Strongroom clone');
  const senderRaw = data.subarray(MAGIC.length, MAGIC.length + 32);
  const iv = data.subarray(MAGIC.length + 32, MAGIC.length + 44);
  const body = data.subarray(MAGIC.length + 44);
  const sender = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), senderRaw]), format: 'der', type: 'spki' });
  const key = channelKey(m.joinKey, sender, Buffer.from(senderRaw), rawX25519(createPublicKey(m.joinKey)));
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(MAGIC);
  decipher.setAuthTag(body.subarray(body.length - 16));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
  } catch {
    return refuse('it was not sealed to this member\'s current join key, or it was altered');
  } finally {
    key.fill(0);
  }
  try {
    return JSON.parse(plain.toString('utf8')) as CloneContent;
  } finally {
    plain.fill(0);
  }
}

export const installClone: Handler<'installClone'> = (m, caller, req) => {
  if (inCluster(m)) requireManager(caller, 'installClone');
  const content = openClone(m, req.clone);
  if (content.profile !== m.profile.name) {
    throw new HsmError('CLONE_INVALID', `clone: it comes from a ${content.profile} member and this one runs the ${m.profile.name} profile`);
  }
  const masking = new Masking(Buffer.from(content.masking, 'base64'));
  if (inCluster(m) && (content.clusterId !== m.clusterId || !masking.equals(m.masking))) {
    throw new HsmError('CLONE_INVALID', `clone: it comes from cluster ${content.clusterId}; this member belongs to ${m.clusterId}`);
  }
  // Everything is parsed before anything changes.
  const keys = content.keys.map((k) => keyFromContent(k));

  const appliance = m.users.get(APPLIANCE_USERNAME);
  m.sessions.clear();
  m.keys.clear();
  m.users.clear();
  if (appliance) m.users.set(APPLIANCE_USERNAME, appliance);
  for (const u of content.users) m.users.set(u.username, { ...u, failedLogins: 0 });
  for (const k of keys) m.keys.add(k);
  m.masking = masking;
  m.addresses = [...content.addresses];
  m.clusterId = content.clusterId;
  m.lifecycle = 'active';
  m.joinKey = null;
  return { clusterId: content.clusterId, users: content.users.length, keys: keys.length };
};

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
