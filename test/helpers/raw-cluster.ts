/**
 * A cluster handle (cluster-client's `Cluster`) over in-process members that a test controls:
 * members of one cluster (the first activated, with crypto user `app`; the others restored from
 * its backup), each behind a transport that can refuse chosen operations or hold them until the
 * test lets them go.
 */
import { Cluster, InProcessTransport, type ClusterOptions } from '../../src/cluster-client/index.js';
import { createMember, type Member, type MemberOptions, type Response } from '../../src/hsm-core/index.js';

export type Refusal = { code: string; message: string };

export class TestTransport extends InProcessTransport {
  /** Operations answered with a refusal, without asking the member. */
  readonly refuse = new Map<string, Refusal>();
  /** Operations that wait until their gate opens. */
  readonly #gates = new Map<string, Promise<void>>();

  constructor(readonly member: Member, index: number) {
    super(member, index);
  }

  /** Holds requests of `op` until the returned function is called. */
  hold(op: string): () => void {
    let open!: () => void;
    this.#gates.set(op, new Promise<void>((resolve) => (open = resolve)));
    return () => {
      this.#gates.delete(op);
      open();
    };
  }

  override async send(request: unknown): Promise<Response> {
    const op = (request as { op?: string }).op ?? '';
    const gate = this.#gates.get(op);
    if (gate) await gate;
    const refusal = this.refuse.get(op);
    if (refusal) return { ok: false, error: refusal } as Response;
    return super.send(request);
  }
}

export const ask = async (m: Member, request: Record<string, unknown>): Promise<Record<string, unknown>> => {
  const answer = await m.handle(request);
  if (!answer.ok) throw new Error(`${String(request.op)}: ${answer.error.message}`);
  return answer.result as Record<string, unknown>;
};

export const MEMBER_OPTIONS: MemberOptions = { passwordCost: 10, serviceKey: new Uint8Array(32).fill(5), appliancePassword: 'appliance-password' };

/** `size` members of one cluster, the first activated (admin `admin-password`, crypto user `app`). */
export async function clusterMembers(size: number): Promise<Member[]> {
  const first = await createMember(MEMBER_OPTIONS);
  await ask(first, { op: 'activateCluster', password: 'admin-password' });
  const admin = (await ask(first, { op: 'login', username: 'admin', password: 'admin-password' })).session as string;
  await ask(first, { op: 'createUser', session: admin, username: 'app', password: 'app-password', role: 'crypto-user' });
  const backup = (await ask(first, { op: 'createBackup', session: admin })).backup as Uint8Array;
  const all = [first];
  for (let i = 1; i < size; i++) {
    const m = await createMember({ ...MEMBER_OPTIONS, memberIndex: i });
    await ask(m, { op: 'restoreBackup', backup });
    all.push(m);
  }
  return all;
}

/**
 * A cluster handle over `size` such members. Each slot starts its member's transport the first
 * time; a start after that fails ("held down"), so a member marked down stays down.
 */
export async function rawCluster(size: number, options: ClusterOptions = { appliancePassword: 'appliance-password' }): Promise<{ cluster: Cluster; transports: TestTransport[] }> {
  const transports = (await clusterMembers(size)).map((m, i) => new TestTransport(m, i));
  const started = new Set<number>();
  const cluster = await Cluster.open(
    transports.map((t, i) => ({
      description: `member ${i}`,
      start: async () => {
        if (started.has(i)) throw new Error(`member ${i} is held down`);
        started.add(i);
        return t;
      },
    })),
    options,
  );
  return { cluster, transports };
}
