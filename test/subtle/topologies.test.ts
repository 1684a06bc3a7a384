/**
 * The WebCrypto door's own tests on clusters of more than one member (issue 18): the same files
 * that run here against one in-process member run again against two worker members and two TLS
 * members (STRONGROOM_DOOR, read by test/helpers/door.ts), each in a mocha of its own, and every
 * test must pass there too — session keys made on different members included (a wrap, an unwrap
 * or a key agreement moves one of them beside the other; see cluster-client/channel.ts).
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MOCHA = join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js');
const FILES = ['crypto', 'errors', 'differential', 'keys', 'parity', 'wycheproof'].map((n) => join(ROOT, 'test', 'subtle', `${n}.test.ts`));
const run = promisify(execFile);

interface Report {
  passes: { fullTitle: string }[];
  pending: { fullTitle: string }[];
  failures: { fullTitle: string; err: { message?: string } }[];
}

/** Mocha's JSON report of the door's test files, on the door `door` names (or its dry run: every test's title). */
async function report(door: string, dryRun = false): Promise<Report> {
  // --exit: the door's clusters live as long as the process (test/helpers/door.ts).
  const args = [MOCHA, '--no-parallel', '--exit', '--reporter', 'json', ...(dryRun ? ['--dry-run'] : []), ...FILES];
  // Wycheproof takes every 10th vector of each file here (all of them run on one member).
  const env = { ...process.env, STRONGROOM_DOOR: door, STRONGROOM_WYCHEPROOF_STRIDE: '10' };
  const { stdout } = await run(process.execPath, args, { cwd: ROOT, env, maxBuffer: 64 << 20 }).catch((e: { stdout?: string; message: string }) => {
    // Failing tests make mocha exit non-zero; its report is still on stdout.
    if (e.stdout?.trimStart().startsWith('{')) return { stdout: e.stdout };
    throw new Error(`mocha on ${door} members did not report: ${e.message}`);
  });
  return JSON.parse(stdout) as Report;
}

const titles = (tests: { fullTitle: string }[]) => tests.map((t) => t.fullTitle).sort();

describe('subtle: the door\'s tests on two worker members and on two TLS members', function () {
  this.timeout(240_000);

  it('pass there as on one in-process member: the same tests pass, the same ones are skipped', async () => {
    const [expected, worker, tls] = await Promise.all([report('in-process', true), report('worker'), report('tls')]);
    expect(expected.passes.length).to.be.greaterThan(150);
    for (const [door, got] of [['worker', worker], ['tls', tls]] as const) {
      expect(got.failures.map((f) => `${f.fullTitle}: ${f.err.message ?? ''}`), door).to.deep.equal([]);
      expect(titles(got.passes), door).to.deep.equal(titles(expected.passes));
      expect(titles(got.pending), door).to.deep.equal(titles(expected.pending));
    }
  });
});
