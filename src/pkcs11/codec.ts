/**
 * p11-kit's RPC protocol on the wire (../shared/PKCS11-RPC.md §1): frames, and the messages inside
 * them read and written by their signature letters.
 *
 * A frame is `u32 code | u32 options length | u32 body length | options | body`; a body is
 * `u32 call id | signature (byte array) | arguments in signature order`. The letters: `y` byte,
 * `u` CK_ULONG as u64, `v` version (2 bytes), `s` fixed space-padded string, `z` string, `ay`
 * byte array (valid flag + length [+ data]), `fy` an output buffer's room (u32), `au` ulong array,
 * `fu` a ulong array's room, `aA` attributes, `fA` the attributes GetAttributeValue asks for, `M`
 * a mechanism with its parameter.
 *
 * Mechanism parameters come in two dialects: p11-kit 0.24 (Debian 12) always writes a parameter
 * (a NULL byte array for parameter-less mechanisms; PSS and OAEP as their fields); 0.25.3 and later
 * write nothing for parameter-less mechanisms, else a has-parameter byte and then the fields (AES
 * IVs, GCM and CTR parameters, ECDH, PSS, OAEP, HMAC-GENERAL lengths). The client's version byte
 * says which: 0 is 0.24, 1 and up are the newer clients.
 *
 * @module
 */
import { attributeClass } from './attributes.js';

/** A CK_ULONG on the wire (u64); bigint, so every value, -1 too, goes and comes back exactly. */
export type Ulong = bigint;

/** An attribute: its type and value, or no value (`ulValueLen` = CK_UNAVAILABLE_INFORMATION). */
export interface Attribute {
  type: number;
  /** The value as the attribute's class carries it. */
  value: AttributeValue | null;
  /** `ulValueLen`: the value's length in the C structure (8 for a CK_ULONG). */
  length: number;
}
export type AttributeValue = { byte: number } | { ulong: Ulong } | { bytes: Buffer | null } | { attributes: Attribute[] } | { mechanisms: Ulong[] } | { date: Buffer };

/** An output byte array: the data, or (valid false) only the length it needs. */
export interface ByteArray {
  data: Buffer | null;
  length: number;
}

export interface Mechanism {
  type: number;
  /** The parameter as the mechanism carries it (raw bytes for the ones p11-kit sends opaque). */
  param: MechanismParam | null;
}
export type MechanismParam =
  | { kind: 'bytes'; data: Buffer }
  | { kind: 'pss'; hash: Ulong; mgf: Ulong; saltLength: Ulong }
  | { kind: 'oaep'; hash: Ulong; mgf: Ulong; source: Ulong; sourceData: Buffer | null }
  | { kind: 'iv'; iv: Buffer }
  | { kind: 'ctr'; counterBits: Ulong; counterBlock: Buffer }
  | { kind: 'gcm'; iv: Buffer | null; ivBits: Ulong; aad: Buffer | null; tagBits: Ulong }
  | { kind: 'ecdh'; kdf: Ulong; sharedData: Buffer | null; publicData: Buffer | null }
  | { kind: 'mac-general'; length: Ulong };

export type Dialect = 'p11-kit-0.24' | 'p11-kit-0.25';

/** A value for each letter of a signature. */
export type Value = number | Ulong | Buffer | { major: number; minor: number } | ByteArray | Ulong[] | { valid: boolean; values: Ulong[]; count: number } | Attribute[] | { type: number; length: number }[] | Mechanism | null;

export class ProtocolError extends Error {}

const MAX_ARRAY = 0x7ffffffe;

/** The parts of a signature: `ay`, `au`, `aA`, `fy`, `fu`, `fA` are one part each. */
export function parts(signature: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < signature.length; i++) {
    const c = signature[i]!;
    if (c === 'a' || c === 'f') {
      out.push(signature.slice(i, i + 2));
      i++;
    } else out.push(c);
  }
  return out;
}

// ---- frames ----------------------------------------------------------------------------------

export interface Frame {
  code: number;
  options: Buffer;
  body: Buffer;
}

/** Bodies larger than this close the connection (a signature or a data block is far smaller). */
export const MAX_BODY = 16 * 1024 * 1024;

/** Collects bytes and cuts whole frames out of them. */
export class FrameReader {
  #pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    const frames: Frame[] = [];
    for (;;) {
      if (this.#pending.length < 12) break;
      const optionsLength = this.#pending.readUInt32BE(4);
      const bodyLength = this.#pending.readUInt32BE(8);
      if (optionsLength > 4096 || bodyLength > MAX_BODY) throw new ProtocolError(`a frame of ${optionsLength} + ${bodyLength} bytes is larger than the door takes`);
      const total = 12 + optionsLength + bodyLength;
      if (this.#pending.length < total) break;
      frames.push({
        code: this.#pending.readUInt32BE(0),
        options: this.#pending.subarray(12, 12 + optionsLength),
        body: this.#pending.subarray(12 + optionsLength, total),
      });
      this.#pending = this.#pending.subarray(total);
    }
    return frames;
  }
}

export function encodeFrame(code: number, body: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt32BE(code, 0);
  header.writeUInt32BE(0, 4);
  header.writeUInt32BE(body.length, 8);
  return Buffer.concat([header, body]);
}

// ---- reading -----------------------------------------------------------------------------------

export class Reader {
  #at = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly dialect: Dialect = 'p11-kit-0.24',
  ) {}

  get done(): boolean {
    return this.#at === this.buf.length;
  }

  #need(n: number): void {
    if (this.#at + n > this.buf.length) throw new ProtocolError(`the message ends ${this.#at + n - this.buf.length} bytes early`);
  }
  byte(): number {
    this.#need(1);
    return this.buf[this.#at++]!;
  }
  u32(): number {
    this.#need(4);
    const v = this.buf.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }
  u64(): Ulong {
    this.#need(8);
    const v = this.buf.readBigUInt64BE(this.#at);
    this.#at += 8;
    return v;
  }
  raw(n: number): Buffer {
    this.#need(n);
    const v = this.buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return v;
  }
  /** `u32 length + data`; `ffffffff` is a NULL pointer. */
  byteArray(): Buffer | null {
    const length = this.u32();
    if (length === 0xffffffff) return null;
    if (length > MAX_ARRAY) throw new ProtocolError(`a byte array of ${length} bytes`);
    return this.raw(length);
  }

  /** One part of a signature. */
  part(letter: string): Value {
    switch (letter) {
      case 'y':
        return this.byte();
      case 'u':
        return this.u64();
      case 'v':
        return { major: this.byte(), minor: this.byte() };
      case 's':
      case 'z':
        return this.byteArray() ?? Buffer.alloc(0);
      case 'ay': {
        const valid = this.byte();
        const length = this.u32();
        if (length > MAX_ARRAY) throw new ProtocolError(`a byte array of ${length} bytes`);
        return { data: valid ? this.raw(length) : null, length };
      }
      case 'fy':
      case 'fu':
        return this.u32();
      case 'au': {
        const valid = this.byte();
        const count = this.u32();
        if (count > 1 << 20) throw new ProtocolError(`an array of ${count} ulongs`);
        const values: Ulong[] = [];
        if (valid) for (let i = 0; i < count; i++) values.push(this.u64());
        return { valid: valid === 1, values, count };
      }
      case 'aA':
        return this.attributes(0);
      case 'fA': {
        const count = this.u32();
        if (count > 4096) throw new ProtocolError(`${count} attributes`);
        const wanted: { type: number; length: number }[] = [];
        for (let i = 0; i < count; i++) wanted.push({ type: this.u32(), length: this.u32() });
        return wanted;
      }
      case 'M':
        return this.mechanism();
      default:
        throw new ProtocolError(`signature letter ${letter}`);
    }
  }

  attributes(depth: number): Attribute[] {
    if (depth > 2) throw new ProtocolError('attribute templates nested too deep');
    const count = this.u32();
    if (count > 4096) throw new ProtocolError(`${count} attributes`);
    const out: Attribute[] = [];
    for (let i = 0; i < count; i++) {
      const type = this.u32();
      const valid = this.byte();
      if (!valid) {
        out.push({ type, value: null, length: -1 });
        continue;
      }
      const length = this.u32();
      out.push({ type, value: this.attributeValue(type, depth), length });
    }
    return out;
  }

  attributeValue(type: number, depth: number): AttributeValue {
    switch (attributeClass(type)) {
      case 'byte':
        return { byte: this.byte() };
      case 'ulong':
        return { ulong: this.u64() };
      case 'attributes':
        return { attributes: this.attributes(depth + 1) };
      case 'mechanisms': {
        const count = this.u32();
        if (count > 4096) throw new ProtocolError(`${count} mechanisms`);
        const mechanisms: Ulong[] = [];
        for (let i = 0; i < count; i++) mechanisms.push(this.u64());
        return { mechanisms };
      }
      case 'date': {
        const date = this.byteArray() ?? Buffer.alloc(0);
        if (date.length !== 0 && date.length !== 8) throw new ProtocolError(`a date of ${date.length} bytes`);
        return { date };
      }
      default:
        return { bytes: this.byteArray() };
    }
  }

  mechanism(): Mechanism {
    const type = this.u32();
    if (this.dialect === 'p11-kit-0.24') return { type, param: paramOf(type, this, true) };
    if (type === 0xffffffff || NO_PARAMETERS.has(type)) return { type, param: null };
    if (this.byte() === 0) return { type, param: null };
    return { type, param: paramOf(type, this, false) };
  }
}

/** The serializer p11-kit uses for a mechanism's parameter. */
function paramShape(type: number): 'pss' | 'oaep' | 'iv' | 'ctr' | 'gcm' | 'ecdh' | 'mac-general' | 'bytes' {
  if (PSS.has(type)) return 'pss';
  if (type === 0x9) return 'oaep';
  if (AES_IV.has(type)) return 'iv';
  if (type === 0x1086) return 'ctr';
  if (type === 0x1087) return 'gcm';
  if (type === 0x1050) return 'ecdh';
  if (MAC_GENERAL.has(type)) return 'mac-general';
  return 'bytes';
}

function paramOf(type: number, r: Reader, old: boolean): MechanismParam | null {
  // 0.24 knows only PSS and OAEP; every other mechanism's parameter is an opaque byte array.
  const shape = old && paramShape(type) !== 'pss' && paramShape(type) !== 'oaep' ? 'bytes' : paramShape(type);
  switch (shape) {
    case 'pss':
      return { kind: 'pss', hash: r.u64(), mgf: r.u64(), saltLength: r.u64() };
    case 'oaep':
      return { kind: 'oaep', hash: r.u64(), mgf: r.u64(), source: r.u64(), sourceData: r.byteArray() };
    case 'iv': {
      const iv = r.byteArray();
      if (!iv || iv.length !== 16) throw new ProtocolError('an AES IV is 16 bytes');
      return { kind: 'iv', iv };
    }
    case 'ctr': {
      const counterBits = r.u64();
      const counterBlock = r.byteArray();
      if (!counterBlock || counterBlock.length !== 16) throw new ProtocolError('an AES-CTR counter block is 16 bytes');
      return { kind: 'ctr', counterBits, counterBlock };
    }
    case 'gcm':
      return { kind: 'gcm', iv: r.byteArray(), ivBits: r.u64(), aad: r.byteArray(), tagBits: r.u64() };
    case 'ecdh':
      return { kind: 'ecdh', kdf: r.u64(), sharedData: r.byteArray(), publicData: r.byteArray() };
    case 'mac-general':
      return { kind: 'mac-general', length: r.u64() };
    default: {
      const data = r.byteArray();
      return data === null ? null : { kind: 'bytes', data };
    }
  }
}

// The mechanisms p11-kit 0.26 gives no parameter (its `mechanism_has_no_parameters`, IBM's left
// out), and those with a serializer of their own (`p11_rpc_mechanism_serializers`), by number.
const NO_PARAMETERS = new Set([
  0x0, 0xa, 0x1, 0x2, 0x3, 0xb, 0x4, 0x5, 0x6, 0x46, 0x40, 0x41, 0x42, 0x7, 0x8, 0xc, 0x10, 0x2000, 0x11, 0x12, 0x1020, 0x1040, 0x1041, 0x1042, 0x1043,
  0x1044, 0x1045, 0x1046, 0x20, 0x2001, 0x30, 0x2002, 0x1010, 0x350, 0x100, 0x110, 0x111, 0x330, 0x1080, 0x1081, 0x1083, 0x108a, 0x120, 0x130, 0x131,
  0x140, 0x300, 0x310, 0x320, 0x340, 0x370, 0x374, 0x1000, 0x1030, 0x1060, 0x101, 0x121, 0x132, 0x141, 0x301, 0x311, 0x321, 0x331, 0x341, 0x103, 0x123,
  0x134, 0x138, 0x143, 0x303, 0x313, 0x333, 0x343, 0x380, 0x381, 0x1008, 0x1036, 0x1065, 0x200, 0x201, 0x210, 0x211, 0x220, 0x221, 0x392, 0x255, 0x256,
  0x396, 0x250, 0x251, 0x393, 0x260, 0x261, 0x394, 0x270, 0x271, 0x395, 0x50, 0x51, 0x53, 0x48, 0x49, 0x4b, 0x4c, 0x4d, 0x4f, 0x1070, 0x230, 0x231, 0x240,
  0x241, 0x400,
]);
const PSS = new Set([0xd, 0xe, 0x47, 0x43, 0x44, 0x45]);
const AES_IV = new Set([0x1082, 0x1085, 0x2104, 0x2108, 0x2106, 0x2105, 0x2107, 0x1089]);
const MAC_GENERAL = new Set([0x222, 0x257, 0x252, 0x262, 0x272, 0x4a, 0x4e, 0x1084, 0x108b, 0x135, 0x137]);

// ---- writing -----------------------------------------------------------------------------------

export class Writer {
  readonly #chunks: Buffer[] = [];
  constructor(private readonly dialect: Dialect = 'p11-kit-0.24') {}

  byte(v: number): this {
    this.#chunks.push(Buffer.from([v & 0xff]));
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.#chunks.push(b);
    return this;
  }
  u64(v: Ulong | number): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(v)));
    this.#chunks.push(b);
    return this;
  }
  byteArray(v: Buffer | null): this {
    if (v === null) return this.u32(0xffffffff);
    this.u32(v.length);
    this.#chunks.push(v);
    return this;
  }

  part(letter: string, v: Value): this {
    switch (letter) {
      case 'y':
        return this.byte(v as number);
      case 'u':
        return this.u64(v as Ulong);
      case 'v': {
        const version = v as { major: number; minor: number };
        return this.byte(version.major).byte(version.minor);
      }
      case 's':
      case 'z':
        return this.byteArray(v as Buffer);
      case 'ay': {
        const a = v as ByteArray;
        this.byte(a.data ? 1 : 0).u32(a.data ? a.data.length : a.length);
        if (a.data) this.#chunks.push(a.data);
        return this;
      }
      case 'fy':
      case 'fu':
        return this.u32(v as number);
      case 'au': {
        const a = v as { valid: boolean; values: Ulong[]; count: number };
        this.byte(a.valid ? 1 : 0).u32(a.valid ? a.values.length : a.count);
        if (a.valid) for (const x of a.values) this.u64(x);
        return this;
      }
      case 'aA':
        return this.attributes(v as Attribute[]);
      case 'fA': {
        const wanted = v as { type: number; length: number }[];
        this.u32(wanted.length);
        for (const w of wanted) this.u32(w.type).u32(w.length);
        return this;
      }
      case 'M':
        return this.mechanism(v as Mechanism);
      default:
        throw new ProtocolError(`cannot write signature letter ${letter}`);
    }
  }

  /** A mechanism as a client sends it (the door only reads them; tests and tools write them). */
  mechanism(m: Mechanism): this {
    this.u32(m.type);
    if (this.dialect === 'p11-kit-0.25') {
      if (m.type === 0xffffffff || NO_PARAMETERS.has(m.type)) return this;
      this.byte(m.param ? 1 : 0);
      if (!m.param) return this;
    } else if (!m.param) return this.byteArray(null);
    const p = m.param!;
    switch (p.kind) {
      case 'pss':
        return this.u64(p.hash).u64(p.mgf).u64(p.saltLength);
      case 'oaep':
        return this.u64(p.hash).u64(p.mgf).u64(p.source).byteArray(p.sourceData);
      case 'iv':
        return this.byteArray(p.iv);
      case 'ctr':
        return this.u64(p.counterBits).byteArray(p.counterBlock);
      case 'gcm':
        return this.byteArray(p.iv).u64(p.ivBits).byteArray(p.aad).u64(p.tagBits);
      case 'ecdh':
        return this.u64(p.kdf).byteArray(p.sharedData).byteArray(p.publicData);
      case 'mac-general':
        return this.u64(p.length);
      default:
        return this.byteArray(p.data);
    }
  }

  attributes(list: Attribute[]): this {
    this.u32(list.length);
    for (const a of list) {
      this.u32(a.type);
      if (a.value === null) {
        this.byte(0);
        continue;
      }
      this.byte(1).u32(a.length);
      const value = a.value;
      if ('byte' in value) this.byte(value.byte);
      else if ('ulong' in value) this.u64(value.ulong);
      else if ('attributes' in value) this.attributes(value.attributes);
      else if ('mechanisms' in value) {
        this.u32(value.mechanisms.length);
        for (const m of value.mechanisms) this.u64(m);
      } else if ('date' in value) this.byteArray(value.date);
      else this.byteArray(value.bytes);
    }
    return this;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

// ---- messages ----------------------------------------------------------------------------------

export interface Message {
  call: number;
  signature: string;
  args: Value[];
}

/** Reads a body, checking that its signature is `expected` (the call table's). */
export function readMessage(body: Buffer, expected: (call: number) => string | undefined, dialect: Dialect): Message {
  const r = new Reader(body, dialect);
  const call = r.u32();
  const signature = (r.byteArray() ?? Buffer.alloc(0)).toString('latin1');
  const want = expected(call);
  if (want === undefined) throw new ProtocolError(`unknown call ${call}`);
  if (signature !== want) throw new ProtocolError(`call ${call} has signature "${signature}", not "${want}"`);
  const args = parts(signature).map((p) => r.part(p));
  if (!r.done) throw new ProtocolError(`call ${call}: bytes left after its arguments`);
  return { call, signature, args };
}

export function writeMessage(call: number, signature: string, args: Value[], dialect: Dialect = 'p11-kit-0.24'): Buffer {
  const w = new Writer(dialect).u32(call).byteArray(Buffer.from(signature, 'latin1'));
  parts(signature).forEach((p, i) => w.part(p, args[i] ?? null));
  return w.toBuffer();
}
