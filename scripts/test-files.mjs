// The test files for `npm test`, the longest first: mocha's parallel mode hands files to its two
// workers in this order, so starting the long ones first keeps one worker from finishing a long
// file alone at the end. Every other file follows in path order.
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const LONGEST_FIRST = [
  'test/relay/conformance.test.ts',
  'test/cli/cloudhsm.test.ts',
  'test/samples.test.ts',
  'test/cli/up.test.ts',
  'test/cli/backup.test.ts',
  'test/cli/keytool.test.ts',
];

const walk = (dir) => readdirSync(dir, { withFileTypes: true }).filter((e) => !e.name.startsWith('.')).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []));
const all = walk(join(root, 'test')).map((f) => relative(root, f)).sort();
const missing = LONGEST_FIRST.filter((f) => !all.includes(f));
if (missing.length) throw new Error(`scripts/test-files.mjs names test files that do not exist: ${missing.join(', ')}`);
console.log([...LONGEST_FIRST, ...all.filter((f) => !LONGEST_FIRST.includes(f))].join('\n'));
