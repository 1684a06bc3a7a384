/**
 * One owner per folder: a member's data folder (its store) and a cluster's folder are opened by
 * one process at a time. Two processes on one store would each keep their own picture of it,
 * write over each other's changes and break the audit hash chain for good; two supervisors on one
 * cluster folder would start every member twice and publish dead addresses.
 *
 * The lock is a file, `.lock`, made atomically (written aside, then hard-linked into place), that
 * names its holder: process id, when that process started, host and command. A second opener is
 * refused at once with FOLDER_IN_USE naming the holder, and changes nothing. The lock goes when
 * its holder closes the folder or exits; a lock left by a process that died (SIGKILL, a crash) is
 * taken over, and the taker says so. Within one process, the supervisor that owns a folder
 * sequences its members (a worker that was terminated leaves its lock to the next one).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { HsmError } from './errors.js';

export const LOCK_FILE = '.lock';

interface Holder {
  pid: number;
  /** The holder process's start, as the kernel counts it (clock ticks after boot), when known. */
  started: string | null;
  host: string;
  command: string;
  thread: number;
  since: string;
  /** Tells this lock from one that replaced it. */
  nonce: string;
}

export interface FolderLock {
  readonly path: string;
  /** The holder whose stale lock was taken over, if any (said so by the caller). */
  readonly tookOver: string | null;
  release(): void;
}

/** This thread's locks, released at exit. */
const held = new Map<string, Holder>();
let exitHook = false;

function startOf(pid: number): string | null {
  try {
    // /proc/<pid>/stat: field 22 is the start time; the command name (field 2) may hold spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function alive(holder: Holder): boolean {
  if (holder.host !== hostname()) return true; // another machine's process: it cannot be checked, so it counts
  try {
    process.kill(holder.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // The same number may belong to a newer process now.
  const started = startOf(holder.pid);
  return holder.started === null || started === null || started === holder.started;
}

function describe(h: Holder): string {
  return `process ${h.pid}${h.host !== hostname() ? ` on ${h.host}` : ''} (${h.command || 'unknown command'}, since ${h.since})`;
}

function read(path: string): Holder | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Holder;
  } catch {
    return null;
  }
}

/**
 * Takes `dir`'s lock for this process, or refuses with FOLDER_IN_USE naming the process that
 * holds it. `what` names the folder in messages ("data folder", "cluster folder").
 */
export function lockFolder(dir: string, what: string): FolderLock {
  const path = join(dir, LOCK_FILE);
  if (held.has(path)) throw new HsmError('FOLDER_IN_USE', `${what} ${dir} is already open in this process; close it first`);
  const me: Holder = {
    pid: process.pid,
    started: startOf(process.pid),
    host: hostname(),
    command: process.argv.slice(1).map((a) => a.replace(/^.*\//, '')).join(' ').slice(0, 120),
    thread: threadId,
    since: new Date().toISOString(),
    nonce: randomBytes(8).toString('hex'),
  };
  // A live holder is refused before anything is written here.
  const current = read(path);
  if (current) refuseIfHeld(current, dir, what);
  const aside = `${path}.${me.pid}.${me.nonce}`;
  writeFileSync(aside, JSON.stringify(me) + '\n', { mode: 0o600 });
  let tookOver: string | null = null;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(aside, path);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 3) throw e;
      }
      const holder = read(path);
      if (holder) refuseIfHeld(holder, dir, what);
      if (!holder) continue; // being written or replaced this instant: look again
      // A dead holder's lock, or one this process left (a terminated worker): take it over.
      renameSync(aside, path);
      if (read(path)?.nonce !== me.nonce) continue;
      // (A lock this process left, a worker that was terminated, is no news.)
      tookOver = holder.pid === process.pid ? null : describe(holder);
      break;
    }
  } finally {
    try {
      unlinkSync(aside);
    } catch {
      // renamed into place
    }
  }
  held.set(path, me);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const p of held.keys()) release(p);
    });
  }
  return { path, tookOver, release: () => release(path) };
}

function refuseIfHeld(holder: Holder, dir: string, what: string): void {
  if (holder.pid !== process.pid && alive(holder)) {
    throw new HsmError('FOLDER_IN_USE', `${what} ${dir} is in use by ${describe(holder)}; stop that process first (or use another folder); nothing was changed`);
  }
}

function release(path: string): void {
  const mine = held.get(path);
  if (!mine) return;
  held.delete(path);
  if (read(path)?.nonce !== mine.nonce) return; // someone took it over: not ours to remove
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}
