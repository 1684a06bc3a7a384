/**
 * Which versions a member takes from another when two are compared (repair.ts: `differences`):
 * the newer generation wins; a tie goes to the greater digest, so two members that changed the
 * same thing at the same generation still end up alike; a key's deletion always wins; a user's
 * deletion wins only when it is newer; what only one member holds goes to the other.
 */
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { differences } from '../../src/cluster-client/repair.js';
import type { Results } from '../../src/hsm-core/index.js';
import { seeded, testSeed } from '../helpers/random.js';

type Status = Results['getSyncStatus'];
/** A status with its summary made as a member makes it: a hash of all the rest, so two statuses have one summary only when they are the same. */
const status = (parts: Omit<Partial<Status>, 'summary'> = {}): Status => {
  const rest = { keys: [], users: [], settings: 'aa', settingsGen: 1, deletedKeys: [], deletedUsers: [], ...parts };
  return { ...rest, summary: createHash('sha256').update(JSON.stringify(rest)).digest('hex') };
};
const key = (handle: number, gen: number, digest: string) => ({ handle, gen, digest });
const user = (username: string, gen: number, digest: string) => ({ username, gen, digest });

describe('cluster-client: what one member takes from another', () => {
  it('nothing, when both hold the same versions', () => {
    const same = status({ keys: [key(1, 3, 'aa')], users: [user('alice', 2, 'bb')], deletedKeys: [{ handle: 9, gen: 4 }], deletedUsers: [{ username: 'old', gen: 5 }] });
    expect(differences(same, same)).to.deep.equal({ keys: [], users: [], settings: false });
  });

  it('nothing, when the summaries agree: one summary is one status, and the entries are not compared', () => {
    const mine = status({ keys: [key(1, 1, 'aa')] });
    const theirs = status({ keys: [key(2, 1, 'aa')] });
    expect(differences(mine, theirs)).to.deep.equal({ keys: [2], users: [], settings: false });
    expect(differences(mine, { ...theirs, summary: mine.summary })).to.deep.equal({ keys: [], users: [], settings: false });
    // Statuses that carry no summary (a member that sends none) are compared entry by entry.
    const without = (s: Status) => ({ ...s, summary: undefined as unknown as string });
    expect(differences(without(mine), without(theirs))).to.deep.equal({ keys: [2], users: [], settings: false });
  });

  it('what only the other holds, and not what only this one holds', () => {
    const mine = status({ keys: [key(1, 1, 'aa')], users: [user('alice', 1, 'aa')] });
    const theirs = status({ keys: [key(2, 1, 'aa')], users: [user('bob', 1, 'aa')] });
    expect(differences(mine, theirs)).to.deep.equal({ keys: [2], users: ['bob'], settings: false });
  });

  it('a newer generation, and never an older one, whatever the digests', () => {
    const older = status({ keys: [key(1, 1, 'ff')], users: [user('alice', 1, 'ff')], settings: 'ff', settingsGen: 1 });
    const newer = status({ keys: [key(1, 2, '00')], users: [user('alice', 2, '00')], settings: '00', settingsGen: 2 });
    expect(differences(older, newer)).to.deep.equal({ keys: [1], users: ['alice'], settings: true });
    expect(differences(newer, older)).to.deep.equal({ keys: [], users: [], settings: false });
  });

  it('at the same generation, the greater digest, on one side only', () => {
    const low = status({ keys: [key(1, 4, '11')], users: [user('alice', 4, '11')], settings: '11', settingsGen: 4 });
    const high = status({ keys: [key(1, 4, '22')], users: [user('alice', 4, '22')], settings: '22', settingsGen: 4 });
    expect(differences(low, high)).to.deep.equal({ keys: [1], users: ['alice'], settings: true });
    expect(differences(high, low)).to.deep.equal({ keys: [], users: [], settings: false });
  });

  it("a key's deletion wins over any version of the key, even a newer one; a deleted key is not brought back", () => {
    const deleted = status({ deletedKeys: [{ handle: 1, gen: 2 }] });
    const alive = status({ keys: [key(1, 7, 'aa')] });
    expect(differences(alive, deleted).keys).to.deep.equal([1]);
    expect(differences(deleted, alive).keys).to.deep.equal([]);
    // Both deleted: nothing to take, whatever the generations.
    expect(differences(deleted, status({ deletedKeys: [{ handle: 1, gen: 9 }] })).keys).to.deep.equal([]);
  });

  it("a user's deletion wins only when it is newer; a user made again after it stays", () => {
    const deletedAt3 = status({ deletedUsers: [{ username: 'alice', gen: 3 }] });
    const aliveAt2 = status({ users: [user('alice', 2, 'aa')] });
    const aliveAt4 = status({ users: [user('alice', 4, 'aa')] });
    expect(differences(aliveAt2, deletedAt3).users).to.deep.equal(['alice']);
    expect(differences(aliveAt4, deletedAt3).users).to.deep.equal([]);
    expect(differences(deletedAt3, aliveAt4).users).to.deep.equal(['alice']);
    // At the same generation, neither a deletion nor a live user displaces the other.
    const aliveAt3 = status({ users: [user('alice', 3, 'aa')] });
    expect(differences(aliveAt3, deletedAt3).users).to.deep.equal([]);
    expect(differences(deletedAt3, aliveAt3).users).to.deep.equal([]);
  });

  it('a user listed both live and deleted on one member counts as live there', () => {
    const both = status({ users: [user('alice', 5, 'aa')], deletedUsers: [{ username: 'alice', gen: 9 }] });
    expect(differences(status({ users: [user('alice', 5, 'aa')] }), both).users).to.deep.equal([]);
  });

  const WALK_SEED = testSeed(0x0d1ff);
  it(`keys in handle order (as members list them) give what the same lists in another order give (seed ${WALK_SEED})`, () => {
    const r = seeded(WALK_SEED);
    const digest = () => ['aa', 'bb', 'cc'][r.below(3)]!;
    // Handles 1-60, each live, deleted, both (a deletion listed beside a live entry) or absent.
    const randomStatus = () => {
      const keys: ReturnType<typeof key>[] = [];
      const deletedKeys: { handle: number; gen: number }[] = [];
      for (let handle = 1; handle <= 60; handle++) {
        const what = r.below(5);
        if (what === 0 || what === 2) keys.push(key(handle, 1 + r.below(3), digest()));
        if (what === 1 || what === 2) deletedKeys.push({ handle, gen: 1 + r.below(3) });
      }
      return status({ keys, deletedKeys });
    };
    const shuffled = (s: Status) => {
      const mixed = <T>(list: T[]) => list.map((v) => [r.next(), v] as const).sort((a, b) => a[0] - b[0]).map(([, v]) => v);
      return { ...s, keys: mixed(s.keys), deletedKeys: mixed(s.deletedKeys) };
    };
    let taken = 0;
    for (let round = 0; round < 200; round++) {
      const [mine, theirs] = [randomStatus(), randomStatus()];
      const inOrder = differences(mine, theirs).keys;
      const anyOrder = differences(shuffled(mine), shuffled(theirs)).keys;
      expect(inOrder, `round ${round}`).to.deep.equal([...anyOrder].sort((a, b) => a - b));
      taken += inOrder.length;
    }
    // The rounds had keys to take, and the walk found them.
    expect(taken).to.be.greaterThan(1000);
  });
});
