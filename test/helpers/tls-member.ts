/**
 * A member served over mutual TLS on loopback, as `strongroom hsm serve` serves one: its cluster
 * certificate signed by a test trust anchor, a client certificate from the same anchor, a crypto
 * user `app`, and a count of the requests it handled.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMember, ensureClusterCsr, MEMBER_FILES, serveMember, type Member, type Served } from '../../src/hsm-core/index.js';
import { TrustAnchor } from '../../src/cluster-client/index.js';

export interface Fixture {
  dir: string;
  anchor: TrustAnchor;
  member: Member;
  served: Served;
  handled: { count: number };
  client: { cert: string; key: string };
  address: string;
  logs: string[];
}

export async function startMember(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-tls-'));
  const anchor = await TrustAnchor.openOrCreate(dir);
  const memberDir = join(dir, 'member-0');
  const csr = await ensureClusterCsr(memberDir, 'fuzzed member');
  writeFileSync(join(memberDir, MEMBER_FILES.cert), await anchor.signClusterCsr(csr));
  writeFileSync(join(memberDir, MEMBER_FILES.ca), anchor.pem);
  const inner = await createMember({ profile: 'unlimited', passwordCost: 10 });
  const handled = { count: 0 };
  const member: Member = {
    handle: (r) => {
      handled.count += 1;
      return inner.handle(r);
    },
    close: () => inner.close(),
    answersInLaterTurns: () => inner.answersInLaterTurns(),
  };
  const logs: string[] = [];
  const served = await serveMember({ member, dataDir: memberDir, host: '127.0.0.1', port: 0, log: (l) => logs.push(l) });
  await member.handle({ op: 'activateCluster', password: 'admin-password' });
  const admin = await member.handle({ op: 'login', username: 'admin', password: 'admin-password' });
  const session = (admin as { result: { session: string } }).result.session;
  await member.handle({ op: 'createUser', session, username: 'app', password: 'app-password', role: 'crypto-user' });
  await member.handle({ op: 'logout', session });
  return { dir, anchor, member, served, handled, client: await anchor.issueClient('test client'), address: `127.0.0.1:${served.port}`, logs };
}

