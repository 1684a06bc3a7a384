/**
 * `strongroom up`, what `npm start` runs, from the built package.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = promisify(execFile);

describe('cli: strongroom up', function () {
  this.timeout(60_000);

  it('starts a cluster, runs the quick-start sample, prints credentials and what it did, and exits 0', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'up'], { cwd: ROOT });
    expect(stdout).to.match(/^Strongroom: started a 1-member in-process cluster \(profile cloudhsm, member SR-[0-9A-F]{12}, state active\)/);
    expect(stdout).to.include('crypto user  app / strongroom-app');
    expect(stdout).to.include('decrypted: "attack at dawn"');
    expect(stdout).to.include('export refused: KEY_NOT_EXTRACTABLE');
    expect(stdout).to.include('Users on the member: admin (admin), app (crypto-user), app_user (appliance)');
  });

  it('refuses an unknown profile with a message and a non-zero exit', async () => {
    try {
      await run(process.execPath, [BIN, 'up', '--profile', 'fast'], { cwd: ROOT });
      expect.fail('should have failed');
    } catch (e) {
      const err = e as { code: number; stderr: string };
      expect(err.code).to.not.equal(0);
      expect(err.stderr).to.include("option '--profile <profile>' argument 'fast' is invalid. Allowed choices are cloudhsm, unlimited.");
    }
  });
});
