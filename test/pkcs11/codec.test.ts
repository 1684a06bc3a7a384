/**
 * The door's codec against real traffic: every frame body captured between Debian 12's
 * p11-kit-client.so and p11-kit's own server (test/vectors/pkcs11, from ../shared) reads with the
 * call table's signature and writes back byte for byte. Then the newer clients' mechanism
 * parameters, frames cut anywhere, and messages that must be refused.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { callById } from '../../src/pkcs11/calls.js';
import { FrameReader, ProtocolError, Reader, Writer, encodeFrame, readMessage, writeMessage, type Mechanism } from '../../src/pkcs11/codec.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors', 'pkcs11');

interface Captured {
  file: string;
  line: number;
  direction: 'request' | 'response';
  call: string;
  signature: string;
  body: Buffer;
}

/** The captured messages: `[conn n] C->S code=… C_Name sig="…"`, then `body:` and its hex lines. */
function captured(): Captured[] {
  const out: Captured[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.txt'))) {
    const lines = readFileSync(join(DIR, file), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const head = /^\[conn \d+\] (C->S|S->C) code=0x[0-9a-f]+ options="[^"]*" len=\d+ (\w+) sig="([^"]*)"/.exec(lines[i]!);
      if (!head) continue;
      let j = i + 1;
      while (j < lines.length && !lines[j]!.trimStart().startsWith('body:')) j++;
      let hex = lines[j]!.trim().slice('body:'.length).trim();
      for (j += 1; j < lines.length && /^\s{8}[0-9a-f]+$/.test(lines[j]!); j++) hex += lines[j]!.trim();
      out.push({ file, line: i + 1, direction: head[1] === 'C->S' ? 'request' : 'response', call: head[2]!, signature: head[3]!, body: Buffer.from(hex, 'hex') });
    }
  }
  return out;
}

describe('pkcs11: the RPC codec', () => {
  const messages = captured();

  it('reads every captured message with the call table\'s signature and writes it back byte for byte', () => {
    expect(messages.length).to.be.greaterThan(400);
    const calls = new Set<string>();
    for (const m of messages) {
      const signatureOf = (id: number) => (id === 0 ? 'u' : m.direction === 'request' ? callById(id)?.request : callById(id)?.response);
      const decoded = readMessage(m.body, signatureOf, 'p11-kit-0.24');
      expect(decoded.signature, `${m.file}:${m.line}`).to.equal(m.signature);
      expect(writeMessage(decoded.call, decoded.signature, decoded.args).toString('hex'), `${m.file}:${m.line} ${m.call}`).to.equal(m.body.toString('hex'));
      calls.add(m.call);
    }
    // The captures cover the calls applications make.
    expect([...calls]).to.include.members(['C_Initialize', 'C_GetSlotList', 'C_GetTokenInfo', 'C_OpenSession', 'C_Login', 'C_FindObjectsInit', 'C_GetAttributeValue', 'C_SignInit', 'C_Sign', 'C_GenerateKeyPair']);
  });

  it('reads the values inside: a PSS mechanism, a template, a size query', () => {
    const pss = messages.find((m) => m.call === 'C_SignInit' && m.body.includes(Buffer.from('0000000d', 'hex')))!;
    const init = readMessage(pss.body, (id) => callById(id)?.request, 'p11-kit-0.24');
    expect((init.args[1] as Mechanism).param).to.deep.include({ kind: 'pss' });
    const keygen = messages.find((m) => m.call === 'C_GenerateKeyPair' && m.direction === 'request')!;
    const [, mechanism, publicTemplate] = readMessage(keygen.body, (id) => callById(id)?.request, 'p11-kit-0.24').args as [bigint, Mechanism, { type: number }[]];
    expect(mechanism.param).to.equal(null);
    expect(publicTemplate.map((a) => a.type)).to.include(0x0); // CKA_CLASS
  });

  it('reads the mechanism parameters of p11-kit 0.25 and later (has-parameter byte; AES IV, GCM, CTR, ECDH, PSS), written as such a client writes them', () => {
    const cases: Mechanism[] = [
      { type: 0x1082, param: { kind: 'iv', iv: Buffer.alloc(16, 7) } },
      { type: 0x1087, param: { kind: 'gcm', iv: Buffer.alloc(12, 1), ivBits: 96n, aad: Buffer.from('aad'), tagBits: 128n } },
      { type: 0x1086, param: { kind: 'ctr', counterBits: 32n, counterBlock: Buffer.alloc(16, 2) } },
      { type: 0x1050, param: { kind: 'ecdh', kdf: 1n, sharedData: null, publicData: Buffer.from('04abcd', 'hex') } },
      { type: 0x43, param: { kind: 'pss', hash: 0x250n, mgf: 2n, saltLength: 32n } },
      { type: 0x1044, param: null }, // ECDSA-SHA256: no parameter, nothing on the wire
      { type: 0x1087, param: null }, // a parameterised mechanism sent without one
    ];
    for (const m of cases) {
      const bytes = new Writer('p11-kit-0.25').mechanism(m).toBuffer();
      const r = new Reader(bytes, 'p11-kit-0.25');
      expect(r.mechanism(), `0x${m.type.toString(16)}`).to.deep.equal(m);
      expect(r.done).to.equal(true);
    }
    expect(new Writer('p11-kit-0.25').mechanism({ type: 0x1044, param: null }).toBuffer().toString('hex')).to.equal('00001044');
    expect(() => new Reader(new Writer('p11-kit-0.25').mechanism({ type: 0x1082, param: { kind: 'bytes', data: Buffer.alloc(8) } }).toBuffer(), 'p11-kit-0.25').mechanism()).to.throw(ProtocolError, 'an AES IV is 16 bytes');
  });

  it('cuts frames however the bytes arrive, and refuses a frame too large', () => {
    const frames = messages.slice(0, 20).map((m, i) => encodeFrame(0x10 + i, m.body));
    const all = Buffer.concat(frames);
    const reader = new FrameReader();
    const got = [];
    for (let at = 0; at < all.length; at += 7) got.push(...reader.push(all.subarray(at, at + 7)));
    expect(got.map((f) => f.code)).to.deep.equal(frames.map((_, i) => 0x10 + i));
    expect(got.map((f) => f.body.toString('hex'))).to.deep.equal(messages.slice(0, 20).map((m) => m.body.toString('hex')));
    const huge = Buffer.alloc(12);
    huge.writeUInt32BE(0x7fffffff, 8);
    expect(() => new FrameReader().push(huge)).to.throw(ProtocolError, 'larger than the door takes');
  });

  it('refuses an unknown call, a signature that is not the table\'s, a truncated body and bytes left over', () => {
    const expected = (id: number) => callById(id)?.request;
    const request = messages.find((m) => m.call === 'C_GetTokenInfo' && m.direction === 'request')!.body;
    expect(() => readMessage(writeMessage(99, 'u', [1n]), expected, 'p11-kit-0.24')).to.throw(ProtocolError, 'unknown call 99');
    expect(() => readMessage(writeMessage(6, 'y', [1]), expected, 'p11-kit-0.24')).to.throw(ProtocolError, 'call 6 has signature "y", not "u"');
    expect(() => readMessage(request.subarray(0, request.length - 3), expected, 'p11-kit-0.24')).to.throw(ProtocolError, 'the message ends 3 bytes early');
    expect(() => readMessage(Buffer.concat([request, Buffer.from([0])]), expected, 'p11-kit-0.24')).to.throw(ProtocolError, 'call 6: bytes left after its arguments');
  });
});
