/**
 * CloudHSM CLI's `configure` (CloudHSM's configure tool) and `cluster activate | hsm-info`.
 *
 * @module
 */
import type { Command } from 'commander';
import { configPath, configure } from '../cli-context.js';
import type { Kit } from './shared.js';

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

/** The emulated hardware and firmware versions hsm-info reports (strings, as CloudHSM CLI prints them). */
const HARDWARE = ['1', '0'] as const;
const FIRMWARE = ['1', '0', '0'] as const;
