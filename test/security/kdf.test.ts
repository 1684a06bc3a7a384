/**
 * Denial of service by key derivation (issue 14, item 9): one crypto user's PBKDF2 calls are
 * bounded per call (iterations × output blocks, a profile limit) and share the member's thread
 * pool fairly, so other users' logins and signatures keep their latency while that user derives.
 */
import { expect } from 'chai';
import { startLocalCluster, type HsmSession, type LocalCluster } from '../../src/index.js';
import { refusal } from '../helpers/refusal.js';


describe('security: key derivation cannot stall other users', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let bob: HsmSession;
  let base: number;

  before(async () => {
    cluster = await startLocalCluster({
      adminPassword: 'admin-password',
      passwordCost: 13,
      users: [
        { username: 'bob', password: 'bob-password', role: 'crypto-user' },
        { username: 'carol', password: 'carol-password', role: 'crypto-user' },
      ],
    });
    bob = await cluster.login('bob', 'bob-password');
    base = (await bob.send({ op: 'importKey', keyClass: 'secret-key', keyType: 'generic-secret', format: 'raw', keyData: new Uint8Array(16).fill(1), attributes: { derive: true, token: true } })).handle;
  });
  after(() => cluster?.close());

  const pbkdf2 = (session: HsmSession, iterations: number, lengthBits: number) =>
    session.send({ op: 'deriveBits', baseHandle: base, mechanism: { name: 'pbkdf2', hash: 'sha256', salt: new Uint8Array(16), iterations }, lengthBits });

  it('item 9: a call asking for more than 10⁷ block-iterations is refused before it runs', async () => {
    const many = await refusal(pbkdf2(bob, 100_000_000, 256));
    expect(many.code).to.equal('LIMIT_EXCEEDED');
    expect(many.message).to.contain('100000000 iterations × 1 output block is 100000000 PBKDF2 block-iterations; the cloudhsm profile allows 10000000 per call');
    const long = await refusal(pbkdf2(bob, 100_000, 1 << 20));
    expect(long.message).to.contain('100000 iterations × 4096 output blocks');
  });

  it('item 9: while one user derives from two sessions, another user\'s logins and signatures keep their latency', async () => {
    const timed = async (work: () => Promise<unknown>) => {
      const t = performance.now();
      await work();
      return performance.now() - t;
    };
    const carolLogin = () => cluster.login('carol', 'carol-password').then((s) => s.logout());
    const carol = await cluster.login('carol', 'carol-password');
    const { privateHandle } = await carol.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true }, publicAttributes: {} });
    const carolSign = () => carol.send({ op: 'sign', handle: privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: new Uint8Array(32) });
    const measure = async () => {
      const logins: number[] = [];
      const signs: number[] = [];
      for (let i = 0; i < 5; i++) {
        logins.push(await timed(carolLogin));
        signs.push(await timed(carolSign));
      }
      // The slowest of each: a login that waits behind the derivations waits once, at the start.
      return { login: Math.max(...logins), sign: Math.max(...signs) };
    };
    await measure(); // warm up
    const quiet = await measure();
    const bob1 = await cluster.login('bob', 'bob-password');
    const bob2 = await cluster.login('bob', 'bob-password');
    // Eight derivations of most of a second each: without the bound on concurrent work they
    // would take every thread of the pool, and carol's password checks would wait behind them.
    const derivations = [bob1, bob1, bob1, bob1, bob2, bob2, bob2, bob2].map((s) => pbkdf2(s, 2_500_000, 256).then(
      (r) => r.bits.length,
      (e: { code: string }) => e.code,
    ));
    const busy = await measure();
    // bob logs out: his derivations still waiting never run.
    await Promise.all([bob1.logout(), bob2.logout()]);
    const outcomes = await Promise.all(derivations);
    expect(busy.login, `login ${busy.login.toFixed(1)} ms under load, ${quiet.login.toFixed(1)} ms quiet`).to.be.below(3 * quiet.login + 60);
    expect(busy.sign, `sign ${busy.sign.toFixed(1)} ms under load, ${quiet.sign.toFixed(1)} ms quiet`).to.be.below(3 * quiet.sign + 60);
    expect(outcomes.filter((o) => o === 32).length).to.be.within(1, 7);
    expect(outcomes.filter((o) => o !== 32)).to.deep.equal(Array(outcomes.filter((o) => o !== 32).length).fill('NOT_LOGGED_IN'));
    await carol.logout();
  });
});
