/**
 * What every provider of the door changes in webcrypto-core's `ProviderCrypto`, in one place: a
 * provider class of the door is `doorProvider(TheCoreProvider)` plus what its algorithm needs.
 *
 * - Extraction is the HSM's decision: a non-extractable secret or private key is refused by the
 *   member (and audited), not only here. Public keys are public; the door keeps their flag.
 * - A key of another algorithm, or without the usage, is the spec's InvalidAccessError
 *   (webcrypto-core reports the first as an unrecognised algorithm name).
 * - The spec's names where webcrypto-core's checks throw a class the spec does not use: a usage
 *   the algorithm does not have, or none at all, is a SyntaxError (webcrypto-core: TypeError),
 *   an unknown hash a NotSupportedError (webcrypto-core: its OperationError).
 *
 * @module
 */
import { OperationError as CoreOperationError, type ProviderCrypto } from 'webcrypto-core';
import { withArticle } from '../../hsm-core/face.js';
import { refusal } from '../errors.js';
import type { Algorithm, AlgorithmIdentifier, CryptoKey, KeyFormat, KeyUsage } from '../types.js';

// A mixin's base must accept any constructor arguments (TypeScript's rule for mixin classes).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ProviderClass = abstract new (...args: any[]) => ProviderCrypto;

/** What {@link doorProvider} adds: the door's versions of webcrypto-core's checks. */
export interface DoorChecks {
  checkExportKey(format: KeyFormat, key: CryptoKey): void;
  checkCryptoKey(key: CryptoKey, usage?: KeyUsage): void;
  checkKeyUsages(usages: KeyUsage[], allowed: KeyUsage[]): void;
  checkGenerateKey(algorithm: Algorithm, extractable: boolean, keyUsages: KeyUsage[]): void;
  checkHashAlgorithm(algorithm: AlgorithmIdentifier, hashAlgorithms: string[]): void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function doorProvider<Base extends ProviderClass>(base: Base): Base & (abstract new (...args: any[]) => DoorChecks) {
  abstract class DoorProvider extends base {
    override checkExportKey(format: KeyFormat, key: CryptoKey): void {
      this.checkKeyFormat(format);
      this.checkCryptoKey(key);
      if (key.type === 'public' && !key.extractable) throw refusal('InvalidAccessError', 'the key was imported with extractable=false');
    }

    override checkKeyUsages(usages: KeyUsage[], allowed: KeyUsage[]): void {
      for (const u of usages) {
        if (!allowed.includes(u)) throw refusal('SyntaxError', `keyUsages: ${u} is not a usage of ${this.name} keys (allowed: ${allowed.join(', ') || 'none'})`);
      }
    }

    override checkGenerateKey(algorithm: Algorithm, _extractable: boolean, keyUsages: KeyUsage[]): void {
      // webcrypto-core's steps in the spec's order (the algorithm and its parameters, then the
      // usages), with the spec's SyntaxError where webcrypto-core throws a TypeError.
      this.checkAlgorithmName(algorithm);
      this.checkGenerateKeyParams(algorithm);
      if (!keyUsages?.length) throw refusal('SyntaxError', 'keyUsages: a new key needs at least one usage');
      const allowed = Array.isArray(this.usages) ? this.usages : [...this.usages.privateKey, ...this.usages.publicKey];
      this.checkKeyUsages(keyUsages, allowed);
    }

    override checkAlgorithmName(algorithm: Algorithm): void {
      // The name as the provider spells it (the usual case) needs no case-folded copies.
      if (algorithm.name !== this.name) super.checkAlgorithmName(algorithm);
    }

    override checkHashAlgorithm(algorithm: AlgorithmIdentifier, hashAlgorithms: string[]): void {
      if (hashAlgorithms.includes((algorithm as Algorithm).name)) return;
      try {
        super.checkHashAlgorithm(algorithm as never, hashAlgorithms);
      } catch (e) {
        throw e instanceof CoreOperationError ? refusal('NotSupportedError', e.message) : e;
      }
    }

    override checkCryptoKey(key: CryptoKey, usage?: KeyUsage): void {
      const name = key.algorithm.name;
      if (name !== this.name && name.toUpperCase() !== this.name.toUpperCase()) {
        throw refusal('InvalidAccessError', `the key is ${withArticle(key.algorithm.name)} key, not ${this.name}`);
      }
      if (usage && !key.usages.includes(usage)) {
        throw refusal('InvalidAccessError', `the key's usages (${key.usages.join(', ') || 'none'}) do not include ${usage}`);
      }
    }
  }
  return DoorProvider;
}
