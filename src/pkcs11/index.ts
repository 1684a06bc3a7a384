/**
 * The PKCS #11 door (see server.ts): `servePkcs11` and what an application needs to find it.
 *
 * @module
 */
import { existsSync } from 'node:fs';

export { servePkcs11, type Pkcs11Door, type Pkcs11ServeOptions } from './server.js';
export type { Pkcs11Cluster } from './token.js';

/** Where Debian installs p11-kit's client module (package p11-kit-modules). */
export const P11_KIT_CLIENT = ['/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so', '/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so'].find((p) => existsSync(p)) ?? '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so';

/** The lines an application needs: the server address variable and the module to load. */
export function moduleLines(socket: string): string[] {
  return [`P11_KIT_SERVER_ADDRESS=unix:path=${socket}`, `PKCS #11 module: ${P11_KIT_CLIENT}`];
}
