/**
 * Fixtures for the WebCrypto door: a local cluster with two crypto users, a logged-in session
 * for each, and Node's native WebCrypto to compare against.
 */
import { webcrypto } from 'node:crypto';
import { startLocalCluster, type HsmSession, type LocalCluster, type ProfileName } from '../../src/index.js';
import type { HsmCrypto } from '../../src/subtle/index.js';
import type { CryptoKey, CryptoKeyPair, SubtleCrypto } from '../../src/subtle/types.js';

export type { CryptoKey, CryptoKeyPair, SubtleCrypto };

export const native = webcrypto.subtle as unknown as SubtleCrypto;

export interface DoorFixture {
  cluster: LocalCluster;
  session: HsmSession;
  crypto: HsmCrypto;
  subtle: SubtleCrypto;
  /** A second crypto user's session on the same cluster. */
  other: HsmSession;
  close(): Promise<void>;
}

export const USERS = { app: 'app-password', other: 'other-password' } as const;

/**
 * Where the door's cluster runs: one in-process member by default; `STRONGROOM_DOOR=worker` or
 * `STRONGROOM_DOOR=tls` runs the same tests on two members of that transport
 * (test/subtle/topologies.test.ts does, and compares the results).
 */
function topology(): { transport: 'in-process' | 'worker' | 'tls'; members: number } {
  const door = process.env.STRONGROOM_DOOR ?? 'in-process';
  if (door !== 'in-process' && door !== 'worker' && door !== 'tls') throw new Error(`STRONGROOM_DOOR: in-process, worker or tls, not ${door}`);
  return { transport: door, members: door === 'in-process' ? 1 : 2 };
}

/**
 * One cluster per profile for the whole test process (starting two TLS members for every test
 * file is most of what the door's tests would cost on them): each fixture logs its two users in
 * anew, and its close() logs them out, which ends their session keys. The cluster itself lives
 * until the process ends.
 */
const clusters = new Map<ProfileName, Promise<LocalCluster>>();

function sharedCluster(profile: ProfileName): Promise<LocalCluster> {
  let cluster = clusters.get(profile);
  if (!cluster) {
    cluster = startLocalCluster({
      adminPassword: 'admin-password',
      passwordCost: 10, // the door's tests are not about password hashing
      syncIntervalMs: 0,
      ...topology(),
      profile,
      users: [
        { username: 'app', password: USERS.app, role: 'crypto-user' },
        { username: 'other', password: USERS.other, role: 'crypto-user' },
      ],
    });
    clusters.set(profile, cluster);
  }
  return cluster;
}

export async function openDoor(profile: ProfileName = 'unlimited'): Promise<DoorFixture> {
  const cluster = await sharedCluster(profile);
  const session = await cluster.login('app', USERS.app);
  const other = await cluster.login('other', USERS.other);
  return {
    cluster,
    session,
    other,
    crypto: session.crypto,
    subtle: session.crypto.subtle as unknown as SubtleCrypto,
    close: async () => {
      await session.logout();
      await other.logout();
    },
  };
}

export function buf(data: ArrayBuffer | ArrayBufferView): Buffer {
  return ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data);
}

export const text = (s: string) => new TextEncoder().encode(s);
