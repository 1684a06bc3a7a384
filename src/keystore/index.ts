/**
 * keystore: the KeyStore door (Java's KeyStore in TypeScript, CloudHSM's semantics) and an
 * issuing CA whose keys live in the HSM.
 *
 * @module
 */
export { IssuingCa, generateHsmKeyPair, type CaKeyAlgorithm, type CaOptions, type LeafOptions, type HsmKeyPair } from './ca.js';
export { KeyStore, type EntryType } from './keystore.js';
