/**
 * What travels between members is canonical (masking.ts): the same content gives the same text
 * and the same sync digest whatever order it was built in, deletions open as deletions, and a
 * masking key is 32 bytes.
 */
import { expect } from 'chai';
import { canonicalJson, contentOf, keyFromContent, Masking, type MaskedContent } from '../../src/hsm-core/masking.js';

const content = (shared: string[], attrs: Record<string, unknown>): MaskedContent =>
  ({ handle: 64, gen: 96, cls: 'secret-key', type: 'aes', owner: 'alice', shared, attrs, material: Buffer.alloc(16, 1).toString('base64') }) as unknown as MaskedContent;

describe('hsm-core: masking', () => {
  it('canonical JSON sorts object members at every depth and keeps the order of arrays', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1], c: null } })).to.equal('{"a":{"c":null,"d":[3,1]},"b":1}');
    expect(canonicalJson({ a: { c: null, d: [3, 1] }, b: 1 })).to.equal(canonicalJson({ b: 1, a: { d: [3, 1], c: null } }));
    expect(canonicalJson(['b', 'a'])).to.equal('["b","a"]');
  });

  it('a key travels with its shares sorted, and its sync digest does not depend on the order of its attributes or shares', () => {
    const one = keyFromContent(content(['zoe', 'amy'], { label: 'x', token: true, encrypt: true }));
    const two = keyFromContent(content(['amy', 'zoe'], { encrypt: true, token: true, label: 'x' }));
    expect(contentOf(one).shared).to.deep.equal(['amy', 'zoe']);
    const masking = new Masking(Buffer.alloc(32, 9));
    expect(masking.digest(one)).to.equal(masking.digest(two));
  });

  it('deletions open as deletions', () => {
    const masking = new Masking(Buffer.alloc(32, 9));
    expect(masking.open(masking.sealKeyTombstone(64, 96))).to.deep.equal({ handle: 64, deleted: true, gen: 96 });
    expect(masking.openUser(masking.sealUserTombstone('dave', 97))).to.deep.equal({ username: 'dave', deleted: true, gen: 97 });
  });

  it('a masking key is 32 bytes', () => {
    expect(() => new Masking(Buffer.alloc(31))).to.throw('the masking key must be 32 bytes').with.property('code', 'MASKED_OBJECT_INVALID');
  });
});
