/**
 * Which file starts a member in another thread or process (the worker's entry, the `strongroom`
 * command). The compiled build runs its own `.js` files. Code running from the TypeScript sources
 * (the tests, the benchmarks, under tsx) runs the compiled copy when `npm run build` wrote it
 * after the last change to any source file — it starts in about half the time, with no
 * TypeScript loader in the new thread or process — and otherwise the `.ts` source under tsx, so
 * a change not yet built is always the code that runs.
 *
 * @module
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface EntryPoint {
  /** The file to run. */
  file: string;
  /** Whether it is TypeScript (the thread or process must load tsx first). */
  typescript: boolean;
}

/**
 * The module `path` (relative to the module at `from`, without its extension) as a file to run.
 * `from` is the caller's `import.meta.url`.
 */
export function entryPoint(from: string, path: string): EntryPoint {
  const here = fileURLToPath(from);
  if (!here.endsWith('.ts')) return { file: join(dirname(here), `${path}.js`), typescript: false };
  const source = join(dirname(here), `${path}.ts`);
  const root = sourceRoot(here);
  const compiled = join(root, 'dist', relative(root, source)).replace(/\.ts$/, '.js');
  if (existsSync(compiled) && statSync(compiled).mtimeMs >= newestSource(join(root, 'src'))) return { file: compiled, typescript: false };
  return { file: source, typescript: true };
}

/** The project folder: the one holding the `src` folder this file is in. */
function sourceRoot(file: string): string {
  const at = file.lastIndexOf(`${sep}src${sep}`);
  return file.slice(0, at);
}

const newest = new Map<string, number>();
/** When a source file under `dir` last changed (looked up once per process: sources do not change under a running test). */
function newestSource(dir: string): number {
  let time = newest.get(dir);
  if (time !== undefined) return time;
  time = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) time = Math.max(time, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  newest.set(dir, time);
  return time;
}

/**
 * The node arguments that come before `entry` in a new process: none for the compiled build; for a
 * source, tsx's loader, named by its resolved URL so that the process's working folder does not
 * matter.
 */
export function loaderArguments(entry: EntryPoint): string[] {
  return entry.typescript ? ['--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href] : [];
}
