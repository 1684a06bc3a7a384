#!/usr/bin/env node
/**
 * The `strongroom` command: `up` (what `npm start` runs), `hsm serve`, `backup …`, `cluster …`,
 * `keytool`, and CloudHSM CLI's commands (`login`, `user …`, `quorum …`, `key …`, `crypto …`,
 * `audit …`, `configure`) in single-command mode, or interactive mode with no command.
 *
 * @module
 */
import { dirname, join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError, Option } from 'commander';
import { HsmError, PROFILE_NAMES, type ProfileName } from '../hsm-core/client.js';
import type { LocalCluster } from '../app/index.js';
import type { Relay } from '../relay/index.js';
import type { UpOptions } from './up.js';
import type { Io, Output } from './backup-commands.js';
import { CliContext } from './cli-context.js';
import { addCloudHsmCommands } from './cloudhsm/index.js';
import { LineReader, interactive } from './interactive.js';
import { CliCommand } from './command.js';
import { defaultDataDir } from './data-dir.js';

// Every process of ours (the CLI, and the TLS members, PKCS #11 door and relay it starts) frees
// the memory of dead ArrayBuffers on the thread that collected them, not on V8's background
// thread: there each free takes malloc's lock while this thread allocates the next answer's
// buffer, and on a small virtual machine the wait for that lock is a trip through the kernel.
// Measured on the 2-vCPU VM of bench/README.md: a 1 KiB ArrayBuffer cost 1.5-2.8 µs to make
// with the background thread and 0.3 µs without; an in-process member's AES-GCM of 1 KiB, one at
// a time, 12.4-12.8 µs and 6.5-7.2 µs. An application that embeds Strongroom decides for its
// own process (docs/webcrypto.md, "Speed").
setFlagsFromString('--no-concurrent-array-buffer-sweeping');

// Each command loads what it runs when it runs: a member process (`hsm serve`) or a single
// CloudHSM command does not load the relay, the KeyStore or the local cluster's supervisor.
const backups = () => import('./backup-commands.js');
const relayModule = () => import('../relay/index.js');
const upModule = () => import('./up.js');

// Usage errors exit 2, as CloudHSM CLI's (clap's) do; a refused command exits 1.
const program = new CliCommand()
  .name('strongroom')
  .description('An emulated AWS CloudHSM cluster for development and CI')
  .showHelpAfterError()
  .exitOverride();

const int = (name: string, min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}: an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
};

const DATA_DIR = defaultDataDir();
const io: Io = { out: (line) => console.log(line), err: (line) => console.error(line) };

/** Runs a command; a refusal is one line on stderr (and the error as JSON on stdout with --output json), exit 1. */
function act<O extends object>(fn: (opts: O, ...args: string[]) => unknown | Promise<unknown>) {
  return async (...args: unknown[]) => {
    const command = args.at(-1) as Command;
    const opts = command.opts() as O;
    try {
      await fn(opts, ...(args.slice(0, -2) as string[]));
    } catch (e) {
      const code = e instanceof HsmError ? e.code : 'ERROR';
      const message = e instanceof Error ? e.message : String(e);
      if ((opts as { output?: Output }).output === 'json') console.log(JSON.stringify({ error: { code, message } }, null, 2));
      console.error(`strongroom: ${message}`);
      process.exitCode = 1;
    }
  };
}

const outputOption = () => new Option('--output <format>', 'text, or json for machines').choices(['text', 'json']).default('text');

/** Serves a started cluster (and its relay) until SIGINT/SIGTERM, with its control socket for `strongroom cluster …`. */
async function serve(cluster: LocalCluster, dataDir: string, relay: Relay | null = null, pkcs11: { close(): Promise<void> } | null = null, controlPlane: { close(): Promise<void> } | null = null): Promise<void> {
  const { serveControl } = await import('./control.js');
  const control = await serveControl(cluster, dataDir);
  console.log(`Serving. Press Ctrl-C to stop. (Members: npx strongroom cluster status --data-dir ${dataDir})`);
  const stop = () => {
    control.close();
    void (relay?.close() ?? Promise.resolve())
      .then(() => pkcs11?.close())
      .then(() => controlPlane?.close())
      .then(() => cluster.close())
      .then(() => {
        console.log('Strongroom: stopped.');
        process.exit(0);
      });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

type UpFlags = { profile: ProfileName; mode?: 'fips' | 'non-fips'; members: number; transport: 'tls' | 'worker' | 'in-process'; dataDir: string; once?: boolean; relay?: string | false; controlPlane?: string | false; passwordCost?: number };

async function runUp(opts: UpFlags, extra: Partial<UpOptions> = {}): Promise<void> {
  const { relay: listen, controlPlane: api, ...rest } = opts;
  const { up } = await upModule();
  const { cluster, relay, pkcs11, controlPlane } = await up({
    ...rest,
    once: opts.once === true,
    relay: listen === false ? null : (listen ?? '127.0.0.1:8787'),
    controlPlane: api === false ? null : (api ?? '127.0.0.1:0'),
    log: (line) => console.log(line),
    ...extra,
  });
  if (!opts.once) await serve(cluster, resolve(opts.dataDir), relay, pkcs11, controlPlane);
}

const clusterOptions = (command: Command) =>
  command
    .addOption(new Option('--profile <profile>', 'limits to enforce: cloudhsm (hsm2m.medium), cloudhsm-hsm1 (hsm1.medium) or unlimited').choices([...PROFILE_NAMES]).default('cloudhsm'))
    .option('--members <n>', 'how many members', int('--members', 1, 32), 3)
    .addOption(new Option('--transport <transport>', 'where members run').choices(['tls', 'worker', 'in-process']).default('tls'))
    .addOption(new Option('--mode <mode>', "CloudHSM's cluster mode: fips refuses Ed25519 and RSA PKCS #1 v1.5 encryption and wrapping (default: non-fips; fips for cloudhsm-hsm1, which has no other)").choices(['fips', 'non-fips']))
    .option('--once', 'stop after starting instead of serving')
    .option('--relay <host:port>', 'where the relay and demo pages listen while serving (port 0: any free port)', '127.0.0.1:8787')
    .option('--no-relay', 'serve without the relay and demo pages')
    .option('--control-plane <host:port>', 'where the AWS CloudHSM V2 API listens while serving (port 0: any free port)', '127.0.0.1:0')
    .option('--no-control-plane', 'serve without the CloudHSM V2 API')
    .option('--password-cost <n>', "log2 of scrypt's N for new password hashes (10–20, default 15); lower it only for tests", int('--password-cost', 10, 20));

clusterOptions(
  program
    .command('up')
    .description('start a local cluster (three TLS members by default), create a development crypto user, run the quick-start sample, and serve until Ctrl-C')
    .option('--data-dir <dir>', 'the cluster folder (members, trust anchor, certificates, backups, cluster.json)', DATA_DIR),
).action(act<UpFlags>((opts) => runUp(opts)));

const backup = program.command('backup').description("the cluster's backups (in <data-dir>/backups, or --backup-dir)");
const storeOptions = (command: Command) =>
  command
    .option('--data-dir <dir>', 'the cluster folder', DATA_DIR)
    .option('--backup-dir <dir>', 'the backup store (default <data-dir>/backups)')
    .addOption(outputOption());
type StoreFlags = { dataDir: string; backupDir?: string; output: Output };

storeOptions(backup.command('list').description('list backups, newest first'))
  .option('--cluster-id <id>', "only this cluster's")
  .option('--region <name>', 'only those kept in this region (copy-to-region --destination-region)')
  .option('--states <states>', 'only these states, comma-separated: READY, PENDING_DELETION, DELETED')
  .action(act<StoreFlags & { clusterId?: string; region?: string; states?: string }>(async (opts) => {
    const { backupList, storeAt } = await backups();
    backupList(storeAt(opts), opts, io);
  }));
storeOptions(backup.command('delete <backup-id>').description('mark a backup for deletion (restorable for 7 days)')).action(
  act<StoreFlags>(async (opts, id) => {
    const { backupChange, storeAt } = await backups();
    backupChange(storeAt(opts).delete(id!), opts.output, io, 'marked for deletion; restorable for 7 days');
  }),
);
storeOptions(backup.command('restore <backup-id>').description('bring a backup marked for deletion back to READY')).action(
  act<StoreFlags>(async (opts, id) => {
    const { backupChange, storeAt } = await backups();
    backupChange(storeAt(opts).restore(id!), opts.output, io, 'restored');
  }),
);
storeOptions(backup.command('copy-to-region <backup-id>').description('copy a backup to another backup store (another region)'))
  .requiredOption('--destination-dir <dir>', "the other region's backup store")
  .option('--destination-region <name>', "the other region's name", 'copy')
  .action(
    act<StoreFlags & { destinationDir: string; destinationRegion: string }>(async (opts, id) => {
      const { backupChange, storeAt } = await backups();
      const copy = await storeAt(opts).copyTo(id!, storeAt({ dataDir: opts.dataDir, backupDir: opts.destinationDir, region: opts.destinationRegion }, true));
      backupChange(copy, opts.output, io, `copy of ${id}, with no cluster and no retention policy`);
    }),
  );
storeOptions(backup.command('set-retention').description("set a cluster's backup retention, 7–379 days (default 90)"))
  .requiredOption('--cluster-id <id>', 'the cluster')
  .requiredOption('--days <n>', 'days to keep backups', int('--days', 7, 379))
  .action(
    act<StoreFlags & { clusterId: string; days: number }>(async (opts) => {
      const { storeAt } = await backups();
      const store = storeAt(opts);
      store.setRetention(opts.clusterId, opts.days);
      const swept = store.sweep();
      const value = { clusterId: opts.clusterId, retentionDays: opts.days, ...swept };
      if (opts.output === 'json') io.out(JSON.stringify(value, null, 2));
      else io.out(`${opts.clusterId}: backups kept ${opts.days} days; ${swept.markedForDeletion.length} marked for deletion now, ${swept.deleted.length} deleted`);
    }),
  );
storeOptions(backup.command('modify <backup-id>').description('set never-expires, add or remove tags'))
  .option('--never-expires', 'never delete it for retention')
  .option('--no-never-expires', 'let retention apply again')
  .option('--tag <key=value...>', 'add tags')
  .option('--untag <key...>', 'remove tags')
  .action(
    act<StoreFlags & { neverExpires?: boolean; tag?: string[]; untag?: string[] }>(async (opts, id) => {
      const { backupChange, storeAt } = await backups();
      const tags = Object.fromEntries((opts.tag ?? []).map((t) => {
        const at = t.indexOf('=');
        if (at < 1) throw new HsmError('BAD_REQUEST', `--tag: key=value, got ${JSON.stringify(t)}`);
        return [t.slice(0, at), t.slice(at + 1)];
      }));
      const info = storeAt(opts).modify(id!, { ...(opts.neverExpires !== undefined ? { neverExpires: opts.neverExpires } : {}), tags, untag: opts.untag ?? [] });
      backupChange(info, opts.output, io, 'modified');
    }),
  );

const cluster = program.command('cluster').description('the members of a running cluster (strongroom up), and new clusters from backups');
cluster
  .command('add-member')
  .description('add a member to the running cluster: back up, restore onto the new member, route to it')
  .option('--data-dir <dir>', 'the running cluster\'s folder', DATA_DIR)
  .addOption(outputOption())
  .action(act<{ dataDir: string; output: Output }>(async (opts) => (await backups()).clusterMembership(resolve(opts.dataDir), 'add-member', undefined, opts.output, io)));
cluster
  .command('remove-member')
  .description('remove a member from the running cluster: back up, stop routing to it, shut it down')
  .requiredOption('--member <n>', 'the member number (see cluster status)', int('--member', 0, 31))
  .option('--data-dir <dir>', 'the running cluster\'s folder', DATA_DIR)
  .addOption(outputOption())
  .action(act<{ dataDir: string; member: number; output: Output }>(async (opts) => (await backups()).clusterMembership(resolve(opts.dataDir), 'remove-member', opts.member, opts.output, io)));
cluster
  .command('status')
  .description('the members of the running cluster')
  .option('--data-dir <dir>', 'the running cluster\'s folder', DATA_DIR)
  .addOption(outputOption())
  .action(act<{ dataDir: string; output: Output }>(async (opts) => (await backups()).clusterMembership(resolve(opts.dataDir), 'status', undefined, opts.output, io)));
clusterOptions(
  cluster
    .command('create-from-backup')
    .description('start a new cluster from a backup: its users, keys and policies, a cluster id of its own')
    .requiredOption('--backup-id <id>', 'the backup')
    .requiredOption('--backup-dir <dir>', 'the backup store that holds it')
    .requiredOption('--data-dir <dir>', "the new cluster's folder (give it the source installation's service.key and manufacturer.key, or its installation-keys.json and passphrase, to restore)"),
).action(
  act<UpFlags & { backupId: string; backupDir: string }>((opts) => runUp(opts, { fromBackup: { dir: opts.backupDir, backupId: opts.backupId } })),
);

program
  .command('hsm')
  .description('run HSM members')
  .command('serve')
  .description('serve one member over mutual TLS 1.3 (first start: writes the cluster CSR to sign)')
  .requiredOption('--listen <host:port>', 'where to listen, e.g. 127.0.0.1:2223 (port 0: any free port)')
  .requiredOption('--data-dir <dir>', "the member's folder: its key, CSR, certificate and the trust anchor's certificate")
  .option('--member-index <n>', "the member's number in its cluster, 0–31", int('--member-index', 0, 31), 0)
  .addOption(new Option('--profile <profile>', 'limits to enforce: cloudhsm (hsm2m.medium), cloudhsm-hsm1 (hsm1.medium) or unlimited').choices([...PROFILE_NAMES]).default('cloudhsm'))
  .option('--queue-limit <n>', 'requests worked on at once before answering busy', int('--queue-limit', 1, 1_000_000))
  .option('--password-cost <n>', "log2 of scrypt's N for password hashes (tests only below 15)", int('--password-cost', 10, 20))
  .option('--exit-with-stdin', 'stop when standard input closes (for a supervisor that may die)')
  .addOption(new Option('--mode <mode>', 'cluster mode: backups restore only into the same mode').choices(['fips', 'non-fips']).default('fips'))
  .action(async (opts: { listen: string; dataDir: string; memberIndex: number; profile: ProfileName; queueLimit?: number; passwordCost?: number; exitWithStdin?: boolean; mode: 'fips' | 'non-fips' }) => {
    const { hsmServe } = await import('./hsm-serve.js');
    let served: Awaited<ReturnType<typeof hsmServe>>;
    try {
      served = await hsmServe({ ...opts, log: (line) => console.log(line) });
    } catch (e) {
      console.error(`strongroom hsm: ${e instanceof Error ? e.message : String(e)}`);
      process.exitCode = 1;
      return;
    }
    if (!served) {
      process.exitCode = 2;
      return;
    }
    const stop = () => {
      void served.close().then(() => process.exit(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (opts.exitWithStdin) {
      process.stdin.on('close', stop);
      process.stdin.on('end', stop);
      process.stdin.resume();
    }
  });

program
  .command('relay')
  .description('serve browser pages: the WebSocket relay to the cluster, the browser bundle and the demo pages')
  .option('--listen <host:port>', 'where to listen (port 0: any free port)', '127.0.0.1:8787')
  .option('--cluster <cluster>', 'a cluster.json (strongroom up writes one) or host:port addresses (with --ca, --cert, --key)', '.strongroom/cluster.json')
  .option('--ca <file>', "the trust anchor's certificate, with addresses")
  .option('--cert <file>', 'the client certificate, with addresses')
  .option('--key <file>', "the client certificate's key, with addresses")
  .option('--allow-origin <origins...>', "origins allowed to connect (default: the relay's own)")
  .option('--demo-ca-user <user:password>', 'a crypto user whose HSM key is the demo CA (the certificate page); its certificate goes beside --cluster')
  .option('--no-demo', 'serve the WebSocket and the bundle only, not the demo pages')
  .action(
    act<{ listen: string; cluster: string; ca?: string; cert?: string; key?: string; allowOrigin?: string[]; demoCaUser?: string; demo: boolean }>(async (opts) => {
      const { listenAddress } = await upModule();
      const { demoSite, openDemoCa, startRelay } = await relayModule();
      const { connectFromEnvironment } = await import('../app/from-env.js');
      const { host, port } = listenAddress(opts.listen, '--listen');
      const cluster = await connectFromEnvironment({ STRONGROOM_CLUSTER: opts.cluster, STRONGROOM_CA: opts.ca, STRONGROOM_CERT: opts.cert, STRONGROOM_KEY: opts.key });
      let ca;
      if (opts.demoCaUser) {
        const colon = opts.demoCaUser.indexOf(':');
        if (colon < 1) throw new HsmError('BAD_REQUEST', '--demo-ca-user: user:password');
        const session = await cluster.login(opts.demoCaUser.slice(0, colon), opts.demoCaUser.slice(colon + 1), { role: 'crypto-user' });
        ca = await openDemoCa(session, join(dirname(resolve(opts.cluster.endsWith('.json') ? opts.cluster : '.')), 'demo-ca.crt'));
      }
      const site = demoSite();
      const relay = await startRelay({
        cluster,
        host,
        port,
        ...(opts.allowOrigin ? { allowedOrigins: opts.allowOrigin } : {}),
        ...(ca ? { ca } : {}),
        ...(opts.demo ? site : { files: { '/strongroom-browser.js': site.files['/strongroom-browser.js']! } }),
        log: (line) => console.error(line),
      });
      console.log(`Relay: ${relay.url}/${opts.demo ? ' (demo pages)' : ''}, WebSocket ${relay.url.replace('http', 'ws')}/ws`);
      const stop = () => void relay.close().then(() => cluster.close()).then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }),
  );

program
  .command('pkcs11')
  .description('the PKCS #11 door: applications load p11-kit-client.so and reach the cluster through this socket')
  .command('serve')
  .description('serve p11-kit\'s RPC protocol on a Unix socket (in a 0700 folder); the PIN is <crypto user>:<password>')
  .requiredOption('--socket <path>', 'the socket to listen on, e.g. .strongroom/pkcs11/pkcs11.sock')
  .option('--cluster <cluster>', 'a cluster.json (strongroom up writes one) or host:port addresses (with --ca, --cert, --key)', '.strongroom/cluster.json')
  .option('--ca <file>', "the trust anchor's certificate, with addresses")
  .option('--cert <file>', 'the client certificate, with addresses')
  .option('--key <file>', "the client certificate's key, with addresses")
  .option('--objects <dir>', 'where token certificates and data objects are kept (default: objects beside the socket)')
  .option('--max-connections <n>', 'the most applications connected at once; one more is turned away', int('--max-connections', 1, 65_536), 256)
  .option('--max-sessions <n>', "the most sessions one connection may have open (C_OpenSession is then refused CKR_SESSION_COUNT)", int('--max-sessions', 1, 1_000_000), 1024)
  .action(
    act<{ socket: string; cluster: string; ca?: string; cert?: string; key?: string; objects?: string; maxConnections: number; maxSessions: number }>(async (opts) => {
      const { connectFromEnvironment } = await import('../app/from-env.js');
      const { servePkcs11, moduleLines } = await import('../pkcs11/index.js');
      const cluster = await connectFromEnvironment({ STRONGROOM_CLUSTER: opts.cluster, STRONGROOM_CA: opts.ca, STRONGROOM_CERT: opts.cert, STRONGROOM_KEY: opts.key });
      const socket = resolve(opts.socket);
      const clusterId = (await cluster.hsmInfo())[0]?.clusterId ?? 'cluster';
      const door = await servePkcs11({ cluster, socket, objectsFolder: resolve(opts.objects ?? join(dirname(socket), 'objects')), clusterId, maxConnections: opts.maxConnections, maxSessions: opts.maxSessions, log: (line) => console.error(`strongroom pkcs11: ${line}`) });
      for (const line of moduleLines(door.socket)) console.log(line);
      const stop = () => void door.close().then(() => cluster.close()).then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }),
  );

program
  .command('control-plane')
  .description('the AWS management plane: the CloudHSM V2 API (aws cloudhsmv2, @aws-sdk/client-cloudhsm-v2) over clusters of real members')
  .command('serve')
  .description('serve the CloudHSM V2 API on loopback; its clusters, HSMs and backups live in --data-dir')
  .option('--data-dir <dir>', 'where its records, clusters and backups are kept', '.strongroom/control-plane')
  .option('--listen <host:port>', 'loopback address (port 0: any free port)', '127.0.0.1:8788')
  .option('--any-credentials', 'development mode: accept any SigV4 signature, whatever its key')
  .option('--password-cost <n>', "log2 of scrypt's N for the members' password hashes (10–20); lower it only for tests", int('--password-cost', 10, 20))
  .option('--audit-log-dir <dir>', "where the members' audit logs are written as CloudWatch Logs streams (default: cloudwatch-logs in --data-dir)")
  .action(
    act<{ dataDir: string; listen: string; anyCredentials?: boolean; passwordCost?: number; auditLogDir?: string }>(async (opts) => {
      const { ControlPlane, serveControlPlane, folderCredentials, endpointLines } = await import('../control-plane/index.js');
      const dir = resolve(opts.dataDir);
      const plane = new ControlPlane({
        dataDir: dir,
        log: (line) => console.error(line),
        ...(opts.passwordCost !== undefined ? { passwordCost: opts.passwordCost } : {}),
        ...(opts.auditLogDir !== undefined ? { auditLogDir: resolve(opts.auditLogDir) } : {}),
      });
      await plane.resume();
      const keys = opts.anyCredentials ? null : folderCredentials(dir);
      const server = await serveControlPlane(plane, { listen: opts.listen, credentials: keys, log: (line) => console.error(line) });
      for (const line of endpointLines(server.url, keys?.[0] ?? null)) console.log(line);
      const stop = () => void server.close().then(() => plane.close()).then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }),
  );

program
  .command('keytool')
  .description("Java's keytool against a CloudHSM store: -genkeypair (in the HSM), -certreq, -gencert, -importcert, -importkeystore, -exportcert, -list, -delete")
  .allowUnknownOption()
  .helpOption(false)
  .argument('[args...]', "keytool's own options, e.g. -list -keystore ks.p12 -storepass secret")
  .action(async (args: string[]) => {
    const { keytool } = await import('./keytool.js');
    process.exitCode = await keytool(args, { out: (l) => console.log(l), err: (l) => console.error(l), env: process.env });
  });

// CloudHSM CLI's commands, in single-command mode (credentials from CLOUDHSM_ROLE / CLOUDHSM_PIN).
let stdinReader: LineReader | null = null;
const single = new CliContext(
  {
    out: (text) => console.log(text),
    err: (text) => console.error(text),
    ask: (prompt, hidden) => {
      stdinReader ??= new LineReader(process.stdin, process.stderr, Boolean(process.stdin.isTTY));
      return stdinReader.ask(prompt, hidden);
    },
  },
  'single',
);
addCloudHsmCommands(program, single);
program.hook('postAction', () => {
  stdinReader?.close();
});

const runInteractive = (clusterId?: string) =>
  interactive({ input: process.stdin, output: process.stdout, terminal: Boolean(process.stdin.isTTY && process.stdout.isTTY), ...(clusterId ? { clusterId } : {}) });
program
  .command('interactive')
  .description('interactive mode (also: strongroom with no command): a prompt with history and completion')
  .option('--cluster-id <id>', 'the configured cluster for every command')
  .action((opts: { clusterId?: string }) => runInteractive(opts.clusterId));

const parsing = process.argv.length <= 2 ? runInteractive() : program.parseAsync(process.argv);
parsing.catch((e: unknown) => {
  if (e instanceof CommanderError) {
    // Commander has said what was wrong (or shown the help asked for).
    process.exitCode = e.exitCode === 0 ? 0 : 2;
    return;
  }
  console.error(`strongroom: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
