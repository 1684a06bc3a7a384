/**
 * Certificates and data objects (CKO_CERTIFICATE, CKO_DATA) kept beside the HSM's keys. The HSM
 * holds keys only (as CloudHSM's does, whose KeyStore keeps certificates outside it too); PKCS #11
 * applications write certificates next to their keys, and Java shows a private key only when a
 * certificate with its CKA_ID exists. Token objects go to one file per cluster and user in the
 * door's folder (written whole and renamed into place, 0600); session objects live with their
 * connection. They are public data (certificates, application data), never key material.
 *
 * Handles: 0x40000000 and up, apart from the HSM's key handles.
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFileDurably } from '../hsm-core/index.js';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import type { Attribute } from './codec.js';
import { CKA, CKC, CKO, CKR } from './constants.js';
import { Ckr } from './objects.js';

export const FIRST_SIDE_HANDLE = 0x40000000;

/** A stored object: its attributes as they travel (the value encodings of the codec). */
export interface SideObject {
  handle: number;
  token: boolean;
  attributes: Attribute[];
}

type Stored = { type: number; length: number; value: null | { byte: number } | { ulong: string } | { bytes: string | null } | { mechanisms: string[] } | { date: string } }[];

/** Attribute values as JSON, each kind explicitly (bigints as decimal text, bytes as hex). */
const toJson = (attrs: Attribute[]): Stored =>
  attrs.map(({ type, length, value: v }) => ({
    type,
    length,
    value:
      v === null ? null
      : 'byte' in v ? { byte: v.byte }
      : 'ulong' in v ? { ulong: v.ulong.toString() }
      : 'bytes' in v ? { bytes: v.bytes === null ? null : v.bytes.toString('hex') }
      : 'mechanisms' in v ? { mechanisms: v.mechanisms.map(String) }
      : 'date' in v ? { date: v.date.toString('hex') }
      : null,
  }));
const fromJson = (stored: Stored): Attribute[] =>
  stored.map(({ type, length, value: v }) => ({
    type,
    length,
    value:
      v === null ? null
      : 'byte' in v ? { byte: v.byte }
      : 'ulong' in v ? { ulong: BigInt(v.ulong) }
      : 'bytes' in v ? { bytes: v.bytes === null ? null : Buffer.from(v.bytes, 'hex') }
      : 'mechanisms' in v ? { mechanisms: v.mechanisms.map(BigInt) }
      : { date: Buffer.from(v.date, 'hex') },
  }));

const byteAttr = (type: number, on: boolean): Attribute => ({ type, value: { byte: on ? 1 : 0 }, length: 1 });
const ulongAttr = (type: number, v: number): Attribute => ({ type, value: { ulong: BigInt(v) }, length: 8 });
const bytesAttr = (type: number, b: Buffer): Attribute => ({ type, value: { bytes: b }, length: b.length });

function bytesOf(attrs: Attribute[], type: number): Buffer | undefined {
  const v = attrs.find((a) => a.type === type)?.value;
  return v && 'bytes' in v ? (v.bytes ?? Buffer.alloc(0)) : undefined;
}

/** A certificate or data object's attributes, completed as a module would: defaults, and an X.509's names from its value. */
export function completeObject(template: Attribute[]): { cls: number; token: boolean; attributes: Attribute[] } {
  const cls = template.find((a) => a.type === CKA.CLASS)?.value;
  if (!cls || !('ulong' in cls)) throw new Ckr(CKR.TEMPLATE_INCOMPLETE, 'CKA_CLASS is required');
  const kind = Number(cls.ulong);
  if (kind !== CKO.CERTIFICATE && kind !== CKO.DATA) throw new Ckr(CKR.TEMPLATE_INCONSISTENT, 'the door creates certificates and data objects; keys are made, imported or unwrapped in the HSM');
  for (const a of template) {
    if (a.value === null || 'attributes' in a.value) throw new Ckr(CKR.ATTRIBUTE_VALUE_INVALID, `attribute 0x${a.type.toString(16)}`);
  }
  const tokenAttr = template.find((a) => a.type === CKA.TOKEN)?.value;
  const token = tokenAttr !== undefined && tokenAttr !== null && 'byte' in tokenAttr && tokenAttr.byte !== 0;
  const attributes = [...template];
  const has = (type: number) => attributes.some((a) => a.type === type);
  const add = (a: Attribute) => {
    if (!has(a.type)) attributes.push(a);
  };
  add(byteAttr(CKA.TOKEN, false));
  add(byteAttr(CKA.PRIVATE, false));
  add(byteAttr(CKA.MODIFIABLE, true));
  add(bytesAttr(CKA.LABEL, Buffer.alloc(0)));
  if (kind === CKO.CERTIFICATE) {
    const value = bytesOf(attributes, CKA.VALUE);
    if (!value) throw new Ckr(CKR.TEMPLATE_INCOMPLETE, 'a certificate object needs CKA_VALUE (its DER)');
    let cert: Certificate;
    try {
      cert = AsnConvert.parse(value, Certificate);
    } catch {
      throw new Ckr(CKR.ATTRIBUTE_VALUE_INVALID, 'CKA_VALUE is not a DER X.509 certificate');
    }
    add(ulongAttr(CKA.CERTIFICATE_TYPE, CKC.X_509));
    add(byteAttr(CKA.TRUSTED, false));
    add(ulongAttr(CKA.CERTIFICATE_CATEGORY, 0));
    add(bytesAttr(CKA.ID, Buffer.alloc(0)));
    add(bytesAttr(CKA.SUBJECT, Buffer.from(AsnConvert.serialize(cert.tbsCertificate.subject))));
    add(bytesAttr(CKA.ISSUER, Buffer.from(AsnConvert.serialize(cert.tbsCertificate.issuer))));
    // CKA_SERIAL_NUMBER is the DER INTEGER.
    const serial = Buffer.from(cert.tbsCertificate.serialNumber);
    add(bytesAttr(CKA.SERIAL_NUMBER, Buffer.concat([Buffer.from([0x02, serial.length]), serial])));
  } else {
    add(bytesAttr(CKA.APPLICATION, Buffer.alloc(0)));
    add(bytesAttr(CKA.VALUE, Buffer.alloc(0)));
  }
  return { cls: kind, token, attributes };
}

/** The token objects of one cluster and user, in one file. */
export class SideStore {
  readonly #file: string | null;
  #objects: SideObject[];

  constructor(folder: string | null, clusterId: string, username: string) {
    this.#file = folder === null ? null : join(folder, `${clusterId.replace(/[^\w.-]/g, '_')}--${username.replace(/[^\w.-]/g, '_')}.json`);
    this.#objects = [];
    if (this.#file && existsSync(this.#file)) {
      const stored = JSON.parse(readFileSync(this.#file, 'utf8')) as { handle: number; attributes: Stored }[];
      this.#objects = stored.map((o) => ({ handle: o.handle, token: true, attributes: fromJson(o.attributes) }));
    }
  }

  get objects(): readonly SideObject[] {
    return this.#objects;
  }

  nextHandle(taken: Iterable<number>): number {
    const used = new Set([...this.#objects.map((o) => o.handle), ...taken]);
    let h = FIRST_SIDE_HANDLE;
    while (used.has(h)) h++;
    return h;
  }

  add(object: SideObject): void {
    this.#objects.push(object);
    this.#save();
  }

  remove(handle: number): boolean {
    const before = this.#objects.length;
    this.#objects = this.#objects.filter((o) => o.handle !== handle);
    if (this.#objects.length === before) return false;
    this.#save();
    return true;
  }

  #save(): void {
    if (!this.#file) return;
    mkdirSync(join(this.#file, '..'), { recursive: true, mode: 0o700 });
    writeFileDurably(this.#file, JSON.stringify(this.#objects.map((o) => ({ handle: o.handle, attributes: toJson(o.attributes) }))), 0o600);
  }
}
