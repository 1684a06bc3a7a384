/**
 * Driving the strongroom command as CloudHSM CLI from tests: single commands as subprocesses of the
 * built package, and interactive mode on pipes (one line in, the answer out when the prompt comes
 * back).
 *
 * @module
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const exec = promisify(execFile);

export interface Answer {
  error_code: number;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** The JSON answer in a command's output. */
export function answerIn(text: string): Answer {
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end < start) throw new Error(`no JSON answer in: ${text}`);
  return JSON.parse(text.slice(start, end + 1)) as Answer;
}

/** One single-command run: the answer, the exit code and (when there is no answer) stderr. */
export async function runCli(env: NodeJS.ProcessEnv, args: string[]): Promise<Answer & { code: number }> {
  try {
    const { stdout } = await exec(process.execPath, [BIN, ...args], { env, cwd: ROOT });
    return { ...answerIn(stdout), code: 0 };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { ...(err.stdout.includes('{') ? answerIn(err.stdout) : { error_code: -1, data: err.stderr }), code: err.code };
  }
}

/** Interactive mode on pipes: one line in, the answer out when the prompt comes back. */
export class Repl {
  readonly proc: ChildProcessWithoutNullStreams;
  out = '';

  constructor(env: NodeJS.ProcessEnv) {
    this.proc = spawn(process.execPath, [BIN], { env, cwd: ROOT });
    this.proc.stdout.on('data', (d: Buffer) => (this.out += d.toString()));
    this.proc.stderr.on('data', (d: Buffer) => (this.out += d.toString()));
  }

  async until(what: string, from: number, timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.out.indexOf(what, from);
      if (at >= 0) return at;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${JSON.stringify(what)}; output so far:\n${this.out.slice(from)}`);
      await new Promise((r) => setTimeout(r, 15));
    }
  }

  async ready(): Promise<void> {
    await this.until('strongroom > ', 0);
  }

  /** Sends a line; answers prompts with `onPrompt`; resolves with the command's answer. */
  async run(line: string, onPrompt?: (prompt: string) => Promise<string>): Promise<Answer> {
    const start = this.out.length;
    this.proc.stdin.write(`${line}\n`);
    if (onPrompt) {
      const at = await this.until('Enter ', start);
      const end = await this.until(':', at);
      this.proc.stdin.write(`${await onPrompt(this.out.slice(at, end + 1))}\n`);
      if (line.includes('change-mfa')) {
        const at2 = await this.until('Enter public key', end);
        const end2 = await this.until(':', at2);
        this.proc.stdin.write(`${await onPrompt(this.out.slice(at2, end2 + 1))}\n`);
      }
    }
    const prompt = await this.until('strongroom > ', start);
    const text = this.out.slice(start, prompt);
    // An argument error is commander's line of text, as CloudHSM CLI's are clap's.
    return text.includes('{') ? answerIn(text) : { error_code: -1, data: text };
  }

  async close(): Promise<void> {
    this.proc.stdin.end('quit\n');
    await new Promise((r) => this.proc.once('exit', r));
  }
}
