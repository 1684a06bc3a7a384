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

export class AuditLog {
  readonly #records: AuditRecord[] = [];
  readonly #rebootCounter: number;

  constructor(rebootCounter = 0, records: readonly AuditRecord[] = []) {
    this.#rebootCounter = rebootCounter;
    for (const r of records) this.#records.push(Object.freeze({ ...r, keyHandles: [...r.keyHandles] }) as AuditRecord);
  }

  /** How many times the member had started before this run (0 for the first run). */
  get rebootCounter(): number {
    return this.#rebootCounter;
  }

  append(event: AuditEvent): AuditRecord {
    const previous = this.#records.at(-1);
    const unsigned = {
      sequence: this.#records.length,
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
    const record: AuditRecord = { ...unsigned, hash: hashRecord(unsigned) };
    this.#records.push(Object.freeze(record) as AuditRecord);
    return record;
  }

  /** Records from `from`, at most `max`, as copies. */
  read(from: number, max: number): AuditRecord[] {
    return this.#records.slice(from, from + max).map((r) => ({ ...r, keyHandles: [...r.keyHandles] }));
  }

  get head(): { sequence: number; hash: string } {
    const last = this.#records.at(-1);
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
