/**
 * Mutual TLS settings in the member (ops/mtls-ops.ts): trust anchors and the enforcement level,
 * each refusal by its message, and how they travel as cluster settings. The TLS host's enforcement
 * runs in test/cli/cloudhsm-fidelity.test.ts against a TLS member.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { activatedMember } from '../helpers/member.js';

describe('hsm-core: mutual TLS settings', () => {
  let dir: string;
  const pem = (name: string) => readFileSync(join(dir, name), 'utf8');
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-mtls-'));
    const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    for (const name of ['root-a', 'root-b', 'root-c']) {
      ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '30', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE']);
    }
    ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.crt', '-days', '30', '-subj', '/CN=leaf', '-addext', 'basicConstraints=critical,CA:FALSE']);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('registers up to two CA anchors, refuses what is not one, and enforces only with an anchor; the default admin alone sets enforcement', async () => {
    const f = await activatedMember();
    expect(await f.m.ok({ op: 'getMtlsSettings' })).to.deep.equal({ anchors: [], enforcement: 'none' });
    const fail = async (request: Record<string, unknown>, code: string) => (await f.m.fail({ session: f.admin, ...request }, code as 'BAD_REQUEST')).message;
    expect(await fail({ op: 'setMtlsEnforcement', level: 'cluster' }, 'BAD_REQUEST')).to.equal('level: no trust anchor is registered, so enforcing mTLS would refuse every client; register one with cluster mtls register-trust-anchor first');
    expect(await fail({ op: 'registerTrustAnchor', certificate: pem('leaf.crt') }, 'BAD_REQUEST')).to.equal('certificate: Invalid Certificate: CN=leaf is not a CA certificate (basicConstraints CA:TRUE), so it cannot anchor client certificates');
    expect(await fail({ op: 'registerTrustAnchor', certificate: 'hello' }, 'BAD_REQUEST')).to.equal('certificate: Invalid Certificate: no PEM certificate (-----BEGIN CERTIFICATE-----) in it');
    expect((await f.m.ok({ op: 'registerTrustAnchor', session: f.admin, certificate: pem('root-a.crt') })).reference).to.equal(1);
    expect(await fail({ op: 'registerTrustAnchor', certificate: pem('root-a.crt') }, 'BAD_REQUEST')).to.equal('certificate: Invalid Certificate: Trust anchor already exists (0x01).');
    expect((await f.m.ok({ op: 'registerTrustAnchor', session: f.admin, certificate: pem('root-b.crt') })).reference).to.equal(2);
    expect(await fail({ op: 'registerTrustAnchor', certificate: pem('root-c.crt') }, 'LIMIT_EXCEEDED')).to.equal('certificate: 2 trust anchors are registered already, as many as hsm2m allows; deregister one first');
    await f.m.fail({ op: 'registerTrustAnchor', session: f.alice, certificate: pem('root-c.crt') }, 'PERMISSION_DENIED');
    const admin2 = await f.m.login('admin2', 'admin2-password');
    expect((await f.m.fail({ op: 'setMtlsEnforcement', session: admin2, level: 'cluster' }, 'PERMISSION_DENIED')).message).to.equal('level: only the admin named admin sets the mTLS enforcement, not admin2');
    await f.m.ok({ op: 'setMtlsEnforcement', session: f.admin, level: 'cluster' });
    await f.m.ok({ op: 'deregisterTrustAnchor', session: f.admin, reference: 1 });
    expect(await fail({ op: 'deregisterTrustAnchor', reference: 2 }, 'BAD_REQUEST')).to.equal('reference: 0x02 is the last trust anchor and mTLS is enforced; set the enforcement to none first, or no client could connect');
    expect(await fail({ op: 'deregisterTrustAnchor', reference: 7 }, 'BAD_REQUEST')).to.equal('reference: no trust anchor 0x07 (registered: 0x02)');
    // The freed reference is given again.
    expect((await f.m.ok({ op: 'registerTrustAnchor', session: f.admin, certificate: pem('root-c.crt') })).reference).to.equal(1);
    const settings = await f.m.ok({ op: 'getMtlsSettings' });
    expect(settings.enforcement).to.equal('cluster');
    expect(settings.anchors.map((a) => a.reference)).to.deep.equal([1, 2]);
  });

  it('the settings travel to another member of the cluster with the quorum values, and the cluster quorum service approves changes', async () => {
    const f = await activatedMember();
    await f.m.ok({ op: 'registerTrustAnchor', session: f.admin, certificate: pem('root-a.crt') });
    const { maskedSettings } = await f.m.ok({ op: 'extractMaskedSettings', session: f.admin });
    // The settings as they travel to the cluster's other members: an older copy is refused as stale,
    // and the current one merges as the same (its digest does not depend on the order of its keys).
    await f.m.ok({ op: 'setMtlsEnforcement', session: f.admin, level: 'cluster' });
    const newer = (await f.m.ok({ op: 'extractMaskedSettings', session: f.admin })).maskedSettings;
    expect((await f.m.fail({ op: 'insertMaskedSettings', session: f.admin, maskedSettings }, 'MASKED_OBJECT_STALE')).message).to.contain('newer cluster settings');
    expect((await f.m.ok({ op: 'insertMaskedSettings', session: f.admin, maskedSettings: newer })).merged).to.equal('same');
    await f.m.ok({ op: 'setQuorumValue', session: f.admin, service: 'cluster', value: 2 });
    expect((await f.m.fail({ op: 'setMtlsEnforcement', session: f.admin, level: 'none' }, 'QUORUM_APPROVAL_REQUIRED')).message).to.contain('Quorum approval is required for this operation');
  });
});
