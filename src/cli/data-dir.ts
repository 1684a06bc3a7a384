/**
 * Where the CLI looks for the cluster folder when none is named: `STRONGROOM_DATA_DIR`, else the
 * nearest `.strongroom` folder in the current folder or one above it (so `npx strongroom …` finds
 * the cluster `npm start` runs from any folder of the project), else `.strongroom` here, where
 * `strongroom up` makes one.
 *
 * @module
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

export const DATA_DIR_NAME = '.strongroom';

export function defaultDataDir(env: Record<string, string | undefined> = process.env, from: string = process.cwd()): string {
  if (env.STRONGROOM_DATA_DIR) return env.STRONGROOM_DATA_DIR;
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, DATA_DIR_NAME);
    if (existsSync(candidate) && statSync(candidate).isDirectory()) return relative(from, candidate) || '.';
    if (dirname(dir) === dir) return DATA_DIR_NAME;
  }
}
