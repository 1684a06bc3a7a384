/**
 * subtle: the WebCrypto door. `session.crypto` is a standard `Crypto` whose keys live in the HSM.
 *
 * @module
 */
export { HsmCrypto, MAX_RANDOM_VALUES_BYTES, type RandomStats } from './crypto.js';
export { HsmSubtleCrypto } from './subtle.js';
export { HsmCryptoKey } from './key.js';
export { webCryptoError, type WebCryptoErrorName } from './errors.js';
export { installGlobalCrypto } from './global.js';
