/**
 * Which tables a run measures. `BENCH_ONLY` names one, or several separated by commas, run in the
 * order given (`BENCH_ONLY=cluster,relay`); unset or empty, a run measures every table in its own
 * order. A name that is not a table stops the run before anything is measured or written, naming
 * it and the tables there are: a misspelt name would otherwise start a whole run of ten minutes.
 *
 * @module
 */

/** The names of the tables to run, from `BENCH_ONLY` (`only`) and every table's name in order. */
export function chosenTables(only: string | undefined, tables: readonly string[]): string[] {
  if (only === undefined || only.trim() === '') return [...tables];
  const names = only.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !tables.includes(name));
  if (unknown.length) {
    const listed = unknown.map((name) => JSON.stringify(name)).join(', ');
    throw new Error(`BENCH_ONLY: ${listed} ${unknown.length === 1 ? 'is not a table' : 'are not tables'}; the tables are ${tables.join(', ')} (several: separated by commas, run in that order)`);
  }
  return names;
}
