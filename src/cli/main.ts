#!/usr/bin/env node
/**
 * The `strongroom` command. For now: `strongroom up`, the embedded default that `npm start` runs.
 *
 * @module
 */
import { Command, Option } from 'commander';
import { PROFILE_NAMES } from '../hsm-core/index.js';
import { up } from './up.js';
import { hsmServe } from './hsm-serve.js';

const program = new Command()
  .name('strongroom')
  .description('An emulated AWS CloudHSM cluster for development and CI')
  .showHelpAfterError();

const int = (name: string, min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}: an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
};

program
  .command('up')
  .description('start a local cluster (three TLS members by default), create a development crypto user, run the quick-start sample, and serve until Ctrl-C')
  .addOption(new Option('--profile <profile>', 'limits to enforce').choices([...PROFILE_NAMES]).default('cloudhsm'))
  .option('--members <n>', 'how many members', int('--members', 1, 32), 3)
  .addOption(new Option('--transport <transport>', 'where members run').choices(['tls', 'worker', 'in-process']).default('tls'))
  .option('--data-dir <dir>', 'the cluster folder (trust anchor, certificates, cluster.json)', process.env.STRONGROOM_DATA_DIR ?? '.strongroom')
  .option('--once', 'stop after the quick-start sample instead of serving')
  .action(async (opts: { profile: 'cloudhsm' | 'unlimited'; members: number; transport: 'tls' | 'worker' | 'in-process'; dataDir: string; once?: boolean }) => {
    const cluster = await up({ ...opts, once: opts.once === true, log: (line) => console.log(line) });
    if (opts.once) return;
    const stop = () => {
      void cluster.close().then(() => {
        console.log('Strongroom: stopped.');
        process.exit(0);
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });


program
  .command('hsm')
  .description('run HSM members')
  .command('serve')
  .description('serve one member over mutual TLS 1.3 (first start: writes the cluster CSR to sign)')
  .requiredOption('--listen <host:port>', 'where to listen, e.g. 127.0.0.1:2223 (port 0: any free port)')
  .requiredOption('--data-dir <dir>', "the member's folder: its key, CSR, certificate and the trust anchor's certificate")
  .option('--member-index <n>', "the member's number in its cluster, 0–31", int('--member-index', 0, 31), 0)
  .addOption(new Option('--profile <profile>', 'limits to enforce').choices([...PROFILE_NAMES]).default('cloudhsm'))
  .option('--queue-limit <n>', 'requests worked on at once before answering busy', int('--queue-limit', 1, 1_000_000))
  .option('--password-cost <n>', "log2 of scrypt's N for password hashes (tests only below 15)", int('--password-cost', 10, 20))
  .option('--exit-with-stdin', 'stop when standard input closes (for a supervisor that may die)')
  .addOption(new Option('--mode <mode>', 'cluster mode: backups restore only into the same mode').choices(['fips', 'non-fips']).default('fips'))
  .action(async (opts: { listen: string; dataDir: string; memberIndex: number; profile: 'cloudhsm' | 'unlimited'; queueLimit?: number; passwordCost?: number; exitWithStdin?: boolean; mode: 'fips' | 'non-fips' }) => {
    const served = await hsmServe({ ...opts, log: (line) => console.log(line) });
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

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(`strongroom: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
