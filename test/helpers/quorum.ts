/**
 * Quorum approvals as the people who give them make them: each user's token-sign key (RSA 2048,
 * cached), registration, and signatures over a token's SHA-256 the way
 * `openssl pkeyutl -sign -pkeyopt digest:sha256` makes them.
 */
import { constants, createHash, createPrivateKey, createPublicKey, privateEncrypt, type KeyObject } from 'node:crypto';
import type { HsmSession } from '../../src/index.js';
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
