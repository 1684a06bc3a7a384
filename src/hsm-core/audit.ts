/**
 * The audit log: an append-only list of management events, numbered without gaps from 0, each
 * carrying the SHA-256 of the record before it, so that a changed, removed or reordered record
 * breaks the chain. What the chain does not stop: someone who can rewrite the whole log can
 * recompute every hash. Compare the head (`getHsmInfo().auditHead`) with a copy kept elsewhere to
 * catch that too.
 *
 * Which events are recorded follows CloudHSM (CLOUDHSM.md §6): logins and logouts, user and key
 * management, sharing, wrapping, masked objects; encrypt, decrypt and sign are not. Strongroom adds
 * `SR_EXPORT_KEY` for plaintext exports, which CloudHSM has no opcode for.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { AuditRecord, UserRole } from './protocol.js';

export const GENESIS_HASH = '0'.repeat(64);

export type AuditEvent = Omit<AuditRecord, 'sequence' | 'time' | 'rebootCounter' | 'previousHash' | 'hash'>;

/** The hash of a record: SHA-256 over its fields (except `hash`) in a fixed order. */
export function hashRecord(r: Omit<AuditRecord, 'hash'>): string {
  const canonical = JSON.stringify([
    r.sequence,
    r.time,
    r.rebootCounter,
    r.opcode,
    r.sessionHandle,
    r.user,
    r.userType,
    r.targetUser,
    r.keyHandles,
    r.response,
    r.previousHash,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * The first `count` records of a log, kept elsewhere: a durable member's folder. `last` is the
 * last of them (null when there are none); `read` gives records from there as new objects.
 */
export interface AuditArchive {
  count: number;
  last: AuditRecord | null;
  read(from: number, max: number): AuditRecord[];
}

export class AuditLog {
  /** The records from #base on; those before are in the archive. */
  readonly #records: AuditRecord[] = [];
  #base = 0;
  readonly #archive: AuditArchive | null = null;
  #lastArchived: AuditRecord | null = null;
  readonly #rebootCounter: number;

  /**
   * A log that goes on from `past`: records (kept in memory), or an archive, which then keeps
   * every record that {@link archived} says it holds, so that memory holds only the newest.
   */
  constructor(rebootCounter = 0, past: readonly AuditRecord[] | AuditArchive = []) {
    this.#rebootCounter = rebootCounter;
    if (Array.isArray(past)) {
      for (const r of past as readonly AuditRecord[]) this.#records.push(Object.freeze({ ...r, keyHandles: [...r.keyHandles] }) as AuditRecord);
    } else {
      this.#archive = past as AuditArchive;
      this.#base = this.#archive.count;
      this.#lastArchived = this.#archive.last;
    }
  }

  /** How many times the member had started before this run (0 for the first run). */
  get rebootCounter(): number {
    return this.#rebootCounter;
  }

  #last(): AuditRecord | null {
    return this.#records.at(-1) ?? this.#lastArchived;
  }

  append(event: AuditEvent): AuditRecord {
    const previous = this.#last();
    const unsigned = {
      sequence: this.#base + this.#records.length,
      time: new Date().toISOString(),
      rebootCounter: this.#rebootCounter,
      opcode: event.opcode,
      sessionHandle: event.sessionHandle,
      user: event.user,
      userType: event.userType,
      targetUser: event.targetUser,
      keyHandles: [...event.keyHandles],
      response: event.response,
      previousHash: previous ? previous.hash : GENESIS_HASH,
    };
    // The hash added to this object rather than in a spread with it: `{ ...unsigned, hash }` gave
    // every record a hidden class of its own (V8).
    const record: AuditRecord = Object.assign(unsigned, { hash: hashRecord(unsigned) });
    this.#records.push(Object.freeze(record) as AuditRecord);
    return record;
  }

  /** Records from `from`, at most `max`, as copies. */
  read(from: number, max: number): AuditRecord[] {
    const out = from < this.#base ? this.#archive!.read(from, Math.min(max, this.#base - from)) : [];
    const start = Math.max(from, this.#base) - this.#base;
    for (const r of this.#records.slice(start, start + max - out.length)) out.push({ ...r, keyHandles: [...r.keyHandles] });
    return out;
  }

  /** The archive holds the records before `count` now: they leave memory. (A log without an archive keeps them.) */
  archived(count: number): void {
    if (!this.#archive || count <= this.#base) return;
    const leaving = this.#records.splice(0, Math.min(count - this.#base, this.#records.length));
    if (!leaving.length) return;
    this.#lastArchived = leaving.at(-1)!;
    this.#base += leaving.length;
  }

  get head(): { sequence: number; hash: string } {
    const last = this.#last();
    return last ? { sequence: last.sequence, hash: last.hash } : { sequence: -1, hash: GENESIS_HASH };
  }
}

export type AuditVerdict = { ok: true; records: number } | { ok: false; sequence: number; reason: string };

/**
 * Verifies a run of consecutive records: each hash matches its record, each record links to the
 * one before, and sequence numbers have no gaps. A run that starts after record 0 is checked from
 * its first record on (pass `previousHash` to check its link too).
 *
 * @example
 * ```ts
 * const { records } = await admin.send({ op: 'getAuditLog' });
 * const verdict = verifyAuditChain(records);
 * if (!verdict.ok) console.error(`audit record ${verdict.sequence}: ${verdict.reason}`);
 * ```
 */
export function verifyAuditChain(records: readonly AuditRecord[], previousHash?: string): AuditVerdict {
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const { hash, ...rest } = r;
    if (hashRecord(rest) !== hash) return { ok: false, sequence: r.sequence, reason: 'its hash does not match its contents' };
    if (i === 0) {
      const expected = previousHash ?? (r.sequence === 0 ? GENESIS_HASH : undefined);
      if (expected !== undefined && r.previousHash !== expected) {
        return { ok: false, sequence: r.sequence, reason: 'it does not link to the record before it' };
      }
      continue;
    }
    const before = records[i - 1]!;
    if (r.sequence !== before.sequence + 1) {
      return { ok: false, sequence: r.sequence, reason: `a gap: it follows record ${before.sequence}` };
    }
    if (r.previousHash !== before.hash) return { ok: false, sequence: r.sequence, reason: 'it does not link to the record before it' };
  }
  return { ok: true, records: records.length };
}

export type { UserRole };
