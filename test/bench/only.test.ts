/**
 * `BENCH_ONLY` picks the benchmark's tables: one, or several separated by commas, in the order
 * given. A name that is not a table stops `bench/run.ts` before it measures or writes anything.
 */
import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { chosenTables } from '../../bench/only.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TABLES = ['door', 'peers', 'cluster', 'relay', 'pkcs11', 'control-plane', 'curves'];

describe('bench: BENCH_ONLY', () => {
  it('unset or empty runs every table in order; one name runs that table; several run in the order given', () => {
    expect(chosenTables(undefined, TABLES)).to.deep.equal(TABLES);
    expect(chosenTables(' ', TABLES)).to.deep.equal(TABLES);
    expect(chosenTables('relay', TABLES)).to.deep.equal(['relay']);
    expect(chosenTables('curves, door,cluster', TABLES)).to.deep.equal(['curves', 'door', 'cluster']);
  });

  it('a name that is not a table is refused, naming it and the tables there are', () => {
    expect(() => chosenTables('relay,curvs', TABLES)).to.throw('BENCH_ONLY: "curvs" is not a table; the tables are door, peers, cluster, relay, pkcs11, control-plane, curves');
    expect(() => chosenTables('cluster,', TABLES)).to.throw('BENCH_ONLY: "" is not a table');
    expect(() => chosenTables('Door,pkcs', TABLES)).to.throw('BENCH_ONLY: "Door", "pkcs" are not tables');
  });

  it('bench/run.ts with a misspelt name exits 2 with that one line, before it measures or writes anything', async () => {
    const results = join(ROOT, 'bench', 'results');
    const before = readdirSync(results).map((f) => `${f} ${statSync(join(results, f)).mtimeMs}`);
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const env = { ...process.env, BENCH_ONLY: 'cluster,relays' };
      // Killed if it starts measuring instead (a whole run takes ten minutes).
      execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'run.ts')], { cwd: ROOT, env, timeout: 15_000, killSignal: 'SIGKILL' }, (error, out, err) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: out, stderr: err });
      });
    });
    expect(code).to.equal(2);
    expect(stderr).to.equal('bench: BENCH_ONLY: "relays" is not a table; the tables are door, peers, cluster, relay, pkcs11, control-plane, curves (several: separated by commas, run in that order)\n');
    expect(stdout).to.equal('');
    expect(readdirSync(results).map((f) => `${f} ${statSync(join(results, f)).mtimeMs}`)).to.deep.equal(before);
  });
});
