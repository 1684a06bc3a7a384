/**
 * Commander's `Command` as the CLI uses it: a required option that is missing while an unknown
 * option that looks like it was typed gets a suggestion (commander checks required options
 * first, so its own "did you mean" for unknown options never shows then).
 *
 * @module
 */
import { Command, type Option } from 'commander';

/** Edit distance (insertions, deletions, substitutions, swaps of neighbours) between two words. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

export class CliCommand extends Command {
  override createCommand(name?: string): Command {
    return new CliCommand(name);
  }

  /** Commander calls this for a required option that was not given. */
  missingMandatoryOptionValue(option: Option): void {
    const wanted = option.long ?? option.short ?? option.flags;
    const typed = this.args.map((a) => a.split('=')[0]!).find((a) => a.startsWith('-') && a !== wanted && editDistance(a, wanted) <= Math.max(2, Math.floor(wanted.length / 4)));
    const hint = typed ? ` (you typed ${typed}; did you mean ${wanted}?)` : '';
    this.error(`error: required option '${option.flags}' not specified${hint}`, { code: 'commander.missingMandatoryOptionValue' });
  }
}
