/**
 * The charts, drawn from the tables a run kept in bench/results/*.json: `npm run bench` draws
 * them at its end, and `npm run bench:charts` draws them again without measuring anything.
 * Each chart names the machine and date of the table it shows.
 *
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RESULTS_DIR, drawChart, markdownTable, type ChartSpec } from './report.js';

interface Saved {
  machine: string;
  date: string;
  /** Absent in tables kept before 2026-12-04 (10:00 UTC). */
  commit?: string | null;
  seconds: number;
  rounds: number;
  title: string;
  header: string[];
  rows: string[][];
}

const num = (rows: string[][], column: number) => rows.map((r) => Number(r[column]));
const NATIVE = { value: 1, label: 'native' };

/**
 * A line chart of the cost curves' table: the columns named in `columns` (those the table has)
 * against its token-key counts, each series named by `name` from its column's header.
 */
function curveLines(t: Saved, spec: { title: string; unit: string; logY: boolean }, columns: string[], name: (header: string) => string): Omit<ChartSpec, 'id'> {
  return {
    ...spec,
    categories: t.rows.map((r) => Number(r[0]).toLocaleString('en-US')),
    kind: 'line',
    series: columns.filter((h) => t.header.includes(h)).map((h) => ({ name: name(h), values: num(t.rows, t.header.indexOf(h)) })),
  };
}

/** The charts of one table: each made from it, by the chart's id (the table's own id for its first). */
type Chart = (t: Saved) => Omit<ChartSpec, 'id'>;

/** Each table's chart, by the table's id. */
const CHARTS: Record<string, Chart> = {
  door: (t) => {
    const at = (inFlight: string, column: number) => num(t.rows.filter((r) => r[1] === inFlight), column);
    const many = t.rows.find((r) => r[1] !== '1')![1]!;
    return {
      title: 'Operations per second ÷ native crypto.webcrypto (one in-process member)',
      categories: t.rows.filter((r) => r[1] === '1').map((r) => r[0]!),
      series: [
        { name: `door, ${many} in flight`, values: at(many, 7) },
        { name: 'door, 1 at a time', values: at('1', 7) },
        { name: `@peculiar/webcrypto, ${many} in flight`, values: at(many, 6) },
      ],
      unit: '× native',
      reference: NATIVE,
    };
  },
  peers: (t) => ({
    title: 'Operations per second beside node-webcrypto-p11 on SoftHSM (log scale)',
    categories: t.rows.map((r) => r[0]!),
    logY: true,
    unit: 'ops/s',
    series: [
      { name: 'native, 1 at a time', values: num(t.rows, 1) },
      { name: 'door, 1 at a time', values: num(t.rows, 2) },
      { name: 'door, 32 in flight', values: num(t.rows, 5) },
      { name: 'node-webcrypto-p11 + SoftHSM', values: num(t.rows, 3) },
      // CloudHSM's performance page: about 1,000 RSA-2048 and (hsm2m) 1,500 P-256 signatures/s per HSM.
      { name: 'CloudHSM per HSM (published)', values: t.rows.map((r) => (r[0] === 'RSA-2048 sign' ? 1000 : r[0] === 'ECDSA P-256 sign' ? 1500 : null)) },
    ],
  }),
  cluster: (t) => {
    const names = t.header.filter((h) => h.endsWith(' ×'));
    return {
      title: 'Token-key signatures per second ÷ native (clusters, 64 in flight)',
      categories: t.rows.map((r) => r[0]!),
      series: names.map((h) => ({ name: h.slice(0, -2), values: num(t.rows, t.header.indexOf(h)) })),
      unit: '× native',
      reference: NATIVE,
    };
  },
  relay: (t) => ({
    title: 'The relay: operations per second ÷ native (64 in flight)',
    categories: t.rows.map((r) => r[0]!),
    series: [
      { name: 'session.crypto', values: num(t.rows, 4) },
      { name: 'relay (WebSocket, client in the same process)', values: num(t.rows, 5) },
      // Tables from before the floor have no such column.
      ...(t.header.includes('floor ×') ? [{ name: 'floor (session.crypto behind a bare WebSocket)', values: num(t.rows, t.header.indexOf('floor ×')) }] : []),
      // Tables from before the Chromium page have no such column.
      ...(t.header.includes('from Chromium ×') ? [{ name: 'relay from a Chromium page', values: num(t.rows, t.header.indexOf('from Chromium ×')) }] : []),
    ],
    unit: '× native',
    reference: NATIVE,
  }),
  pkcs11: (t) => ({
    title: 'PKCS #11 signatures per second',
    categories: t.rows.map((r) => `${r[0]!.replace(/ \(.*\)$/, '')}, ${r[1]} in flight`),
    series: [
      { name: 'SoftHSM direct (in process)', values: num(t.rows, 2) },
      { name: 'SoftHSM via p11-kit', values: num(t.rows, 3) },
      { name: 'Strongroom PKCS #11 door', values: num(t.rows, 4) },
    ],
    unit: 'signatures/s',
  }),
  'control-plane': (t) => ({
    title: 'The CloudHSM V2 API: requests per second (100 clusters, 10,000 backups)',
    categories: [...new Set(t.rows.map((r) => r[0]!))],
    series: [...new Set(t.rows.map((r) => r[1]!))].map((inFlight) => ({ name: `${inFlight} in flight`, values: num(t.rows.filter((r) => r[1] === inFlight), 2) })),
    unit: 'requests/s',
  }),
  curves: (t) =>
    curveLines(
      t,
      { title: 'Time against token keys (log scale)', unit: 'ms', logY: true },
      ['start from folder ms', 'backup ms', 'cluster from backup ms', 'member join ms', 'audit read + verify ms', 'findKeys by label ms', 'login ms'],
      (h) => h.replace(/ ms$/, ''),
    ),
  latency: (t) => ({
    title: 'ECDSA P-256 sign latency against concurrent callers (log scale)',
    categories: t.rows.map((r) => r[0]!),
    kind: 'line',
    logY: true,
    unit: 'ms',
    series: [
      { name: 'p50', values: num(t.rows, 2) },
      { name: 'p99', values: num(t.rows, 3) },
    ],
  }),
};

/** Further charts of a table that has one above: by the chart's id, the table's id and how it is made. */
const MORE_CHARTS: Record<string, { table: string; make: Chart }> = {
  memory: {
    table: 'curves',
    make: (t) =>
      curveLines(
        t,
        { title: 'Memory and disk a token key (log scale)', unit: 'bytes/key', logY: true },
        ['heap bytes/key', 'heap bytes/key after a start', 'client heap bytes/CryptoKey', 'folder bytes/key'],
        (h) => h.replace(/ bytes\/key/, '').replace(/^heap$/, 'heap, keys made').replace(/^client heap bytes\/CryptoKey$/, "a client's heap, a CryptoKey held"),
      ),
  },
  holds: {
    table: 'curves',
    make: (t) =>
      curveLines(
        t,
        { title: "Longest hold of the application's event loop, in-process member", unit: 'ms', logY: false },
        t.header.filter((h) => h.endsWith(': longest hold ms')),
        (h) => h.replace(/: longest hold ms$/, ''),
      ),
  },
};

/** The tables in bench/results/tables.md, in the order a whole run measures them. */
const TABLES = ['door', 'peers', 'cluster', 'tls-overhead', 'relay', 'pkcs11', 'control-plane', 'control-plane-hsms', 'curves', 'latency'];

/**
 * Writes bench/results/tables.md: every table kept in bench/results, each under its title with
 * the machine, time, commit and settings it was measured with, so that the figures beside the
 * charts are always the ones they were drawn from. Returns the file, or null with no table kept.
 */
export function writeTables(): string | null {
  const parts: string[] = [];
  for (const id of TABLES) {
    const file = join(RESULTS_DIR, `${id}.json`);
    if (!existsSync(file)) continue;
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Saved & Record<string, unknown>;
    const settings = `${saved.seconds} s a measurement, median of ${saved.rounds} rounds`;
    parts.push(`## ${saved.title} (\`${id}\`)`, '', `${saved.machine.replace(/, \d{4}-\d{2}-\d{2}$/, '')}; ${saved.date.replace('T', ' ').slice(0, 16)} UTC; commit ${saved.commit ?? 'not recorded'}; ${settings}.`, '');
    if (saved.header && saved.rows?.length) parts.push(...markdownTable(saved.header, saved.rows), '');
    // A table of figures that are not rows (CreateHsm's) keeps the sentences its run printed.
    const lines = Array.isArray(saved.lines) ? (saved.lines as string[]) : [];
    if (lines.length) parts.push(...lines.map((l) => `- ${l}`), '');
  }
  if (!parts.length) return null;
  const out = join(RESULTS_DIR, 'tables.md');
  const head = [
    '# The tables of the last runs',
    '',
    'Written by `npm run bench` (and again by `npm run bench:charts`) from `bench/results/*.json`; the charts beside this file are drawn from the same tables. Each table names the run it comes from: a whole run replaces them all, a `BENCH_ONLY` run its own. Ratios are to Node\'s native `crypto.webcrypto` in the same run. [bench/README.md](../README.md) says what each table measures.',
    '',
  ];
  writeFileSync(out, [...head, ...parts].join('\n'));
  return 'bench/results/tables.md';
}

/** Draws every chart whose table is in bench/results; returns the files written. */
export function drawCharts(): string[] {
  const written: string[] = [];
  const charts: [string, string, Chart][] = [...Object.entries(CHARTS).map(([id, make]): [string, string, Chart] => [id, id, make]), ...Object.entries(MORE_CHARTS).map(([id, c]): [string, string, Chart] => [id, c.table, c.make])];
  for (const [id, table, make] of charts) {
    const file = join(RESULTS_DIR, `${table}.json`);
    if (!existsSync(file)) continue;
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Saved;
    writeFileSync(join(RESULTS_DIR, `${id}.svg`), drawChart({ id, ...make(saved) }, saved.commit ? `${saved.machine}, commit ${saved.commit}` : saved.machine));
    written.push(`bench/results/${id}.svg`);
  }
  return written;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const file of drawCharts()) console.log(file);
  const tables = writeTables();
  if (tables) console.log(tables);
}
