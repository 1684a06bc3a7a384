/**
 * Interactive mode (`strongroom` with no command, or `strongroom interactive`), as CloudHSM CLI's:
 * a prompt, the same commands as single-command mode, `help [command…]`, completion of commands,
 * options and option values with Tab, history (Up/Down, kept in `~/.config/strongroom/history`), and the login
 * kept until `logout`, `quit` or the end of input. Each result is printed as JSON; an error is
 * printed and the prompt comes back.
 *
 * Also the line reader both modes use to ask for passwords and file paths.
 *
 * @module
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { CliContext, type CliIo } from './cli-context.js';
import { addCloudHsmCommands } from './cloudhsm/index.js';
import { CliCommand } from './command.js';

export const PROMPT = 'strongroom > ';

/** Splits a command line into words: whitespace separates, quotes group, backslash escapes. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote: '"' | "'" | null = null;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      started = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      started = true;
    } else if (/\s/.test(c)) {
      if (started) words.push(word);
      word = '';
      started = false;
    } else {
      word += c;
      started = true;
    }
  }
  if (quote) throw new Error(`unclosed ${quote} quote`);
  if (started) words.push(word);
  return words;
}

/** The command tree alone, for help and completion. */
function commandTree(ctx: CliContext, out: (s: string) => void): Command {
  const root = new CliCommand('strongroom').exitOverride().configureOutput({ writeOut: out, writeErr: out, outputError: (s, write) => write(s) });
  root.helpCommand(false);
  addCloudHsmCommands(root, ctx);
  root.command('quit').description('leave interactive mode (also exit, or Ctrl-D)');
  root.command('help').description('help [command…]: what a command does and its options');
  return root;
}

/** Tab completion: subcommands, then the options of the command reached. */
export function complete(root: Command, line: string): [string[], string] {
  let words: string[];
  try {
    words = splitWords(line);
  } catch {
    return [[], line];
  }
  const partial = /\s$/.test(line) || line === '' ? '' : (words.pop() ?? '');
  let cmd = root;
  for (const w of words) {
    if (w === 'help') continue;
    const next = cmd.commands.find((c) => c.name() === w);
    if (next) cmd = next;
  }
  // After an option with fixed choices (--role, --service, --curve, …): its values.
  const option = cmd.options.find((o) => o.long === words.at(-1) && o.argChoices);
  if (option?.argChoices) return [option.argChoices.filter((c) => c.startsWith(partial)).sort(), partial];
  const names = cmd.commands.map((c) => c.name());
  const options = cmd.options.map((o) => o.long).filter((o): o is string => Boolean(o) && !words.includes(o!));
  const candidates = partial.startsWith('-') ? options : names.length ? names : options;
  return [candidates.filter((c) => c.startsWith(partial)).sort(), partial];
}

/** Lines from a stream, one at a time, with hidden answers on a terminal. */
export class LineReader {
  readonly rl: Interface;
  readonly #queue: string[] = [];
  readonly #waiting: ((line: string | null) => void)[] = [];
  #closed = false;
  #muted = false;

  constructor(input: Readable, readonly output: Writable, terminal: boolean, completer?: (line: string) => [string[], string], history: string[] = []) {
    this.rl = createInterface({ input, output, terminal, historySize: 1000, ...(completer ? { completer } : {}), ...(terminal ? { history: [...history].reverse() } : {}) });
    // Hidden answers: nothing the person types is echoed while muted.
    const rl = this.rl as unknown as { _writeToOutput: (s: string) => void };
    const write = rl._writeToOutput.bind(rl);
    rl._writeToOutput = (s: string) => {
      if (!this.#muted || s.includes('\n')) write(this.#muted ? '\n' : s);
    };
    this.rl.on('line', (line) => {
      const waiter = this.#waiting.shift();
      if (waiter) waiter(line);
      else this.#queue.push(line);
    });
    this.rl.on('close', () => {
      this.#closed = true;
      for (const w of this.#waiting.splice(0)) w(null);
    });
  }

  next(): Promise<string | null> {
    const line = this.#queue.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  async ask(prompt: string, hidden = false): Promise<string> {
    this.output.write(`${prompt} `);
    this.#muted = hidden;
    try {
      const line = await this.next();
      if (line === null) throw new Error(`no answer to "${prompt}" (end of input)`);
      return line;
    } finally {
      this.#muted = false;
    }
  }

  close(): void {
    this.rl.close();
  }
}

export interface InteractiveOptions {
  input: Readable;
  output: Writable;
  terminal: boolean;
  env?: NodeJS.ProcessEnv;
  clusterId?: string;
  historyFile?: string | null;
}

function historyPath(env: NodeJS.ProcessEnv): string {
  return env.STRONGROOM_CLI_HISTORY ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'strongroom', 'history');
}

/** Runs interactive mode until quit or the end of input. */
export async function interactive(options: InteractiveOptions): Promise<void> {
  const env = options.env ?? process.env;
  const out = (s: string) => options.output.write(s.endsWith('\n') ? s : `${s}\n`);
  const historyFile = options.historyFile === undefined ? historyPath(env) : options.historyFile;
  let history: string[] = [];
  if (historyFile) {
    try {
      history = readFileSync(historyFile, 'utf8').split('\n').filter(Boolean).slice(-1000);
    } catch {
      history = [];
    }
  }
  let reader: LineReader;
  const io: CliIo = { out, err: out, ask: (prompt, hidden) => reader.ask(prompt, hidden) };
  const ctx = new CliContext(io, 'interactive', env);
  ctx.defaultClusterId = options.clusterId;
  const tree = commandTree(ctx, out);
  reader = new LineReader(options.input, options.output, options.terminal, (line) => complete(tree, line), history);
  reader.rl.setPrompt(PROMPT);
  try {
    for (;;) {
      reader.rl.prompt();
      const line = await reader.next();
      if (line === null) break;
      const trimmed = line.trim();
      if (!trimmed) continue;
      if (historyFile) {
        try {
          mkdirSync(dirname(historyFile), { recursive: true });
          // Never keep a password given on the command line.
          appendFileSync(historyFile, `${trimmed.replace(/(--password|--change-password)\s+\S+/g, '$1 ****')}\n`, { mode: 0o600 });
        } catch {
          // history is a convenience
        }
      }
      let words: string[];
      try {
        words = splitWords(trimmed);
      } catch (e) {
        out(JSON.stringify({ error_code: 1, data: (e as Error).message }, null, 2));
        continue;
      }
      if (words[0] === 'quit' || words[0] === 'exit') break;
      const program = commandTree(ctx, out);
      try {
        if (words[0] === 'help') {
          let cmd: Command = program;
          for (const w of words.slice(1)) {
            const next = cmd.commands.find((c) => c.name() === w);
            if (!next) throw new Error(`help: no command ${words.slice(1).join(' ')}`);
            cmd = next;
          }
          out(cmd.helpInformation());
          continue;
        }
        await program.parseAsync(words, { from: 'user' });
      } catch (e) {
        if (!(e instanceof CommanderError)) out(JSON.stringify({ error_code: 1, data: e instanceof Error ? e.message : String(e) }, null, 2));
      } finally {
        process.exitCode = undefined;
      }
    }
  } finally {
    reader.close();
    await ctx.close();
  }
}
