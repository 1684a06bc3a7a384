/**
 * WebCrypto's types, from Node's own declarations (the project compiles without the DOM library,
 * so these names are imported where they are used rather than assumed to be global).
 *
 * @module
 */
import type { webcrypto } from 'node:crypto';

export type KeyUsage = webcrypto.KeyUsage;
export type KeyFormat = webcrypto.KeyFormat;
export type KeyType = webcrypto.KeyType;
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type JsonWebKey = webcrypto.JsonWebKey;
export type Algorithm = webcrypto.Algorithm;
export type AlgorithmIdentifier = webcrypto.AlgorithmIdentifier;
export type KeyAlgorithm = webcrypto.KeyAlgorithm;
export type BufferSource = webcrypto.BufferSource;
export type AesKeyGenParams = webcrypto.AesKeyGenParams;
export type AesKeyAlgorithm = webcrypto.AesKeyAlgorithm;
export type HmacKeyGenParams = webcrypto.HmacKeyGenParams;
export type HmacImportParams = webcrypto.HmacImportParams;
export type HmacKeyAlgorithm = webcrypto.HmacKeyAlgorithm;
export type HkdfParams = webcrypto.HkdfParams;
export type Pbkdf2Params = webcrypto.Pbkdf2Params;
export type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;
export type RsaHashedImportParams = webcrypto.RsaHashedImportParams;
export type RsaHashedKeyAlgorithm = webcrypto.RsaHashedKeyAlgorithm;
export type RsaPssParams = webcrypto.RsaPssParams;
export type RsaOaepParams = webcrypto.RsaOaepParams;
export type EcKeyGenParams = webcrypto.EcKeyGenParams;
export type EcKeyImportParams = webcrypto.EcKeyImportParams;
export type EcKeyAlgorithm = webcrypto.EcKeyAlgorithm;
export type EcdsaParams = webcrypto.EcdsaParams;
export type EcdhKeyDeriveParams = webcrypto.EcdhKeyDeriveParams;
export type SubtleCrypto = webcrypto.SubtleCrypto;
export type Crypto = webcrypto.Crypto;
