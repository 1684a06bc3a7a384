/**
 * A change made on one member while the cluster compares its members (Cluster.reconcile): the
 * comparison reports what still differs instead of claiming agreement, and the next one settles it.
 */
import { expect } from 'chai';
import { Cluster, InProcessTransport } from '../../src/cluster-client/index.js';
import { createMember, type Member, type Response } from '../../src/hsm-core/index.js';

/** Runs `during` once, right after answering its second full (not summary-only) sync status. */
class Interrupting extends InProcessTransport {
  during: (() => Promise<void>) | null = null;
  #full = 0;
  constructor(member: Member, index: number) {
    super(member, index);
  }
  override async send(request: unknown): Promise<Response> {
    const answer = await super.send(request);
    const r = request as { op?: string; summaryOnly?: boolean };
    if (r.op === 'getSyncStatus' && !r.summaryOnly && ++this.#full === 2 && this.during) {
      const run = this.during;
      this.during = null;
      await run();
    }
    return answer;
  }
}

describe('cluster-client: a change made during a comparison', function () {
  this.timeout(30_000);

  it('is reported as still differing, and the next comparison settles it', async () => {
    const serviceKey = new Uint8Array(32).fill(11);
    const options = { passwordCost: 10, serviceKey, appliancePassword: 'appliance-password' };
    const first = await createMember(options);
    await first.handle({ op: 'activateCluster', password: 'admin-password' });
    const ask = async (m: Member, request: Record<string, unknown>) => {
      const answer = await m.handle(request);
      if (!answer.ok) throw new Error(`${String(request.op)}: ${answer.error.message}`);
      return answer.result as Record<string, unknown>;
    };
    const admin = (await ask(first, { op: 'login', username: 'admin', password: 'admin-password' })).session as string;
    await ask(first, { op: 'createUser', session: admin, username: 'alice', password: 'alice-password', role: 'crypto-user' });
    const backup = (await ask(first, { op: 'createBackup', session: admin })).backup as Uint8Array;
    const second = await createMember({ ...options, memberIndex: 1 });
    await ask(second, { op: 'restoreBackup', backup });
    const alice = (await ask(first, { op: 'login', username: 'alice', password: 'alice-password' })).session as string;
    // Something to compare: a key on the first member only.
    await ask(first, { op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } });

    const t0 = new Interrupting(first, 0);
    const raw = await Cluster.open(
      [
        { description: 'member 0', start: async () => t0 },
        { description: 'member 1', start: async () => new InProcessTransport(second, 1) },
      ],
      { appliancePassword: 'appliance-password' },
    );
    try {
      let late = 0;
      t0.during = async () => {
        // Made on the hub just after the state to spread was read from it: too late for this comparison.
        late = (await ask(first, { op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle as number;
      };
      const during = await raw.reconcile();
      expect(during).to.deep.equal({ inSync: false, keys: [late], users: [], settings: false });
      expect(await raw.reconcile()).to.deep.equal({ inSync: true, keys: [], users: [], settings: false });
    } finally {
      await raw.close();
    }
  });
});
