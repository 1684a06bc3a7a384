/**
 * `strongroom/register` in an app that cannot be changed: jose uses `globalThis.crypto`, which
 * the import replaced with an HSM-backed Crypto. Run with the crypto user in the environment:
 *
 *   HSM_USER=app HSM_PASSWORD=app-password node --import tsx samples/register-jose.ts
 */
import 'strongroom/register';
import { SignJWT, jwtVerify } from 'jose';
import { HsmCrypto } from 'strongroom/subtle';

console.log(`globalThis.crypto is Strongroom's: ${globalThis.crypto instanceof HsmCrypto}`);

// Unchanged application code from here on: plain WebCrypto and jose.
const { privateKey, publicKey } = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('5m').sign(privateKey);
const { payload } = await jwtVerify(jwt, publicKey);
console.log(`JWT verified, sub=${payload.sub}`);

try {
  await crypto.subtle.exportKey('pkcs8', privateKey);
} catch (e) {
  console.log(`private key export refused: ${(e as Error).name}: ${(e as Error).message}`);
}
