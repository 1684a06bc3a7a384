/**
 * What travels between members is canonical (masking.ts): the same content gives the same text
 * and the same sync digest whatever order it was built in, deletions open as deletions, and a
 * masking key is 32 bytes.
 */
import { expect } from 'chai';
import { canonicalJson, contentOf, keyFromContent, Masking, type MaskedContent } from '../../src/hsm-core/masking.js';
import { seeded, testSeed } from '../helpers/random.js';

const content = (shared: string[], attrs: Record<string, unknown>): MaskedContent =>
  ({ handle: 64, gen: 96, cls: 'secret-key', type: 'aes', owner: 'alice', shared, attrs, material: Buffer.alloc(16, 1).toString('base64') }) as unknown as MaskedContent;

const SEED = testSeed(3011);
const FUZZ = 5_000;

describe('hsm-core: masking', () => {
  it('canonical JSON sorts object members at every depth and keeps the order of arrays', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1], c: null } })).to.equal('{"a":{"c":null,"d":[3,1]},"b":1}');
    expect(canonicalJson({ a: { c: null, d: [3, 1] }, b: 1 })).to.equal(canonicalJson({ b: 1, a: { d: [3, 1], c: null } }));
    expect(canonicalJson(['b', 'a'])).to.equal('["b","a"]');
  });

  it(`canonical JSON gives the text of its first definition (JSON.stringify with a sorting replacer) for ${FUZZ} seeded values (seed ${SEED})`, () => {
    // Digests and masked objects made by members of different versions must agree, so this text never changes.
    const reference = (value: unknown) =>
      JSON.stringify(value, (_k, v: unknown) =>
        v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
      );
    const r = seeded(SEED);
    const NAMES = ['a', 'b', 'B', 'é', 'label', 'key-type', '__proto__', 'toJSON', '0', '9', '10', '-1', '1.5', '', 'ä', 'constructor'];
    const leaf = (): unknown => [null, undefined, true, false, 0, -0, 1.25, 2 ** 53, Number.NaN, 'x', '', '"\\\n', new Date(r.below(2 ** 40)), r.bytes(r.below(3)), () => 1][r.below(15)];
    const value = (depth: number): unknown => {
      if (depth > 3 || r.below(3) === 0) return leaf();
      if (r.below(3) === 0) return Array.from({ length: r.below(4) }, () => value(depth + 1));
      const o: Record<string, unknown> = {};
      for (let i = r.below(6); i > 0; i--) Object.defineProperty(o, NAMES[r.below(NAMES.length)]!, { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
      return o;
    };
    for (let i = 0; i < FUZZ; i++) {
      const v = value(0);
      expect(canonicalJson(v), `value ${i}`).to.equal(reference(v));
    }
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
