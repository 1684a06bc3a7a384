/**
 * CloudHSM CLI's `configure` (CloudHSM's configure tool) and `cluster activate | hsm-info`.
 *
 * @module
 */
import { Option, type Command } from 'commander';
import type { ClusterSession as HsmSession } from '../../cluster-client/index.js';
import { configPath, configure } from '../cli-context.js';
import { bad, message, readText, type Kit } from './shared.js';

export function addClusterCommands(root: Command, kit: Kit): void {
  const { ctx, leaf, run, password } = kit;
  // configure ------------------------------------------------------------------------------------
  root
    .command('configure')
    .description("write the connection file (CloudHSM's configure tool): where a member is and the certificates for mutual TLS")
    .requiredOption('--cluster <host:port>', 'a member of the cluster (the others are discovered)')
    .requiredOption('--ca <file>', "the trust anchor's certificate (customerCA.crt)")
    .option('--cert <file>', 'the client certificate (default: client.crt beside --ca)')
    .option('--key <file>', "the client certificate's key (default: client.key beside --ca)")
    .option('--cluster-id <id>', 'a name for this cluster, for --cluster-id on later commands', 'default')
    .action(run(async (o) => {
      const path = configPath(ctx.env);
      const entry = configure(path, {
        id: o.clusterId as string,
        cluster: o.cluster as string,
        ca: o.ca as string,
        ...(typeof o.cert === 'string' ? { cert: o.cert } : {}),
        ...(typeof o.key === 'string' ? { key: o.key } : {}),
      });
      return { 'config-file': path, 'cluster-id': entry.id, members: entry.members };
    }));

  // cluster ----------------------------------------------------------------------------------------
  const cluster = root.commands.find((c) => c.name() === 'cluster') ?? root.command('cluster').description('the cluster');
  leaf(cluster.command('activate').description("activate a new cluster: set the first admin's password"))
    .option('--password <password>', "the admin's new password (prompted for when absent)")
    .action(run(async (o) => {
      const pw = await password(o.password, true);
      await (await ctx.connection(o.clusterId)).activate(pw);
      return 'Cluster activation successful';
    }));
  addMtlsCommands(cluster, kit);
  leaf(cluster.command('hsm-info').description('the HSMs of the cluster')).action(run(async (o) => {
    const infos = await (await ctx.connection(o.clusterId)).hsmInfo();
    return {
      hsms: infos.map((i) => ({
        // CloudHSM CLI's fields, then Strongroom's.
        vendor: 'Strongroom (emulated)',
        model: i.model,
        'serial-number': i.serialNumber,
        'hardware-version-major': HARDWARE[0],
        'hardware-version-minor': HARDWARE[1],
        'firmware-version-major': FIRMWARE[0],
        'firmware-version-minor': FIRMWARE[1],
        'firmware-build-number': FIRMWARE[2],
        'firmware-id': `STRONGROOM-FW-${FIRMWARE[0]}.${FIRMWARE[1].padStart(2, '0')}-${FIRMWARE[2]}`,
        'fips-state': i.mode === 'fips' ? '2 [FIPS mode with single factor authentication]' : '0 [non-FIPS mode with single factor authentication]',
        'firmware-version': i.firmware,
        'cluster-id': i.clusterId,
        state: i.state,
        mode: i.mode,
        profile: i.profile,
        'member-index': i.memberIndex,
      })),
    };
  }));
}

/** `cluster mtls …` (hsm2m): trust anchors for client certificates and the enforcement level. */
function addMtlsCommands(cluster: Command, kit: Kit): void {
  const { ctx, leaf, run, approvalOf } = kit;
  const mtls = cluster.command('mtls').description('mutual TLS between clients and the HSMs (admins)');
  const ref = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
  /** Each anchor with its coverage: `full` when every member that is up holds it. */
  const anchors = async (session: HsmSession, clusterId: string | undefined) => {
    const members = (await ctx.connection(clusterId)).status().filter((m) => m.state === 'up');
    const lists = await Promise.all(members.map((m) => session.sendToMember(m.index, { op: 'getMtlsSettings' })));
    const seen = new Map<string, { reference: number; certificate: string; count: number }>();
    for (const list of lists) {
      for (const a of list.anchors) {
        const key = `${a.reference}:${a.certificate}`;
        const entry = seen.get(key);
        if (entry) entry.count += 1;
        else seen.set(key, { ...a, count: 1 });
      }
    }
    return [...seen.values()].map((a) => ({ 'certificate-reference': ref(a.reference), certificate: a.certificate, 'cluster-coverage': a.count === lists.length ? 'full' : 'inconsistent' }));
  };
  leaf(mtls.command('register-trust-anchor').description('accept client certificates issued under this CA (a PEM certificate or chain)'))
    .requiredOption('--path <file>', 'the trust anchor: a CA certificate, or its chain in hierarchical order (PEM)')
    .option('--approval <file>', 'a cluster-service quorum token signed by approvers')
    .action(run(async (o, session) => {
      const s = await session();
      const { reference } = await s.send({ op: 'registerTrustAnchor', certificate: readText(o.path as string, '--path'), ...approvalOf(o.approval) });
      const listed = (await anchors(s, o.clusterId)).find((a) => a['certificate-reference'] === ref(reference));
      return { trust_anchor: listed };
    }));
  leaf(mtls.command('deregister-trust-anchor').description('stop accepting client certificates under a trust anchor'))
    .requiredOption('--certificate-reference <ref>', 'as list-trust-anchors prints it (0x01)')
    .option('--approval <file>', 'a cluster-service quorum token signed by approvers')
    .action(run(async (o, session) => {
      const text = String(o.certificateReference);
      if (!/^(0x[0-9a-fA-F]{1,2}|\d{1,3})$/.test(text)) bad(`--certificate-reference: as list-trust-anchors prints it (0x01), got ${JSON.stringify(text)}`);
      const reference = Number(text);
      await (await session()).send({ op: 'deregisterTrustAnchor', reference, ...approvalOf(o.approval) });
      return message(`Trust anchor with reference ${ref(reference)} deregistered successfully`);
    }));
  leaf(mtls.command('list-trust-anchors').description('the registered trust anchors')).action(run(async (o, session) => ({ trust_anchors: await anchors(await session(), o.clusterId) })));
  leaf(mtls.command('get-enforcement').description('whether only clients with a certificate under a trust anchor connect')).action(run(async (_o, session) => {
    const { enforcement } = await (await session()).send({ op: 'getMtlsSettings' });
    return { 'mtls-enforcement-level': enforcement };
  }));
  leaf(mtls.command('set-enforcement').description('cluster: only clients with a certificate under a trust anchor connect (the admin named admin)'))
    .addOption(new Option('--level <level>', 'cluster or none').choices(['cluster', 'none']).makeOptionMandatory())
    .option('--approval <file>', 'a cluster-service quorum token signed by approvers')
    .action(run(async (o, session) => {
      const level = o.level as 'cluster' | 'none';
      await (await session()).send({ op: 'setMtlsEnforcement', level, ...approvalOf(o.approval) });
      return message(`Mtls enforcement level set to ${level === 'cluster' ? 'Cluster' : 'None'} successfully`);
    }));
}

/** The emulated hardware and firmware versions hsm-info reports (strings, as CloudHSM CLI prints them). */
const HARDWARE = ['1', '0'] as const;
const FIRMWARE = ['1', '0', '0'] as const;
