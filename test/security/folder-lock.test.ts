/**
 * Never two owners of one folder (issue 14, item 12), with real processes: a second `strongroom
 * up` on a cluster folder in use, and a `strongroom hsm serve` on a member folder in use, exit
 * non-zero at once naming the folder and the process that holds it, and change nothing; the first
 * keeps serving. A lock left by a process that was SIGKILLed is taken over, and that is said.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const UP = ['up', '--transport', 'in-process', '--members', '1', '--no-relay'];

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Every file under `dir` with its size and modification time (the lock file aside). */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((n) => !n.endsWith('.lock') && !n.endsWith('control.sock'))
    .map((n) => {
      const st = statSync(join(dir, n));
      return `${n} ${st.isFile() ? st.size : 'dir'} ${st.mtimeMs}`;
    })
    .sort();
}

describe('security: one process per folder', function () {
  this.timeout(90_000);
  let dir: string;
  let first: ChildProcess | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-lock-'));
  });
  after(() => {
    first?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('item 12: a second up or hsm serve on a folder in use exits at once, naming the holder, and changes nothing; the first keeps serving', async () => {
    first = spawn(process.execPath, [BIN, ...UP, '--data-dir', dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    first.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await new Promise<void>((resolve, reject) => {
      first!.stdout!.on('data', () => out.includes('Serving.') && resolve());
      first!.once('exit', (code) => reject(new Error(`the first up exited (${code}): ${out}`)));
    });
    const before = listing(dir);

    const second = await run([...UP, '--data-dir', dir]);
    expect(second.code).to.equal(1);
    expect(second.stderr).to.contain(`strongroom: cluster folder ${dir} is in use by process ${first.pid} (`);
    expect(second.stderr).to.contain('nothing was changed');
    const serve = await run(['hsm', 'serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'member-0')]);
    expect(serve.code).to.equal(1);
    expect(serve.stderr).to.contain(`strongroom hsm: data folder ${join(dir, 'member-0')} is in use by process ${first.pid} (`);
    expect(listing(dir)).to.deep.equal(before);

    const status = await run(['cluster', 'status', '--data-dir', dir]);
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/^0 +up +in-process member 0/m);
  });

  it('item 12: the lock of a process that was killed is taken over, and that is said', async () => {
    first!.kill('SIGKILL');
    await new Promise((r) => first!.once('exit', r));
    const again = await run([...UP, '--once', '--data-dir', dir]);
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout).to.contain(`took over the cluster folder's lock from process ${first!.pid}`);
    expect(again.stderr).to.contain(`took over the lock of process ${first!.pid}`);
  });
});
