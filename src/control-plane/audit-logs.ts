/**
 * The members' audit logs in the shape CloudHSM sends them to CloudWatch Logs (CLOUDHSM.md §6):
 * log group `/aws/cloudhsm/<cluster id>`, one stream per HSM named by its HSM id (a replaced HSM
 * gets a new stream), each event a text block of `Name : value` lines — Time, Sequence No, Reboot
 * counter, Command Type, Opcode, Session Handle, Response, Log type, then User Name and User Type
 * or the key handles. Teams point their audit parsers and alarms at the folder.
 *
 * On disk: `<folder>/aws/cloudhsm/<cluster id>/<hsm id>.jsonl`, one event per line as CloudWatch
 * Logs' GetLogEvents gives them (`{"timestamp": ms, "message": "…"}`), and `<hsm id>.jsonl.position`
 * beside it (the next sequence, the hash it must chain to, and the stream's length through them). Records that do not continue the
 * stream's hash chain come from a replaced HSM (a member re-added after a restart of the control
 * plane): the old stream is moved aside as `<hsm id>.<time>.jsonl` and a new one starts at 0. The exporter reads each
 * member's log as the appliance user (CloudHSM's side of the cluster; its login and logout are in
 * the log too) whenever the member's audit head has moved past what was exported.
 *
 * Where Strongroom differs: opcodes CloudHSM does not have are named `SR_…` with no number; an
 * error response is `<n>:HSM Error: <name>` only for the errors whose CloudHSM number is
 * documented (a failed login), otherwise `255:HSM Error: <Strongroom's code>`.
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalCluster } from '../app/index.js';
import { HsmError, appendFileDurably, truncateFileDurably, writeFileDurably, type AuditRecord } from '../hsm-core/index.js';

/** Opcode numbers CloudHSM's audit log reference documents. */
const OPCODES: Record<string, number> = {
  CN_INIT_TOKEN: 0x1,
  CN_CREATE_USER: 0x3,
  CN_CREATE_CO: 0x4,
  CN_CHANGE_PSWD: 0x9,
  CN_LOGIN: 0xd,
  CN_LOGOUT: 0xe,
  CN_DESTROY_OBJECT: 0x11,
  CN_SHARE_OBJECT: 0x12,
  CN_GENERATE_KEY: 0x17,
  CN_GENERATE_KEY_PAIR: 0x19,
  CN_WRAP_KEY: 0x1a,
  CN_UNWRAP_KEY: 0x1b,
  CN_GEN_PSWD_ENC_KEY: 0x1d,
  CN_NIST_AES_WRAP: 0x1e,
  CN_INIT_DONE: 0x95,
  CN_DELETE_USER: 0xa1,
  CN_EXTRACT_MASKED_OBJECT_USER: 0xf0,
  CN_INSERT_MASKED_OBJECT_USER: 0xf1,
  CN_CREATE_APPLIANCE_USER: 0xfc,
};

const USER_TYPES: Record<string, string> = {
  'crypto-user': 'CN_CRYPTO_USER (1)',
  admin: 'CN_CRYPTO_OFFICER (2)',
  appliance: 'CN_APPLIANCE_USER (5)',
  'unactivated-admin': 'CN_CRYPTO_PRE_OFFICER (6)',
};

const RESPONSES: Record<string, string> = {
  SUCCESS: '0:HSM Return: SUCCESS',
  LOGIN_FAILED: '163:HSM Error: RET_USER_LOGIN_FAILURE',
  INVALID_PASSWORD: '163:HSM Error: RET_USER_LOGIN_FAILURE',
};

const hex = (n: number) => `0x${n.toString(16)}`;
const two = (n: number) => String(n).padStart(2, '0');

/** CloudHSM's time line: `Time: 12/19/17 21:01:17.140812, usecs:1513717277140812` (UTC). */
function timeLine(iso: string): { line: string; ms: number } {
  const d = new Date(iso);
  const ms = d.getTime();
  const micros = `${String(d.getUTCMilliseconds()).padStart(3, '0')}000`;
  const when = `${two(d.getUTCMonth() + 1)}/${two(d.getUTCDate())}/${two(d.getUTCFullYear() % 100)} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.${micros}`;
  return { line: `Time: ${when}, usecs:${ms}000`, ms };
}

/** One audit record as the message of a CloudWatch Logs event. */
export function cloudWatchMessage(r: AuditRecord): { timestamp: number; message: string } {
  const { line, ms } = timeLine(r.time);
  const code = OPCODES[r.opcode];
  const lines = [
    line,
    `Sequence No : ${hex(r.sequence)}`,
    `Reboot counter : ${hex(r.rebootCounter)}`,
    'Command Type(hex) : CN_MGMT_CMD (0x0)',
    `Opcode : ${r.opcode}${code !== undefined ? ` (${hex(code)})` : ''}`,
    `Session Handle : ${r.sessionHandle === null ? '0x0' : hex(r.sessionHandle)}`,
    `Response : ${RESPONSES[r.response] ?? `255:HSM Error: ${r.response}`}`,
  ];
  const name = r.targetUser ?? r.user;
  if (r.keyHandles.length) {
    // A pair's private key first, then its public key (CloudHSM's two handle lines).
    lines.push('Log type : MGMT_KEY_DETAILS_LOG (1)', `Priv/Secret Key Handle : ${r.keyHandles[0]}`);
    if (r.keyHandles.length > 1) lines.push(`Public Key Handle : ${r.keyHandles[1]}`);
  } else if (name !== null) {
    lines.push('Log type : MGMT_USER_DETAILS_LOG (2)', `User Name : ${name}`);
    // The type is known for the user who acted; a user acted on is named without it.
    if (r.userType !== null && name === r.user) lines.push(`User Type : ${USER_TYPES[r.userType] ?? r.userType}`);
  } else {
    lines.push('Log type : MINIMAL_LOG_ENTRY (0)');
  }
  return { timestamp: ms, message: lines.join('\n') };
}

export interface AuditStream {
  clusterId: string;
  hsmId: string;
  member: number;
  live: LocalCluster;
}

/** Writes each HSM's new audit records to its stream file. */
export class AuditLogExporter {
  /** Per stream file: where it stands. */
  readonly #positions = new Map<string, Position>();
  #running: Promise<void> | null = null;

  constructor(readonly folder: string) {}

  /** The file of an HSM's stream. */
  streamFile(clusterId: string, hsmId: string): string {
    return join(this.folder, 'aws', 'cloudhsm', clusterId, `${hsmId}.jsonl`);
  }

  /**
   * Exports what is new on every stream `streams()` lists when the pass starts (one pass at a
   * time; a caller during a pass waits for it, then runs its own).
   */
  async export(streams: () => AuditStream[]): Promise<void> {
    while (this.#running) await this.#running;
    const run = this.#exportAll(streams());
    this.#running = run;
    try {
      await run;
    } finally {
      this.#running = null;
    }
  }

  async #exportAll(streams: AuditStream[]): Promise<void> {
    const heads = new Map<LocalCluster, Map<number, number>>();
    // A stream that fails does not hold up the others; the first failure is reported after. A
    // member that went away mid-read (restarted, removed) is not a failure: its records wait for the next pass.
    const failures: unknown[] = [];
    for (const s of streams) {
      await this.#exportOne(s, heads).catch((e: unknown) => {
        if (!(e instanceof HsmError && e.code === 'MEMBER_UNAVAILABLE')) failures.push(e);
      });
    }
    if (failures.length) throw failures[0];
  }

  async #exportOne(s: AuditStream, heads: Map<LocalCluster, Map<number, number>>): Promise<void> {
    let byMember = heads.get(s.live);
    if (!byMember) {
      const infos = await s.live.hsmInfo().catch(() => []);
      heads.set(s.live, (byMember = new Map(infos.map((i) => [i.memberIndex, i.auditHead.sequence]))));
    }
    const head = byMember.get(s.member);
    if (head === undefined) return; // the member is not answering: its records wait for the next pass
    const file = this.streamFile(s.clusterId, s.hsmId);
    const position = this.#positions.get(file) ?? { ...savedPosition(file), seenHead: -1 };
    this.#positions.set(file, position);
    // A log shorter than what was exported is another log (the HSM was replaced): a new stream.
    if (head < position.next - 1) this.#rotate(file, position);
    // Nothing new but the exporter's own logout (or nothing at all): no login, so no new record.
    if (head < position.next || head === position.seenHead) return;
    await this.#exportStream(s, file, position);
  }

  /** Moves a stream whose HSM was replaced aside (`<hsm id>.<time>.jsonl`); the next records start a new one. */
  #rotate(file: string, position: Position): void {
    if (existsSync(file)) renameSync(file, file.replace(/\.jsonl$/, `.${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`));
    rmSync(`${file}.position`, { force: true });
    Object.assign(position, { next: 0, lastHash: null, bytes: 0, seenHead: -1 });
  }

  async #exportStream(s: AuditStream, file: string, position: Position): Promise<void> {
    mkdirSync(join(this.folder, 'aws', 'cloudhsm', s.clusterId), { recursive: true, mode: 0o700 });
    for (;;) {
      const page = await s.live.readAuditLog(s.member, position.next);
      const first = page.records[0];
      if (first && position.next > 0 && position.lastHash !== null && first.previousHash !== position.lastHash) {
        // The records do not continue the stream's chain: the HSM was replaced. Start its new stream from 0.
        this.#rotate(file, position);
        continue;
      }
      if (page.records.length) {
        // The events are on disk before the position that says so.
        appendFileDurably(file, page.records.map((r) => JSON.stringify(cloudWatchMessage(r))).join('\n') + '\n', 0o600);
        position.next = page.records.at(-1)!.sequence + 1;
        position.lastHash = page.records.at(-1)!.hash;
        position.bytes = statSync(file).size;
        writeFileDurably(`${file}.position`, JSON.stringify({ next: position.next, lastHash: position.lastHash, bytes: position.bytes }) + '\n', 0o600);
      }
      if (page.records.length === 0 || position.next > page.head.sequence) {
        // The reading session's logout comes next: the head it leaves needs no new pass.
        position.seenHead = page.head.sequence + 1;
        return;
      }
    }
  }
}

interface Position {
  /** The next sequence to write. */
  next: number;
  /** The hash of the last record written, which the next must chain to (null: not known). */
  lastHash: string | null;
  /** The stream's length in bytes through the last record written. */
  bytes: number;
  /** The audit head seen after the last export (the exporter's own logout). */
  seenHead: number;
}

/**
 * Where a stream stands, with the stream cut to match. The `.position` file beside it (written
 * whole or not at all, after each append is on disk) counts the events exported and the bytes they
 * take. A crash after an append but before its position, or during an append, leaves events past
 * that length, whole or cut short: they are cut off here and exported again, so that no event is
 * in the stream twice and no line is half an event. A position without a length (from an earlier
 * version) keeps the events before the sequence it names; with no position, or one that does not
 * read (written in place by an earlier version and cut short by a crash), the stream's last whole
 * event says where it stands. With no stream, the export starts again from the first record.
 */
function savedPosition(file: string): Omit<Position, 'seenHead'> {
  if (!existsSync(file)) return { next: 0, lastHash: null, bytes: 0 };
  const saved = readPosition(`${file}.position`);
  const size = statSync(file).size;
  if (saved?.bytes !== undefined && saved.bytes <= size) {
    if (saved.bytes < size) truncateFileDurably(file, saved.bytes);
    return { next: saved.next, lastHash: saved.lastHash, bytes: saved.bytes };
  }
  const text = readFileSync(file);
  let kept = 0;
  let last: number | null = null;
  for (let at = 0, end = text.indexOf(0x0a); end >= 0; at = end + 1, end = text.indexOf(0x0a, at)) {
    const sequence = sequenceOf(text.toString('utf8', at, end));
    if (saved && sequence !== null && sequence >= saved.next) break;
    if (sequence !== null) last = sequence;
    kept = end + 1;
  }
  if (kept < size) truncateFileDurably(file, kept);
  const next = last === null ? 0 : last + 1;
  return { next, lastHash: saved && saved.next === next ? saved.lastHash : null, bytes: kept };
}

/** The sequence number of an exported event (a line of a stream), or null when the line is not one. */
function sequenceOf(line: string): number | null {
  try {
    const m = /Sequence No : 0x([0-9a-f]+)/.exec((JSON.parse(line) as { message?: unknown }).message as string);
    return m ? parseInt(m[1]!, 16) : null;
  } catch {
    return null;
  }
}

/** A `.position` file's content, or null when there is none or it is not one. */
function readPosition(path: string): (Omit<Position, 'seenHead' | 'bytes'> & { bytes?: number }) | null {
  if (!existsSync(path)) return null;
  try {
    const p = JSON.parse(readFileSync(path, 'utf8')) as Partial<Position>;
    if (!Number.isSafeInteger(p.next) || p.next! < 0 || !(p.lastHash === null || typeof p.lastHash === 'string')) return null;
    return { next: p.next!, lastHash: p.lastHash, ...(Number.isSafeInteger(p.bytes) && p.bytes! >= 0 ? { bytes: p.bytes } : {}) };
  } catch {
    return null;
  }
}
