/**
 * A page in headless Chromium, driven through the DevTools protocol with nothing but
 * Runtime.evaluate: no domain that watches the page is turned on. Playwright turns on the Network
 * domain of every page it drives, which copies each WebSocket frame (base64) into the protocol: a
 * page sending 1 KiB requests through the relay made 11-14 thousand AES-GCM calls a second under
 * it, and 17-25 thousand without it.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

interface Target {
  type: string;
  url: string;
  webSocketDebuggerUrl: string;
}

interface Answer {
  result?: { result: { value: unknown }; exceptionDetails?: { exception?: { description?: string } } };
  error?: { message: string };
}

export interface ChromiumPage {
  /** The value of `expression` in the page (a promise is awaited), as JSON carries it. */
  evaluate<T>(expression: string): Promise<T>;
  close(): Promise<void>;
}

/** Opens `url` in a new headless Chromium, or returns null when Chromium is not installed. */
export async function openChromiumPage(url: string): Promise<ChromiumPage | null> {
  if (!existsSync(CHROMIUM)) return null;
  const profile = mkdtempSync(join(tmpdir(), 'strongroom-bench-chromium-'));
  const proc: ChildProcess = spawn(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--remote-debugging-port=0', `--user-data-dir=${profile}`, url], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  // Chromium's renderer and helper processes outlive the browser's own by a moment and keep writing
  // to the profile, so the whole process group is stopped before the profile is removed.
  // (A group of its own, so that a bench that dies leaves no Chromium behind: the hook below.)
  const kill = () => {
    try {
      process.kill(-proc.pid!, 'SIGKILL');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  };
  process.once('exit', kill);
  const close = async () => {
    const exited = new Promise((resolve) => (proc.exitCode === null && proc.signalCode === null ? proc.once('exit', resolve) : resolve(null)));
    kill();
    process.off('exit', kill);
    await exited;
    rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let said = '';
      proc.stderr!.on('data', (d: Buffer) => {
        said += d.toString();
        const m = said.match(/DevTools listening on ws:\/\/[^:]+:(\d+)\//);
        if (m) resolve(Number(m[1]));
      });
      proc.once('exit', (code) => reject(new Error(`Chromium exited (code ${code}) before it listened for DevTools: ${said.trim().split('\n').at(-1)}`)));
    });
    let target: Target | undefined;
    for (let i = 0; i < 100 && !target; i++) {
      const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Target[];
      target = targets.find((t) => t.type === 'page' && t.url.startsWith(url));
      if (!target) await new Promise((r) => setTimeout(r, 50));
    }
    if (!target) throw new Error(`Chromium did not open ${url}`);
    const ws = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const waiting = new Map<number, (answer: Answer) => void>();
    ws.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id?: number };
      if (message.id !== undefined) waiting.get(message.id)?.(message as never);
    });
    let next = 1;
    return {
      async evaluate<T>(expression: string): Promise<T> {
        const id = next++;
        const answer = await new Promise<Answer>((resolve) => {
          waiting.set(id, resolve);
          ws.send(JSON.stringify({ id, method: 'Runtime.evaluate', params: { expression, awaitPromise: true, returnByValue: true } }));
        });
        waiting.delete(id);
        if (answer.error) throw new Error(`${expression}: ${answer.error.message}`);
        if (answer.result!.exceptionDetails) throw new Error(`${expression}: ${answer.result!.exceptionDetails.exception?.description ?? 'it threw'}`);
        return answer.result!.result.value as T;
      },
      async close() {
        ws.close();
        await close();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}
