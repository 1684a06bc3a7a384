/**
 * The WebCrypto door's test fixture, in a browser: the same interface as test/helpers/door.ts,
 * but the door is strongroom/browser through a relay (one per profile, named by the page in
 * `globalThis.__STRONGROOM_RELAYS__`), and "native" is the browser's own WebCrypto.
 */
import { Buffer } from 'buffer';
import { connectRelay, type RelayConnection } from '../../src/browser/index.js';
import type { CryptoKey, CryptoKeyPair, SubtleCrypto } from '../../src/subtle/types.js';

export type { CryptoKey, CryptoKeyPair, SubtleCrypto };

export const native = globalThis.crypto.subtle as unknown as SubtleCrypto;

export interface DoorFixture {
  session: RelayConnection;
  crypto: RelayConnection['crypto'];
  subtle: SubtleCrypto;
  other: RelayConnection;
  close(): Promise<void>;
}

export const USERS = { app: 'app-password', other: 'other-password' } as const;

export async function openDoor(profile: 'unlimited' | 'cloudhsm' = 'unlimited'): Promise<DoorFixture> {
  const url = (globalThis as unknown as { __STRONGROOM_RELAYS__: Record<string, string> }).__STRONGROOM_RELAYS__[profile]!;
  const session = await connectRelay(url, { username: 'app', password: USERS.app });
  const other = await connectRelay(url, { username: 'other', password: USERS.other });
  return {
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
