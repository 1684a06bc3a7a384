/**
 * Which file starts a member thread or process: from the TypeScript sources, the compiled build
 * when it is newer than every source file, else the source itself (so an unbuilt change is what
 * runs); from the compiled build, its own .js.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { entryPoint } from '../../src/cluster-client/entry-point.js';

describe('cluster-client: the entry point of a member thread or process', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  /** A project with the given files, each at the given time (seconds). */
  function project(files: Record<string, number>): string {
    const root = mkdtempSync(join(tmpdir(), 'strongroom-entry-'));
    dirs.push(root);
    for (const [file, time] of Object.entries(files)) {
      mkdirSync(dirname(join(root, file)), { recursive: true });
      writeFileSync(join(root, file), '');
      utimesSync(join(root, file), time, time);
    }
    return root;
  }
  const from = (root: string, file: string) => pathToFileURL(join(root, file)).href;

  it('runs the compiled build when it was written after every source file', () => {
    const root = project({ 'src/cluster-client/local-tls.ts': 1000, 'src/cli/main.ts': 1000, 'src/hsm-core/face.ts': 1100, 'dist/src/cli/main.js': 1200 });
    expect(entryPoint(from(root, 'src/cluster-client/local-tls.ts'), '../cli/main')).to.deep.equal({ file: join(root, 'dist/src/cli/main.js'), typescript: false });
  });

  it('runs the source under tsx when any source file changed after the build, or there is no build', () => {
    const stale = project({ 'src/cluster-client/local-tls.ts': 1000, 'src/cli/main.ts': 1000, 'src/hsm-core/face.ts': 1300, 'dist/src/cli/main.js': 1200 });
    expect(entryPoint(from(stale, 'src/cluster-client/local-tls.ts'), '../cli/main')).to.deep.equal({ file: join(stale, 'src/cli/main.ts'), typescript: true });
    const unbuilt = project({ 'src/cluster-client/transport.ts': 1000, 'src/hsm-core/hosts/worker.ts': 1000 });
    expect(entryPoint(from(unbuilt, 'src/cluster-client/transport.ts'), '../hsm-core/hosts/worker')).to.deep.equal({ file: join(unbuilt, 'src/hsm-core/hosts/worker.ts'), typescript: true });
  });

  it('the compiled build runs its own files', () => {
    const root = project({ 'dist/src/cluster-client/transport.js': 1000 });
    expect(entryPoint(from(root, 'dist/src/cluster-client/transport.js'), '../hsm-core/hosts/worker')).to.deep.equal({ file: join(root, 'dist/src/hsm-core/hosts/worker.js'), typescript: false });
  });
});
