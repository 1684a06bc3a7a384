/**
 * An installation's backup secrets, kept in its cluster folder: the service key (CloudHSM's AKBK)
 * and the manufacturer key (MKBK, which in CloudHSM is burned into the hardware; here it is made
 * at the installation's first start and is its "hardware" secret). A member's backups open only
 * with both (backup-ops.ts), so these two keys are what a copy of the folder must not give away.
 *
 * - With a passphrase (`STRONGROOM_MASTER_PASSPHRASE`): both are kept only wrapped
 *   (AES-256-GCM) under a key derived from the passphrase with scrypt, in
 *   `installation-keys.json`. A copy of the folder then opens neither a member's store (their
 *   storage keys are wrapped the same way) nor a backup, not even restored onto a member the
 *   copier runs.
 * - Without one: `service.key` and `manufacturer.key`, readable by their owner only. Then the
 *   folder is the secret: whoever copies it can open every key. `strongroom up` says so.
 * - Without a folder: made for the run and forgotten.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HsmError, writeFileDurably } from '../hsm-core/client.js';

export interface InstallationKeys {
  serviceKey: Uint8Array;
  manufacturerKey: Uint8Array;
  /** How the folder keeps them. */
  protection: 'passphrase' | 'files' | 'memory';
}

export const INSTALLATION_FILES = { wrapped: 'installation-keys.json', service: 'service.key', manufacturer: 'manufacturer.key' } as const;

const AAD = Buffer.from('strongroom:installation-keys:v1');
const KDF = { log2N: 15, r: 8, p: 1 } as const;

function refuse(dir: string, why: string): never {
  throw new HsmError('BAD_REQUEST', `cluster folder ${dir}: ${why}; nothing was changed`);
}

function kek(passphrase: string, salt: Buffer, kdf: { log2N: number; r: number; p: number }): Buffer {
  return scryptSync(passphrase, salt, 32, { N: 2 ** kdf.log2N, r: kdf.r, p: kdf.p, maxmem: 256 * 2 ** kdf.log2N * kdf.r + (1 << 20) });
}

function readRaw(dir: string, name: string): Buffer {
  const file = join(dir, name);
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) refuse(dir, `${name} is readable by others (mode ${mode.toString(8)}); chmod 600 it`);
  const key = readFileSync(file);
  if (key.length !== 32) refuse(dir, `${name} is not a 32-byte key`);
  return key;
}

function writeRaw(dir: string, name: string, key: Buffer): void {
  writeFileDurably(join(dir, name), key, 0o600);
}

/** The installation keys of `dataDir` (made at its first start), or keys for one run without a folder. */
export function installationKeys(dataDir: string | null, passphrase: string | undefined): InstallationKeys {
  if (dataDir === null) return { serviceKey: randomBytes(32), manufacturerKey: randomBytes(32), protection: 'memory' };
  const wrappedFile = join(dataDir, INSTALLATION_FILES.wrapped);
  const serviceFile = join(dataDir, INSTALLATION_FILES.service);
  const manufacturerFile = join(dataDir, INSTALLATION_FILES.manufacturer);
  if (existsSync(wrappedFile)) {
    if (passphrase === undefined) refuse(dataDir, `its backup keys are protected by a passphrase (${INSTALLATION_FILES.wrapped}); set STRONGROOM_MASTER_PASSPHRASE`);
    let file: { kdf?: { log2N: number; r: number; p: number; salt: string }; wrapped?: string };
    try {
      file = JSON.parse(readFileSync(wrappedFile, 'utf8')) as typeof file;
    } catch {
      return refuse(dataDir, `${INSTALLATION_FILES.wrapped} is not valid JSON`);
    }
    if (!file.kdf || typeof file.wrapped !== 'string') refuse(dataDir, `${INSTALLATION_FILES.wrapped} lacks its kdf or wrapped keys`);
    const blob = Buffer.from(file.wrapped!, 'base64');
    const key = kek(passphrase!, Buffer.from(file.kdf!.salt, 'base64'), file.kdf!);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, blob.subarray(0, 12));
      decipher.setAAD(AAD);
      decipher.setAuthTag(blob.subarray(blob.length - 16));
      const plain = Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
      if (plain.length !== 64) refuse(dataDir, `${INSTALLATION_FILES.wrapped} holds keys of the wrong size`);
      return { serviceKey: new Uint8Array(plain.subarray(0, 32)), manufacturerKey: new Uint8Array(plain.subarray(32)), protection: 'passphrase' };
    } catch (e) {
      if (e instanceof HsmError) throw e;
      return refuse(dataDir, 'wrong passphrase (its backup keys do not open with it)');
    } finally {
      key.fill(0);
    }
  }
  if (existsSync(serviceFile)) {
    if (passphrase !== undefined) refuse(dataDir, `its backup keys are not protected by a passphrase (${INSTALLATION_FILES.service}), but one was given; start without it`);
    const serviceKey = readRaw(dataDir, INSTALLATION_FILES.service);
    // A folder from before manufacturer keys were per installation gets its own now (its older
    // backups were made under the former shared one and do not restore any more).
    if (!existsSync(manufacturerFile)) writeRaw(dataDir, INSTALLATION_FILES.manufacturer, randomBytes(32));
    return { serviceKey, manufacturerKey: readRaw(dataDir, INSTALLATION_FILES.manufacturer), protection: 'files' };
  }
  const serviceKey = randomBytes(32);
  const manufacturerKey = randomBytes(32);
  if (passphrase === undefined) {
    writeRaw(dataDir, INSTALLATION_FILES.manufacturer, manufacturerKey);
    writeRaw(dataDir, INSTALLATION_FILES.service, serviceKey);
    return { serviceKey, manufacturerKey, protection: 'files' };
  }
  if (passphrase.length < 8) throw new HsmError('BAD_REQUEST', 'passphrase: at least 8 characters');
  const salt = randomBytes(16);
  const key = kek(passphrase, salt, KDF);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(AAD);
  const plain = Buffer.concat([serviceKey, manufacturerKey]);
  const wrapped = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  plain.fill(0);
  key.fill(0);
  writeFileDurably(wrappedFile, JSON.stringify({ format: 1, kdf: { ...KDF, salt: salt.toString('base64') }, wrapped: wrapped.toString('base64') }, null, 2) + '\n', 0o600);
  return { serviceKey, manufacturerKey, protection: 'passphrase' };
}
