#!/usr/bin/env node
/**
 * The `strongroom` command. For now: `strongroom up`, the embedded default that `npm start` runs.
 *
 * @module
 */
import { Command, Option } from 'commander';
import { PROFILE_NAMES } from '../hsm-core/index.js';
import { up } from './up.js';

const program = new Command()
  .name('strongroom')
  .description('An emulated AWS CloudHSM cluster for development and CI')
  .showHelpAfterError();

program
  .command('up')
  .description('start a local cluster, activate it, create a development crypto user and run the quick-start sample')
  .addOption(new Option('--profile <profile>', 'limits to enforce').choices([...PROFILE_NAMES]).default('cloudhsm'))
  .action(async (opts: { profile: 'cloudhsm' | 'unlimited' }) => {
    await up({ profile: opts.profile, log: (line) => console.log(line) });
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(`strongroom: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
