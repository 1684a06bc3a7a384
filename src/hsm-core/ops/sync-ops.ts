/**
 * Synchronisation between members of one cluster: token keys travel as masked objects (see
 * masking.ts) and members compare sync digests to find what differs. Session keys never travel.
 *
 * @module
 */
import { visibleKey } from '../access.js';
import { HsmError, keyRef } from '../errors.js';
import { checkKeyQuota, signedIn, type Handler } from '../state.js';
import { createHash } from 'node:crypto';
import { keyFromContent } from '../masking.js';

export const extractMaskedObject: Handler<'extractMaskedObject'> = (m, caller, req) => {
  const key = visibleKey(m.keys, signedIn(caller), req.handle);
  if (key.session !== null) {
    throw new HsmError('ATTRIBUTE_FORBIDS_OPERATION', `key ${keyRef(key.handle)} is a session key (token=false); session keys stay on the member that made them`);
  }
  return { maskedObject: m.masking.seal(key) };
};

export const insertMaskedObject: Handler<'insertMaskedObject'> = (m, _caller, req) => {
  const content = m.masking.open(req.maskedObject);
  const owner = m.users.get(content.owner);
  if (!owner || owner.role !== 'crypto-user') {
    throw new HsmError('MASKED_OBJECT_INVALID', `maskedObject: its owner ${content.owner} is not a crypto user on this member; synchronise users first`);
  }
  const key = keyFromContent(content, (u) => m.users.get(u)?.role === 'crypto-user');
  const existing = m.keys.get(content.handle);
  if (existing) {
    if (existing.session === null && m.masking.digest(existing) === m.masking.digest(key)) return { handle: existing.handle };
    throw new HsmError('HANDLE_IN_USE', `key handle ${keyRef(content.handle)} holds a different key on this member`);
  }
  checkKeyQuota(m, 1, key.cls === 'secret-key' ? 0 : 1);
  m.keys.add(key);
  return { handle: key.handle };
};

export const getSyncStatus: Handler<'getSyncStatus'> = (m, caller) => {
  signedIn(caller);
  const keys = [...m.keys.values()]
    .filter((k) => k.session === null)
    .sort((a, b) => a.handle - b.handle)
    .map((k) => ({ handle: k.handle, digest: m.masking.digest(k) }));
  const users = [...m.users.values()]
    .filter((u) => u.role !== 'appliance')
    .sort((a, b) => (a.username < b.username ? -1 : 1))
    .map((u) => ({ username: u.username, digest: m.masking.userDigest(u) }));
  const q = m.quorum;
  const settings = createHash('sha256').update(JSON.stringify([q.values.user, q.values.quorum, q.timeouts.generated, q.timeouts.approved])).digest('hex');
  return { keys, users, settings };
};
