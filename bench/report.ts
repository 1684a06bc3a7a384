/**
 * What a benchmark run leaves behind: each table printed, and kept as `bench/results/<id>.json`
 * (the machine, the date, the settings, the header and rows), from which charts.ts draws
 * `bench/results/<id>.svg` with Apache ECharts' server-side SVG renderer (no browser, no DOM).
 *
 * @module
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as echarts from 'echarts';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

/** The machine and run a figure belongs to, printed under each chart's title. */
export function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

export interface ChartSpec {
  /** File name (without .svg) in bench/results. */
  id: string;
  title: string;
  /** The categories along the x axis (operations, or key counts for a curve). */
  categories: string[];
  series: { name: string; values: (number | null)[] }[];
  /** The y axis's name. */
  unit: string;
  /** A horizontal line drawn across (1.0 for ratios to native: the target). */
  reference?: { value: number; label: string };
  kind?: 'bar' | 'line';
  /** A logarithmic y axis (cost curves over four orders of magnitude). */
  logY?: boolean;
}

/** An SVG chart, drawn by ECharts on the server; `measured` names the machine and date under the title. */
export function drawChart(spec: ChartSpec, measured: string): string {
  const slot = spec.kind === 'line' ? 150 : Math.max(120, 36 * spec.series.length + 40);
  // Wide enough for the legend on one line (about 6.5 px a character at its 12 px, and 35 for each
  // mark and gap): on two, it ran into the y axis's name.
  const legend = spec.series.reduce((sum, s) => sum + 6.5 * s.name.length + 35, 40);
  const width = Math.ceil(Math.max(720, slot * spec.categories.length + 140, legend));
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height: 420 });
  chart.setOption({
    animation: false,
    backgroundColor: '#ffffff',
    title: { text: spec.title, subtext: measured, left: 'center', textStyle: { fontSize: 14 } },
    legend: { top: 62, data: spec.series.map((s) => s.name) },
    grid: { left: 70, right: 70, top: 110, bottom: 70 },
    xAxis: { type: 'category', data: spec.categories, axisLabel: { interval: 0, width: slot - 12, overflow: 'break', fontSize: 11 } },
    yAxis: { type: spec.logY ? 'log' : 'value', name: spec.unit, nameTextStyle: { align: 'left' } },
    series: spec.series.map((s, i) => ({
      type: spec.kind ?? 'bar',
      name: s.name,
      data: s.values,
      label: spec.kind === 'line' ? undefined : { show: true, position: 'top', fontSize: 9, formatter: (p: { value: number }) => (p.value >= 100 ? p.value.toFixed(0) : p.value.toFixed(2)) },
      ...(i === 0 && spec.reference
        ? { markLine: { symbol: 'none', silent: true, lineStyle: { type: 'dashed', color: '#c23531' }, label: { formatter: spec.reference.label }, data: [{ yAxis: spec.reference.value }] } }
        : {}),
    })),
  });
  const svg = chart.renderToSVGString();
  chart.dispose();
  return svg;
}

export interface TableMeta {
  id: string;
  title: string;
}

/** A table as Markdown lines, its first column aligned left and the others right, as the run prints it. */
export function markdownTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)];
}

/** Prints a table as Markdown and keeps it (with the run's settings) as bench/results/<id>.json. */
export function table(header: string[], rows: string[][], meta?: TableMeta): void {
  for (const line of markdownTable(header, rows)) console.log(line);
  if (meta) saveJson(meta.id, { title: meta.title, header, rows });
}

let commitMeasured: string | null | undefined;

/**
 * The commit measured: its short hash, with `+changes` when tracked files differ from it; null
 * outside a git checkout (a package unpacked from the registry).
 */
function measuredCommit(): string | null {
  if (commitMeasured !== undefined) return commitMeasured;
  const git = (...args: string[]) => execFileSync('git', args, { cwd: join(RESULTS_DIR, '..', '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const changed = git('status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/results').length > 0;
    commitMeasured = `${git('rev-parse', '--short', 'HEAD')}${changed ? '+changes' : ''}`;
  } catch {
    commitMeasured = null;
  }
  return commitMeasured;
}

/** Writes bench/results/<id>.json with the machine and the run's settings. */
export function saveJson(id: string, content: Record<string, unknown>): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const run = { machine: machine(), date: new Date().toISOString(), commit: measuredCommit(), seconds: Number(process.env.BENCH_SECONDS ?? 1), rounds: Number(process.env.BENCH_ROUNDS ?? 3) };
  writeFileSync(join(RESULTS_DIR, `${id}.json`), JSON.stringify({ ...run, ...content }, null, 2) + '\n');
}

/** Says on stderr which table and step a long run is at. */
export function progress(table: string, step: string): void {
  process.stderr.write(`[${table}] ${step}\n`);
}
