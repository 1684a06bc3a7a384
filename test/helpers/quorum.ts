/**
 * Quorum approvals as the people who give them make them: each user's token-sign key (RSA 2048,
 * cached), registration, and signatures over a token's SHA-256 the way
 * `openssl pkeyutl -sign -pkeyopt digest:sha256` makes them.
 */
import { constants, createHash, createPrivateKey, createPublicKey, privateEncrypt, type KeyObject } from 'node:crypto';
import { startLocalCluster, type HsmSession, type LocalCluster } from '../../src/index.js';
import { rsaPkcs8 } from './keys.js';

const DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export const tokenOf = (approvalData: Uint8Array): Buffer => createHash('sha256').update(approvalData).digest();

export function signDigest(key: KeyObject, digest: Uint8Array): Uint8Array {
  return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([DIGEST_INFO, digest])));
}

/** Token-sign keys by name: each name gets its own cached RSA-2048 key. */
const names: string[] = [];
export function tokenSignKey(name: string): { privateKey: KeyObject; publicPem: Uint8Array } {
  let index = names.indexOf(name);
  if (index < 0) index = names.push(name) - 1;
  const privateKey = createPrivateKey({ key: rsaPkcs8(2048, 100 + index), format: 'der', type: 'pkcs8' });
  return { privateKey, publicPem: new TextEncoder().encode(createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string) };
}

/** Registers `keyName`'s key (default: the session user's own) as the session user's quorum key. */
export async function registerQuorum(session: HsmSession, keyName = session.username): Promise<void> {
  const { approvalData } = await session.send({ op: 'generateQuorumToken', service: 'registration' });
  const k = tokenSignKey(keyName);
  await session.send({ op: 'registerQuorumKey', publicKey: k.publicPem, registration: { approvalData, signature: signDigest(k.privateKey, tokenOf(approvalData)) } });
}

/** An approval of `approvalData` signed by each named user's key (or by `keyName`'s for every one). */
export function approve(approvalData: Uint8Array, users: string[], keyName?: string) {
  return { approvalData, signatures: users.map((u) => ({ username: u, signature: signDigest(tokenSignKey(keyName ?? u).privateKey, tokenOf(approvalData)) })) };
}

/**
 * Three members with three admins (admin, admin2, admin3) and two crypto users (alice, bob), each
 * password `<name>-password`; the named users are logged in with their quorum keys registered.
 */
export async function startQuorumCluster(registered: string[]): Promise<{ cluster: LocalCluster; sessions: Record<string, HsmSession> }> {
  const cluster = await startLocalCluster({
    members: 3,
    adminPassword: 'admin-password',
    passwordCost: 10,
    users: [
      { username: 'admin2', password: 'admin2-password', role: 'admin' },
      { username: 'admin3', password: 'admin3-password', role: 'admin' },
      { username: 'alice', password: 'alice-password', role: 'crypto-user' },
      { username: 'bob', password: 'bob-password', role: 'crypto-user' },
    ],
  });
  const sessions: Record<string, HsmSession> = {};
  for (const name of registered) {
    sessions[name] = await cluster.login(name, `${name}-password`);
    await registerQuorum(sessions[name]!);
  }
  return { cluster, sessions };
}

/** A token ECDSA P-256 pair of `owner`'s whose signing needs 2 approvals, shared with `sharedWith`. */
export async function twoApproverSigningKey(owner: HsmSession, sharedWith: string): Promise<{ privateHandle: number; publicHandle: number }> {
  const pair = await owner.send({
    op: 'generateKeyPair',
    keyType: 'ec',
    curve: 'secp256r1',
    privateAttributes: { token: true, sign: true, 'use-key-quorum-value': 2 },
    publicAttributes: { token: true, verify: true },
  });
  await owner.send({ op: 'shareKey', handle: pair.privateHandle, username: sharedWith });
  return pair;
}
