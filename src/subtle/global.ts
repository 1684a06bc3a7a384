/**
 * Installing a `Crypto` as `globalThis.crypto`, for libraries that only ever use the global (jose,
 * for one) and apps that cannot be changed. `strongroom/register` uses it; so can tests.
 *
 * @module
 */
import type { HsmCrypto } from './crypto.js';
import { HsmCryptoKey } from './key.js';

/**
 * Makes `crypto` the global `crypto` (and `CryptoKey` the global `CryptoKey`, so `instanceof`
 * checks accept door keys). Returns a function that puts the previous ones back.
 */
export function installGlobalCrypto(crypto: HsmCrypto): () => void {
  const g = globalThis as Record<string, unknown>;
  const previous = ['crypto', 'CryptoKey'].map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)] as const);
  Object.defineProperty(g, 'crypto', { value: crypto, configurable: true, writable: true, enumerable: true });
  Object.defineProperty(g, 'CryptoKey', { value: HsmCryptoKey, configurable: true, writable: true, enumerable: false });
  return () => {
    for (const [name, descriptor] of previous) {
      if (descriptor) Object.defineProperty(g, name, descriptor);
      else delete g[name];
    }
  };
}
