/**
 * PKCS #11 URIs (RFC 7512) for keys, as OpenSSL's engine, nginx and pkcs11-tool take them.
 *
 * CloudHSM's OpenSSL integration reads its reference ("fake") PEMs itself; a PKCS #11 application
 * names a key by URI instead. libp11 lists the token's private keys and picks one by CKA_ID (or, with
 * no id, by CKA_LABEL), so a URI names a key only when no other key the user sees shares what it is
 * picked by (its label when it has no id: then any other key of that label clashes): the URI is
 * refused then, naming the way out.
 */
import type { KeyInfo } from '../hsm-core/index.js';
import { HsmError } from '../hsm-core/index.js';
import { idBytes } from './objects.js';

/** RFC 7512's percent-encoding of a value: every byte outside unreserved characters. */
function pct(bytes: Buffer): string {
  return [...bytes].map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`)).join('');
}

/** The URI of `key`, a private key among `visible` (every key its user sees). */
export function pkcs11Uri(key: KeyInfo, visible: readonly KeyInfo[]): string {
  const a = key.attributes;
  if (a.class !== 'private-key') throw new HsmError('BAD_REQUEST', `key ${key.keyReference} is a ${a.class}; a PKCS #11 URI here names a private key (OpenSSL and nginx load private keys by URI)`);
  const id = idBytes(a.id);
  const others = visible.filter((k) => k.handle !== key.handle && k.attributes.class === 'private-key');
  const by = id.length ? 'id' : 'label';
  if (!id.length && !a.label) {
    throw new HsmError('BAD_REQUEST', `key ${key.keyReference} has neither an id nor a label, so no URI can name it; give it an id: key set-attribute --filter key-reference=${key.keyReference} --name id --value 0x01`);
  }
  const clash = others.filter((k) => (by === 'id' ? idBytes(k.attributes.id).equals(id) : k.attributes.label === a.label));
  if (clash.length) {
    throw new HsmError(
      'BAD_REQUEST',
      `key ${key.keyReference} shares its ${by} with ${clash.length} other private key(s) (${clash.map((k) => k.keyReference).join(', ')}), so a URI would name the first of them; give it an id of its own: key set-attribute --filter key-reference=${key.keyReference} --name id --value 0x…`,
    );
  }
  const parts = [...(a.label ? [`object=${pct(Buffer.from(a.label, 'utf8'))}`] : []), ...(id.length ? [`id=${pct(id)}`] : []), 'type=private'];
  return `pkcs11:${parts.join(';')}`;
}
