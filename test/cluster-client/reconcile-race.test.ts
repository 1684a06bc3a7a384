/**
 * Changes that meet the cluster's comparison of its members (Cluster.reconcile): one made while
 * it compares is reported as still differing, and the next comparison settles it; one still on its
 * way to a member when the summaries are asked costs no full comparison.
 */
import { expect } from 'chai';
import { Cluster, InProcessTransport } from '../../src/cluster-client/index.js';
import { createMember, type Member, type Response } from '../../src/hsm-core/index.js';

/** Counts the full (not summary-only) sync statuses it answers, and runs `afterStatus(full)` once, right after the status that asks for it. */
class Watched extends InProcessTransport {
  full = 0;
  /** Sends sync statuses without their summary, as a member that sends none would. */
  withoutSummary = false;
  afterStatus: { full: boolean; n: number; run: () => Promise<void> } | null = null;
  #seen = { full: 0, summary: 0 };
  constructor(member: Member, index: number) {
    super(member, index);
  }
  override async send(request: unknown): Promise<Response> {
    const sent = await super.send(request);
    const r = request as { op?: string; summaryOnly?: boolean };
    if (r.op !== 'getSyncStatus') return sent;
    const answer = this.withoutSummary && sent.ok ? ({ ...sent, result: { ...(sent.result as object), summary: undefined } } as unknown as Response) : sent;
    const full = !r.summaryOnly;
    if (full) this.full += 1;
    const seen = full ? ++this.#seen.full : ++this.#seen.summary;
    const after = this.afterStatus;
    if (after && after.full === full && after.n === seen) {
      this.afterStatus = null;
      await after.run();
    }
    return answer;
  }
}

async function ask(m: Member, request: Record<string, unknown>): Promise<Record<string, unknown>> {
  const answer = await m.handle(request);
  if (!answer.ok) throw new Error(`${String(request.op)}: ${answer.error.message}`);
  return answer.result as Record<string, unknown>;
}

/**
 * Runs `test` on two members of one cluster and a cluster client over watched transports, then
 * closes the client. `newKey` makes a token key on the first member only (alice's); `appliance`
 * logs in on the second as the appliance user.
 */
async function withTwoMembers(
  test: (c: { first: Member; second: Member; alice: string; transports: readonly [Watched, Watched]; raw: Cluster; newKey: () => Promise<number>; appliance: () => Promise<string> }) => Promise<void>,
): Promise<void> {
  const serviceKey = new Uint8Array(32).fill(11);
  const options = { passwordCost: 10, serviceKey, appliancePassword: 'appliance-password' };
  const first = await createMember(options);
  await first.handle({ op: 'activateCluster', password: 'admin-password' });
  const admin = (await ask(first, { op: 'login', username: 'admin', password: 'admin-password' })).session as string;
  await ask(first, { op: 'createUser', session: admin, username: 'alice', password: 'alice-password', role: 'crypto-user' });
  const backup = (await ask(first, { op: 'createBackup', session: admin })).backup as Uint8Array;
  const second = await createMember({ ...options, memberIndex: 1 });
  await ask(second, { op: 'restoreBackup', backup });
  const alice = (await ask(first, { op: 'login', username: 'alice', password: 'alice-password' })).session as string;
  const transports = [new Watched(first, 0), new Watched(second, 1)] as const;
  const raw = await Cluster.open(
    transports.map((t, i) => ({ description: `member ${i}`, start: async () => t })),
    { appliancePassword: 'appliance-password' },
  );
  const newKey = async () => (await ask(first, { op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle as number;
  const appliance = async () => (await ask(second, { op: 'login', username: 'app_user', password: 'appliance-password' })).session as string;
  try {
    await test({ first, second, alice, transports, raw, newKey, appliance });
  } finally {
    await raw.close();
  }
}

describe('cluster-client: changes that meet a comparison', function () {
  this.timeout(30_000);

  it('a change made during one is reported as still differing, and the next comparison settles it', () =>
    withTwoMembers(async ({ transports, raw, newKey }) => {
      // Something to compare: a key on the first member only.
      await newKey();
      let late = 0;
      transports[0].afterStatus = {
        full: true,
        n: 2,
        // Made on the hub just after the state to spread was read from it: too late for this comparison.
        run: async () => {
          late = await newKey();
        },
      };
      const during = await raw.reconcile();
      expect(during).to.deep.equal({ inSync: false, keys: [late], users: [], settings: false });
      expect(await raw.reconcile()).to.deep.equal({ inSync: true, keys: [], users: [], settings: false });
    }));

  it('a change on its way to a member when the summaries are asked makes them differ for a moment, and costs no full comparison', () =>
    withTwoMembers(async ({ first, second, alice, transports, raw, newKey, appliance }) => {
      const handle = await newKey();
      const { maskedObject } = await ask(first, { op: 'extractMaskedObject', session: alice, handle });
      const session = await appliance();
      // The second member takes the key just after it answered the summary without it.
      transports[1].afterStatus = { full: false, n: 1, run: async () => void (await ask(second, { op: 'insertMaskedObject', session, maskedObject })) };
      expect(await raw.reconcile()).to.deep.equal({ inSync: true, keys: [], users: [], settings: false });
      expect(transports.map((t) => t.full), 'full statuses asked').to.deep.equal([0, 0]);
    }));

  it('members whose statuses carry no summary are compared key by key, not taken as agreeing', () =>
    withTwoMembers(async ({ second, transports, raw, newKey, appliance }) => {
      const handle = await newKey();
      for (const t of transports) t.withoutSummary = true;
      // Without summaries nothing says the members agree: the comparison copies the key, and says it cannot tell.
      expect(await raw.reconcile()).to.deep.equal({ inSync: false, keys: [], users: [], settings: false });
      const status = (await ask(second, { op: 'getSyncStatus', session: await appliance() })) as { keys: { handle: number }[] };
      expect(status.keys.map((k) => k.handle)).to.include(handle);
    }));
});
