/**
 * Cached test keys. RSA generation costs up to a second per key, so keys are generated once and
 * kept under test/.tmp/keys (ignored by git) for later runs.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CACHE = join(dirname(fileURLToPath(import.meta.url)), '..', '.tmp', 'keys');
const memory = new Map<string, Buffer>();

/** A PKCS #8 DER RSA private key of `bits`, the same one for the same (bits, index). */
export function rsaPkcs8(bits: number, index = 0): Buffer {
  const name = `rsa-${bits}-${index}.pkcs8.der`;
  let der = memory.get(name);
  if (der) return der;
  const file = join(CACHE, name);
  try {
    der = readFileSync(file);
  } catch {
    der = generateKeyPairSync('rsa', { modulusLength: bits }).privateKey.export({ format: 'der', type: 'pkcs8' });
    mkdirSync(CACHE, { recursive: true });
    writeFileSync(file, der);
  }
  memory.set(name, der);
  return der;
}
