/**
 * Files that must outlive a crash of the process or of the machine: a member's storage key, its
 * TLS identity, a cluster's installation keys and trust anchor, backups and their records, the
 * PKCS #11 door's objects, the control plane's records, a cluster's settings.
 *
 * `writeFile` alone is not enough. A process killed while writing leaves half a file, and a machine
 * that loses power can lose a file whose name the disk already holds: the kernel keeps the bytes
 * in memory for a while, and ext4 may write the rename before them. A member's store (LMDB) flushes
 * every commit before it answers; its storage key written that way could still be an empty file
 * after a power cut, and every key in the store would be lost with it.
 *
 * So a file is written under a name of its own beside the final one, flushed to disk (fsync),
 * renamed into place (atomic: a reader sees the old file or the new, never a mix), and then the
 * folder itself is flushed, so that the new name is on disk too.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, copyFileSync, existsSync, fsyncSync, ftruncateSync, openSync, promises as fsp, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Writes all of `data` at the descriptor's position (a write may take less than it is given). */
function writeAll(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
}

/**
 * Writes `data` to `file` so that, once this returns, `file` holds exactly `data` whatever
 * crashes; until it returns, `file` is as it was. `mode` applies to a new file (default 0600: only
 * the owner reads it).
 */
export function writeFileDurably(file: string, data: string | Uint8Array, mode = 0o600): void {
  intoPlace(file, (temp) => {
    const fd = openSync(temp, 'wx', mode);
    try {
      writeAll(fd, data);
    } finally {
      closeSync(fd);
    }
  });
}

/**
 * {@link writeFileDurably} without holding the event loop: the file is written and flushed on
 * libuv's thread pool. For large files: the flush of a backup of 100,000 keys (about 40 MB) held
 * an in-process member's thread about 100 ms. Until it resolves, `file` is as it was.
 */
export async function writeFileDurablyAsync(file: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const temp = besideName(file);
  try {
    const handle = await fsp.open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(temp, file);
  } catch (e) {
    await fsp.rm(temp, { force: true });
    throw e;
  }
  syncFolder(dirname(file));
}

/**
 * Appends `data` to `file` (made with `mode` if it is not there) and flushes it before returning,
 * with its folder when the file is new. A crash during the append can leave part of `data` at the
 * file's end; once this returns, all of it is on disk.
 */
export function appendFileDurably(file: string, data: string | Uint8Array, mode = 0o600): void {
  const isNew = !existsSync(file);
  const fd = openSync(file, 'a', mode);
  try {
    writeAll(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (isNew) syncFolder(dirname(file));
}

/**
 * Cuts `file` to its first `length` bytes and flushes it before returning: what a crash during an
 * {@link appendFileDurably} left past the last whole record, dropped.
 */
export function truncateFileDurably(file: string, length: number): void {
  const fd = openSync(file, 'r+');
  try {
    ftruncateSync(fd, length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies `from` to `to` as {@link writeFileDurably} writes (the bytes go from file to file: a key
 * file is copied without being read into JavaScript).
 */
export function copyFileDurably(from: string, to: string, mode = 0o600): void {
  intoPlace(to, (temp) => {
    copyFileSync(from, temp, constants.COPYFILE_EXCL);
    chmodSync(temp, mode);
  });
}

/**
 * Puts the file `make` writes at a new name beside `file` in its place: flushed, renamed over
 * `file`, and the folder flushed. If anything fails before the rename, the file beside is removed
 * and `file` is as it was.
 */
function intoPlace(file: string, make: (temp: string) => void): void {
  const temp = besideName(file);
  try {
    make(temp);
    const fd = openSync(temp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  } catch (e) {
    rmSync(temp, { force: true });
    throw e;
  }
  syncFolder(dirname(file));
}

/** A new name beside `file` for the file that will take its place. */
function besideName(file: string): string {
  return `${file}.${randomBytes(6).toString('hex')}.tmp`;
}

/**
 * Flushes a folder's entries (names made, renamed or removed in it) to disk. Windows cannot open a
 * folder to flush it (its file system journals names itself): there, nothing is done. Nor where
 * this process may write in a folder but not read it (mode -wx): opening it is refused, and
 * refusing the write for it would refuse a folder that worked before.
 */
export function syncFolder(dir: string): void {
  if (process.platform === 'win32') return;
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EACCES') return;
    throw e;
  }
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
