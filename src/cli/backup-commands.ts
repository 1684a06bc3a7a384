/**
 * `strongroom backup …` and `strongroom cluster …`: CloudHSM's backup and membership commands
 * against a cluster folder (its backup store, and the control socket of a running `strongroom
 * up`). `--output json` prints the machine-readable form on stdout; progress goes to stderr.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HsmError, keyRef } from '../hsm-core/client.js';
import { BackupStore, type BackupInfo, type BackupState, type MemberStatus, type SyncState } from '../cluster-client/index.js';
import { callControl } from './control.js';

export type Output = 'text' | 'json';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

/**
 * The backup store the options name. An existing one unless `create` (a copy's destination): a
 * mistyped --data-dir or --backup-dir is an error that names the folder, and creates nothing.
 */
export function storeAt(options: { dataDir: string; backupDir?: string; region?: string }, create = false): BackupStore {
  const dir = options.backupDir ?? join(options.dataDir, 'backups');
  if (!create && !existsSync(dir)) {
    const which = options.backupDir !== undefined ? `--backup-dir ${options.backupDir}` : existsSync(options.dataDir) ? `--data-dir ${options.dataDir} has no backups folder` : `--data-dir ${options.dataDir}`;
    throw new HsmError('BAD_REQUEST', `${which}: no such folder; name the cluster folder that strongroom up uses (default .strongroom), or a backup store with --backup-dir`);
  }
  return new BackupStore(dir, options.region !== undefined ? { region: options.region } : {});
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
}

function backupRows(backups: BackupInfo[]): string[] {
  if (!backups.length) return ['(no backups)'];
  return table([
    ['BACKUP ID', 'CLUSTER', 'REGION', 'STATE', 'CREATED', 'TRIGGER', 'NEVER EXPIRES', 'TAGS'],
    ...backups.map((b) => [
      b.backupId,
      b.clusterId ?? `(copy of ${b.sourceBackupId} from ${b.sourceRegion})`,
      b.region,
      b.state,
      b.createTimestamp,
      b.trigger,
      b.neverExpires ? 'yes' : 'no',
      Object.entries(b.tags).map(([k, v]) => `${k}=${v}`).join(','),
    ]),
  ]);
}

export function emit(io: Io, output: Output, value: unknown, text: () => string[]): void {
  if (output === 'json') io.out(JSON.stringify(value, null, 2));
  else for (const line of text()) io.out(line);
}

const STATES: BackupState[] = ['READY', 'PENDING_DELETION', 'DELETED'];

export function backupList(store: BackupStore, options: { clusterId?: string; region?: string; states?: string; output: Output }, io: Io): void {
  const states = options.states?.split(',').map((s) => s.trim().toUpperCase());
  for (const s of states ?? []) if (!STATES.includes(s as BackupState)) throw new HsmError('BAD_REQUEST', `--states: each of ${STATES.join(', ')}, got ${JSON.stringify(s)}`);
  const backups = store.list({ ...(options.clusterId ? { clusterId: options.clusterId } : {}), ...(options.region ? { region: options.region } : {}), ...(states ? { states: states as BackupState[] } : {}) });
  emit(io, options.output, { backups }, () => backupRows(backups));
}

export function backupChange(info: BackupInfo, output: Output, io: Io, what: string): void {
  emit(io, output, { backup: info }, () => [`${info.backupId}: ${what} (state ${info.state})`]);
}

/** A small progress display on stderr: each step with the time since the previous one. */
export function progress(io: Io, output: Output): (step: string) => void {
  let last = performance.now();
  let previous: string | null = null;
  return (step) => {
    const now = performance.now();
    if (previous !== null) io.err(`  ✓ ${previous} (${((now - last) / 1000).toFixed(1)} s)`);
    if (output === 'text' || output === 'json') io.err(`  … ${step}`);
    previous = step;
    last = now;
  };
}

function memberRows(members: MemberStatus[]): string[] {
  return table([['MEMBER', 'STATE', 'WHERE', 'REQUESTS', 'REPAIRS'], ...members.map((m) => [String(m.index), m.state, m.description, String(m.counters.requests), String(m.counters.repairs)])]);
}

export async function clusterMembership(dataDir: string, command: 'add-member' | 'remove-member' | 'status', member: number | undefined, output: Output, io: Io): Promise<void> {
  const request = command === 'remove-member' ? { command, member: member! } : { command };
  const result = (await callControl(dataDir, request as never, progress(io, output))) as { member?: number; members: MemberStatus[]; sync?: SyncState };
  emit(io, output, result, () => [
    ...(command === 'add-member' ? [`added member ${result.member}`] : command === 'remove-member' ? [`removed member ${result.member}`] : []),
    ...memberRows(result.members),
    ...(result.sync ? [syncLine(result.sync)] : []),
  ]);
}

/** What `cluster status` says of the members' agreement: in step, or which keys and users are not yet everywhere. */
function syncLine(sync: SyncState): string {
  if (sync.inSync) return 'sync: the members that are up hold the same keys, users and settings';
  const parts = [
    sync.keys.length ? `${sync.keys.length} key${sync.keys.length === 1 ? '' : 's'} (${sync.keys.slice(0, 5).map(keyRef).join(', ')}${sync.keys.length > 5 ? ', …' : ''})` : '',
    sync.users.length ? `${sync.users.length} user${sync.users.length === 1 ? '' : 's'} (${sync.users.slice(0, 5).join(', ')})` : '',
    sync.settings ? 'the quorum settings' : '',
  ].filter(Boolean);
  return `sync: not yet on every member: ${parts.join('; ') || 'changes in flight'}`;
}
