/**
 * `strongroom backup …` and `strongroom cluster …` from the built package.
 */
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const exec = promisify(execFile);

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], { cwd: ROOT });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

const json = async (...args: string[]) => {
  const r = await cli(...args, '--output', 'json');
  if (r.code !== 0) expect.fail(`strongroom ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};

describe('cli: strongroom backup and cluster', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  const dir = (name: string) => {
    const d = mkdtempSync(join(tmpdir(), `strongroom-cli-${name}-`));
    dirs.push(d);
    return d;
  };
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('backup list, delete, restore, modify, set-retention and copy-to-region', async () => {
    const d = dir('backup');
    const started = await cli('up', '--once', '--data-dir', d, '--members', '2', '--transport', 'in-process', '--password-cost', '10');
    expect(started.code, started.stderr).to.equal(0);
    const { backups } = (await json('backup', 'list', '--data-dir', d)) as { backups: { backupId: string; clusterId: string; state: string; trigger: string }[] };
    expect(backups).to.have.length(1);
    const [b] = backups;
    expect(b).to.include({ state: 'READY', trigger: 'activation' });
    expect((await cli('backup', 'list', '--data-dir', d)).stdout).to.match(new RegExp(`^BACKUP ID +CLUSTER +REGION +STATE[^\\n]*\\n${b!.backupId} +${b!.clusterId} +local +READY`));
    // A mistyped cluster folder is named, and nothing is created there.
    const typo = await cli('backup', 'list', '--data-dir', `${d}-typo`);
    expect(typo.code).to.equal(1);
    expect(typo.stderr).to.include(`--data-dir ${d}-typo: no such folder`);
    expect(existsSync(`${d}-typo`)).to.equal(false);

    expect(((await json('backup', 'delete', b!.backupId, '--data-dir', d)) as { backup: { state: string } }).backup.state).to.equal('PENDING_DELETION');
    expect((await cli('backup', 'restore', b!.backupId, '--data-dir', d)).stdout).to.include(`${b!.backupId}: restored (state READY)`);
    const modified = (await json('backup', 'modify', b!.backupId, '--never-expires', '--tag', 'team=payments', '--data-dir', d)) as { backup: { neverExpires: boolean; tags: Record<string, string> } };
    expect(modified.backup).to.deep.include({ neverExpires: true, tags: { team: 'payments' } });

    const bad = await cli('backup', 'set-retention', '--cluster-id', b!.clusterId, '--days', '6', '--data-dir', d);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(/--days: an integer from 7 to 379, got "6"/);
    const misspelt = await cli('backup', 'set-retention', '--cluster-id', b!.clusterId, '--dyas', '30', '--data-dir', d);
    // A usage error exits 2 (a refused command, 1).
    expect(misspelt.code).to.equal(2);
    expect(misspelt.stderr).to.include("required option '--days <n>' not specified (you typed --dyas; did you mean --days?)");
    expect((await json('backup', 'set-retention', '--cluster-id', b!.clusterId, '--days', '30', '--data-dir', d)).retentionDays).to.equal(30);

    const region = dir('region');
    const copy = (await json('backup', 'copy-to-region', b!.backupId, '--destination-dir', region, '--destination-region', 'eu-west-1', '--data-dir', d)) as { backup: { backupId: string; clusterId: null; sourceRegion: string } };
    expect(copy.backup).to.include({ clusterId: null, sourceRegion: 'local', region: 'eu-west-1' });
    expect(((await json('backup', 'list', '--backup-dir', region)) as { backups: unknown[] }).backups).to.have.length(1);
    expect(((await json('backup', 'list', '--backup-dir', region, '--region', 'eu-west-1')) as { backups: { backupId: string }[] }).backups.map((x) => x.backupId)).to.deep.equal([copy.backup.backupId]);
    expect(((await json('backup', 'list', '--backup-dir', region, '--region', 'us-east-1')) as { backups: unknown[] }).backups).to.deep.equal([]);
    expect((await cli('backup', 'list', '--backup-dir', region)).stdout).to.match(new RegExp(`\\n${copy.backup.backupId} +\\(copy of ${b!.backupId} from local\\) +eu-west-1 +READY`));

    const missing = await cli('backup', 'delete', 'backup-aaaaaaaaaaa', '--data-dir', d, '--output', 'json');
    expect(missing.code).to.equal(1);
    expect(JSON.parse(missing.stdout)).to.deep.equal({ error: { code: 'BAD_REQUEST', message: `backup backup-aaaaaaaaaaa: not in the store at ${join(d, 'backups')}` } });

    // A new cluster from the backup (same installation: its two backup keys go with it).
    const fresh = dir('from-backup');
    for (const file of ['service.key', 'manufacturer.key']) copyFileSync(join(d, file), join(fresh, file));
    const made = await cli('cluster', 'create-from-backup', '--backup-id', b!.backupId, '--backup-dir', join(d, 'backups'), '--data-dir', fresh, '--members', '2', '--transport', 'in-process', '--once');
    expect(made.code, made.stderr).to.equal(0);
    expect(made.stdout).to.include(`made from backup ${b!.backupId}`);
    expect(made.stdout).to.not.include(b!.clusterId);
  });

  it('cluster add-member, status and remove-member on a running cluster, with progress', async () => {
    const d = dir('members');
    const none = await cli('cluster', 'add-member', '--data-dir', d);
    expect(none.code).to.equal(1);
    expect(none.stderr).to.match(/no running cluster at .*start it with npm start, or npx strongroom up/);

    const child = spawn(process.execPath, [BIN, 'up', '--data-dir', d, '--members', '2', '--transport', 'worker', '--no-relay', '--password-cost', '10'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      while (!out.includes('Serving. Press Ctrl-C')) {
        if (child.exitCode !== null) expect.fail(`up exited: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const added = await cli('cluster', 'add-member', '--data-dir', d, '--output', 'json');
      expect(added.code, added.stderr).to.equal(0);
      expect(JSON.parse(added.stdout).member).to.equal(2);
      expect(added.stderr).to.match(/… backing up an existing member/);
      expect(added.stderr).to.match(/✓ starting member 2 and restoring the backup onto it \(\d+\.\d s\)/);

      const removed = await cli('cluster', 'remove-member', '--member', '0', '--data-dir', d);
      expect(removed.code, removed.stderr).to.equal(0);
      expect(removed.stdout).to.match(/^removed member 0\nMEMBER +STATE/);
      const status = (await json('cluster', 'status', '--data-dir', d)) as { members: { state: string }[]; sync: { inSync: boolean } };
      expect(status.members.map((m) => m.state)).to.deep.equal(['removed', 'up', 'up']);
      expect(status.sync.inSync).to.equal(true);
      const text = await cli('cluster', 'status', '--data-dir', d);
      expect(text.stdout).to.contain('sync: the members that are up hold the same keys, users and settings');
      const triggers = ((await json('backup', 'list', '--data-dir', d)) as { backups: { trigger: string }[] }).backups.map((b) => b.trigger).sort();
      expect(triggers).to.deep.equal(['activation', 'member-added', 'member-removed']);
      child.kill('SIGINT');
      expect(await exited).to.equal(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
