/**
 * Backups, taken and restored inside the member (CLOUDHSM.md §5).
 *
 * - The member makes an ephemeral backup key (EBK, AES-256) and wraps the backup's content —
 *   users with their password hashes, token keys with attributes and shares, the masking key, the
 *   cluster id and addresses — with it, using AES key wrap with padding (SP 800-38F KWP,
 *   RFC 5649). Format 2 (this version's) encodes the content in MessagePack, each token key a row
 *   of values against a table of attribute-name lists; format 1 (still read) encoded it in JSON,
 *   every attribute named in every key: three to six times the bytes, and key wrap, which runs
 *   six AES operations per 8 bytes one after another, took most of a large backup's time.
 * - The EBK is wrapped (SP 800-38F KW, RFC 3394) by the persistent backup key (PBK), derived with
 *   the SP 800-108 counter KDF (HMAC-SHA256) from the manufacturer key (MKBK, the "hardware"
 *   secret, made per installation) and the service key (AKBK, one per installation), with the
 *   member's mode (`fips` or `non-fips`) in the context.
 * - A clear header says which cluster, mode and manufacturer the backup is from, so a refusal
 *   can say why; its digest is inside the wrapped content, so it cannot be altered either. Key
 *   wrap's integrity check detects any flipped bit.
 *
 * So a backup restores only onto a member with the same manufacturer key, service key and mode.
 *
 * @module
 */
import { createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { HsmError } from '../errors.js';
import { Masking, keyFromContent, maskedUserOf, type MaskedContent, type MaskedUser } from '../masking.js';
import { defaultQuorumSettings, type QuorumSettings } from '../quorum.js';
import { kwNoPadUnwrap, kwNoPadWrap } from '../mechanisms/aes.js';
import { kwZeroPadUnwrapAway, kwZeroPadWrapAway } from '../mechanisms/wrap-thread.js';
import { KEYS_A_TURN, inTurns } from '../mechanisms/pool.js';
import { defaultFormat, serialiseKey } from '../mechanisms/keys.js';
import type { KeyRecord } from '../key-store.js';
import { sp800108Counter } from '../mechanisms/kdf.js';
import { signedIn, type BackupKeys, type Handler, type MemberMode, type MemberState } from '../state.js';
import { APPLIANCE_USERNAME } from '../protocol.js';
import { requireManager } from '../access.js';
import { adminApproval } from './quorum-ops.js';
import { mergeKey, mergeKeyTombstone, mergeSettings, mergeUser, mergeUserTombstone, takeNewer } from '../merge.js';

const MAGIC = Buffer.from('SRBK1');

/**
 * The manufacturer key of members that are given none: made at random when this process loads,
 * so it is shared by this process's members and by nothing else (no key in the source code opens
 * anyone's backups). Installations keep theirs in their cluster folder and hand it to every
 * member (see cluster-client/installation.ts).
 */
export const PROCESS_MANUFACTURER_KEY = randomBytes(32);

/** The formats this version reads; it writes the last. */
const FORMATS = [1, 2] as const;

export interface BackupHeader {
  v: (typeof FORMATS)[number];
  clusterId: string;
  mode: MemberMode;
  /** A short fingerprint of the manufacturer key (not the key). */
  manufacturer: string;
  sourceSerial: string;
  createdAt: string;
  /** The profile of the member it was taken from, hence its HSM type (absent in older backups: cloudhsm). */
  profile?: string;
}

interface BackupContent {
  headerDigest: string;
  lifecycle: 'active';
  clusterId: string;
  profile: string;
  masking: string;
  addresses: string[];
  users: (MaskedUser & { failedLogins: number })[];
  keys: MaskedContent[];
  /** Absent in backups made before quorum existed. */
  quorum?: QuorumSettings;
  /** Absent in backups made before generations: everything in them counts as generation 0. */
  quorumGen?: number;
  clock?: number;
  deletedKeys?: [number, number][];
  deletedUsers?: [string, number][];
}

/** A token key in format 2: its fields in order, its attribute values in the order of a name list. */
type KeyRow = [handle: number, gen: number, cls: MaskedContent['cls'], type: MaskedContent['type'], owner: string, shared: string[], names: number, values: unknown[], material: Uint8Array];

/** Format 2's content: the keys as rows, and the attribute-name lists they index. */
type PackedContent = Omit<BackupContent, 'keys'> & { keyNames: string[][]; keyRows: KeyRow[] };

/**
 * A token key as it is when a backup begins: its generation, its attributes object and its shares
 * (both replaced on a change, never changed in place); its material never changes. So the backup
 * holds each key as it was then, however long the packing takes.
 */
interface KeyAsItWas {
  key: KeyRecord;
  gen: number;
  attrs: KeyRecord['attrs'];
  shared: ReadonlySet<string>;
}

function tokenKeysNow(m: MemberState): KeyAsItWas[] {
  const keys: KeyAsItWas[] = [];
  for (const key of m.keys.values()) {
    if (key.session === null) keys.push({ key, gen: key.gen, attrs: key.attrs, shared: key.shared });
  }
  return keys;
}

/** The row of a key in format 2, its attribute names added to `keyNames` when they are a new list. */
function rowOf({ key, gen, attrs, shared }: KeyAsItWas, lists: Map<string, number>, keyNames: string[][]): KeyRow {
  const values = attrs as unknown as Record<string, unknown>;
  // As JSON did, an attribute whose value is undefined is left out.
  const names = Object.keys(values).filter((n) => values[n] !== undefined);
  const id = JSON.stringify(names);
  let list = lists.get(id);
  if (list === undefined) {
    list = keyNames.push(names) - 1;
    lists.set(id, list);
  }
  return [key.handle, gen, key.cls, key.type, key.owner, shared.size ? [...shared].sort() : [], list, names.map((n) => values[n]), serialiseKey(key, defaultFormat(key.cls)) as Uint8Array];
}

/** The length of the MessagePack array header at the start of `bytes` (fixarray, array 16 or array 32). */
function arrayHeaderLength(bytes: Uint8Array): number {
  const first = bytes[0]!;
  if ((first & 0xf0) === 0x90) return 1;
  if (first === 0xdc) return 3;
  if (first === 0xdd) return 5;
  throw new HsmError('INTERNAL_ERROR', 'backup: a slice of key rows did not encode as an array');
}

/** A MessagePack array header for `count` elements, as the encoder writes it. */
function arrayHeader(count: number): Buffer {
  if (count < 16) return Buffer.from([0x90 | count]);
  const header = Buffer.alloc(count < 0x10000 ? 3 : 5);
  header[0] = count < 0x10000 ? 0xdc : 0xdd;
  if (count < 0x10000) header.writeUInt16BE(count, 1);
  else header.writeUInt32BE(count, 1);
  return header;
}

/**
 * Format 2's content in MessagePack: the same bytes as encoding `{ ...content, keyNames, keyRows }`
 * at once, but its keys' rows are made and encoded {@link KEYS_A_TURN} a turn of the event loop on
 * a member that shares its thread with the application (at 100,000 keys the packing held the loop
 * for most of a second), all at once on one with a thread of its own. The answer owns its whole
 * buffer, as the wrap asks; every other copy of key bytes made here is zeroed.
 */
async function encodeContent(content: Omit<BackupContent, 'keys'>, keys: KeyAsItWas[]): Promise<Buffer> {
  const encoder = new Encoder();
  const lists = new Map<string, number>();
  const keyNames: string[][] = [];
  const pieces: Buffer[] = [];
  for await (const piece of inTurns(keys)) {
    const rows = piece.map((k) => rowOf(k, lists, keyNames));
    // The encoder's own buffer: its rows are copied out, and it is zeroed.
    const encoded = encoder.encodeSharedRef(rows);
    pieces.push(Buffer.from(encoded.subarray(arrayHeaderLength(encoded))));
    encoded.fill(0);
    for (const row of rows) row[8].fill(0);
  }
  // The head with no rows ends in their empty array (0x90), which the rows and their header
  // replace. It holds the masking key: it too is copied out of the encoder's buffer and zeroed there.
  const head = encoder.encodeSharedRef({ ...content, keyNames, keyRows: [] });
  if (head[head.length - 1] !== 0x90) throw new HsmError('INTERNAL_ERROR', 'backup: the content\'s head did not end with its key rows');
  const parts = [head.subarray(0, head.length - 1), arrayHeader(keys.length), ...pieces];
  // Not zeroed first: every byte is written just below (zeroing 40 MB at 100,000 keys cost the turn about 10 ms).
  const plain = Buffer.allocUnsafeSlow(parts.reduce((n, p) => n + p.length, 0));
  let written = 0;
  for (const part of parts) {
    plain.set(part, written);
    written += part.length;
  }
  head.fill(0);
  for (const piece of pieces) piece.fill(0);
  return plain;
}

/** Format 2's content as keys with their attributes named, {@link KEYS_A_TURN} keys a turn on a member that shares its thread. */
async function unpackContent(packed: PackedContent): Promise<BackupContent> {
  const { keyNames, keyRows, ...rest } = packed;
  const keys: MaskedContent[] = [];
  for await (const piece of inTurns(keyRows)) {
    for (const [handle, gen, cls, type, owner, shared, list, values, material] of piece) {
      const names = keyNames[list];
      if (!names || names.length !== values.length) throw new HsmError('BACKUP_INVALID', `backup: key ${handle} does not match its attribute list`);
      const attrs: Record<string, unknown> = {};
      names.forEach((n, i) => (attrs[n] = values[i]));
      // The material is read where it lies in the decoded content, which is zeroed once read.
      keys.push({ handle, gen, cls, type, owner, shared, attrs: attrs as unknown as MaskedContent['attrs'], material: Buffer.from(material.buffer, material.byteOffset, material.byteLength).toString('base64') });
    }
  }
  return { ...rest, keys };
}

export function manufacturerFingerprint(key: Buffer): string {
  return createHash('sha256').update('mkbk:').update(key).digest('hex').slice(0, 16);
}

function pbk(keys: BackupKeys, where: string): KeyObject {
  if (!keys.serviceKey) throw new HsmError('BAD_REQUEST', `${where}: this member has no service key (AKBK) configured, so it cannot make or open backups`);
  const mkbk = createSecretKey(keys.manufacturerKey);
  return createSecretKey(sp800108Counter(mkbk, 'hmac-sha256', Buffer.from('strongroom PBK'), Buffer.concat([keys.serviceKey, Buffer.from(`:${keys.mode}`)]), 32));
}

export const createBackup: Handler<'createBackup'> = async (m, caller) => {
  signedIn(caller);
  if (m.lifecycle !== 'active' || m.clusterId === null) throw new HsmError('CLUSTER_NOT_ACTIVE', 'only a member of an active cluster can be backed up');
  const keys = m.backupKeys;
  const header: BackupHeader = {
    v: 2,
    clusterId: m.clusterId,
    mode: keys.mode,
    manufacturer: manufacturerFingerprint(keys.manufacturerKey),
    sourceSerial: m.serialNumber,
    createdAt: new Date().toISOString(),
    profile: m.profile.name,
  };
  const headerBytes = Buffer.from(JSON.stringify(header));
  // Everything the backup holds is read in this turn; its keys' rows are packed afterwards, as
  // they were now (see tokenKeysNow).
  const secret = m.masking.exportSecret();
  const head: Omit<BackupContent, 'keys'> = {
    headerDigest: createHash('sha256').update(headerBytes).digest('hex'),
    lifecycle: 'active',
    clusterId: m.clusterId,
    profile: m.profile.name,
    masking: secret.toString('base64'),
    addresses: [...m.addresses],
    users: [...m.users.values()].filter((u) => u.role !== 'appliance').map((u) => ({ ...maskedUserOf(u), failedLogins: u.failedLogins })),
    quorum: m.quorum,
    quorumGen: m.quorumGen,
    clock: m.clock,
    deletedKeys: [...m.keyTombstones],
    deletedUsers: [...m.userTombstones],
  };
  secret.fill(0);
  const plain = await encodeContent(head, tokenKeysNow(m));
  head.masking = '';
  const ebkBytes = randomBytes(32);
  const ebk = createSecretKey(ebkBytes);
  const wrappedEbk = kwNoPadWrap(pbk(keys, 'createBackup'), ebkBytes);
  ebkBytes.fill(0);
  // The wrap, most of a large backup's time, lets an in-process member's application go on
  // meanwhile. `plain` is left empty or zeroed.
  const length = Buffer.alloc(4);
  length.writeUInt32BE(headerBytes.length);
  // The backup is made whole where it is wrapped: a Buffer.concat of its parts here, and the copy
  // of that into a Uint8Array, took 67 ms of one turn for 100,000 keys.
  const backup = await kwZeroPadWrapAway(ebk, plain, Buffer.concat([MAGIC, length, headerBytes, wrappedEbk]));
  return { backup: new Uint8Array(backup.buffer, backup.byteOffset, backup.byteLength), header };
};

/** Reads a backup's clear header (no key needed). */
export function readBackupHeader(blob: Uint8Array): { header: BackupHeader; headerBytes: Buffer; rest: Buffer } {
  const data = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const bad = (why: string): never => {
    throw new HsmError('BACKUP_INVALID', `backup: ${why}`);
  };
  if (data.length < MAGIC.length + 4 || !MAGIC.equals(data.subarray(0, MAGIC.length))) bad('not a Strongroom backup');
  const length = data.readUInt32BE(MAGIC.length);
  if (length > 4096 || data.length < MAGIC.length + 4 + length + 40 + 16) bad('it is truncated');
  const headerBytes = data.subarray(MAGIC.length + 4, MAGIC.length + 4 + length);
  let header: BackupHeader;
  try {
    header = JSON.parse(headerBytes.toString('utf8')) as BackupHeader;
  } catch {
    return bad('its header is damaged');
  }
  if (!(FORMATS as readonly unknown[]).includes(header.v)) bad(`it has format ${String(header.v)}; this member reads ${FORMATS.join(' and ')}`);
  return { header, headerBytes, rest: data.subarray(MAGIC.length + 4 + length) };
}

async function openBackup(m: MemberState, blob: Uint8Array): Promise<BackupContent> {
  const { header, headerBytes, rest } = readBackupHeader(blob);
  const keys = m.backupKeys;
  if (header.mode !== keys.mode) {
    throw new HsmError('BACKUP_INVALID', `backup: it comes from a ${header.mode} cluster and this member runs in ${keys.mode} mode; backups restore only into the same mode`);
  }
  if (header.manufacturer !== manufacturerFingerprint(keys.manufacturerKey)) {
    throw new HsmError('BACKUP_INVALID', 'backup: it was made by an HSM of another manufacturer (different manufacturer key); it restores only onto the same manufacturer\'s HSMs');
  }
  let ebkBytes: Buffer;
  try {
    ebkBytes = kwNoPadUnwrap(pbk(keys, 'restoreBackup'), rest.subarray(0, 40));
  } catch (e) {
    if (e instanceof HsmError && e.code === 'BAD_REQUEST') throw e;
    throw new HsmError('BACKUP_INVALID', 'backup: its backup key does not unwrap (another installation\'s service key, or it was altered)');
  }
  let plain: Buffer;
  try {
    // Most of a large restore's time: an in-process member's application goes on meanwhile.
    plain = await kwZeroPadUnwrapAway(createSecretKey(ebkBytes), rest.subarray(40));
  } catch (e) {
    if (e instanceof HsmError && e.code === 'INTERNAL_ERROR') throw e;
    throw new HsmError('BACKUP_INVALID', 'backup: its content fails the key-wrap integrity check (it was altered)');
  } finally {
    ebkBytes.fill(0);
  }
  let content: BackupContent;
  try {
    content = header.v === 1 ? (JSON.parse(plain.toString('utf8')) as BackupContent) : await unpackContent(new Decoder().decode(plain) as PackedContent);
  } finally {
    plain.fill(0);
  }
  if (content.headerDigest !== createHash('sha256').update(headerBytes).digest('hex')) {
    throw new HsmError('BACKUP_INVALID', 'backup: its header was altered');
  }
  return content;
}

/**
 * Restores a backup. Onto a member that is not in a cluster (new, or emptied), it overwrites
 * everything (CloudHSM's restore; how members join). Onto an active member it is a merge: only
 * what is newer than what the member holds comes in (merge.ts), so an old backup brings back no
 * deleted user or key and no old password or quorum value. Such a restore takes a backup of the
 * member's own cluster, and is for the appliance user (the cluster's own repair) or for an admin
 * with the user service's approval.
 */
export const restoreBackup: Handler<'restoreBackup'> = async (m, caller, req) => {
  // A restore into a member of a cluster: only its managers may (asked before the backup is
  // opened, and again after: the member may have joined a cluster meanwhile).
  if (m.clusterId !== null) requireManager(caller, 'restoreBackup');
  const content = await openBackup(m, req.backup);
  if (content.profile !== m.profile.name) {
    throw new HsmError('BACKUP_INVALID', `backup: it comes from a ${content.profile} member and this one runs the ${m.profile.name} profile`);
  }
  // A member outside a cluster takes everything: its keys are made first, and their records for
  // its data folder sealed, a slice a turn on an in-process member, and nothing of the member
  // changes until all are made.
  const made = m.clusterId === null ? await keysOf(content) : null;
  if (made) await m.prepareKeys(made.keys);
  // From here to the end nothing waits: what is checked is what the restore changes.
  const active = m.clusterId !== null;
  if (active) requireManager(caller, 'restoreBackup');
  if (active) {
    if (req.asNewCluster) throw new HsmError('BAD_REQUEST', `asNewCluster: this member is already in cluster ${m.clusterId}; a new cluster is made on a new member`);
    if (content.clusterId !== m.clusterId) {
      throw new HsmError('BACKUP_INVALID', `backup: it is of cluster ${content.clusterId}, and this member is in ${m.clusterId}; an active member takes only its own cluster's backups`);
    }
    const me = signedIn(caller);
    const approve = me.role === 'admin' ? adminApproval(m, me, 'user', req.approval) : () => undefined;
    mergeBackup(m, content);
    approve();
    return { clusterId: m.clusterId!, users: content.users.length, keys: content.keys.length, merged: true };
  }
  // Made above: the member was outside a cluster then, and nothing has waited since.
  const { keys, masking } = made!;
  // A restore overwrites everything on the member (CLOUDHSM.md §5), but it keeps its own appliance user.
  const appliance = m.users.get(APPLIANCE_USERNAME);
  m.sessions.clear();
  m.keys.clear();
  m.users.clear();
  m.keyTombstones.clear();
  m.userTombstones.clear();
  if (appliance) m.users.set(APPLIANCE_USERNAME, appliance);
  for (const u of content.users) {
    m.users.set(u.username, { username: u.username, role: u.role, password: u.password, failedLogins: u.failedLogins, tokenSign: u.tokenSign ?? null, gen: u.gen ?? 0 });
  }
  for (const [handle, gen] of content.deletedKeys ?? []) m.keyTombstones.set(handle, gen);
  for (const [username, gen] of content.deletedUsers ?? []) m.userTombstones.set(username, gen);
  m.quorum = content.quorum ? { ...structuredClone(content.quorum), values: { ...defaultQuorumSettings().values, ...content.quorum.values } } : defaultQuorumSettings();
  m.quorumGen = content.quorumGen ?? 0;
  m.clock = Math.max(m.clock, content.clock ?? 0);
  m.quorumTokens.delete(() => true);
  for (const k of keys) {
    m.keys.add(k);
    m.observe(k.gen);
  }
  m.masking = masking;
  m.addresses = [...content.addresses];
  m.clusterId = req.asNewCluster ? `cluster-${randomBytes(8).toString('hex')}` : content.clusterId;
  if (req.asNewCluster) m.addresses = [];
  m.lifecycle = 'active';
  return { clusterId: m.clusterId, users: content.users.length, keys: keys.length, merged: false };
};

/**
 * A backup's masking key and its keys, each with its sync digest made (the first comparison after
 * a join asks for every digest, which took 650 ms of a join of 20,000 keys in one turn):
 * {@link KEYS_A_TURN} keys a turn of the event loop on a member that shares its thread with the
 * application, all at once on one with a thread of its own.
 */
async function keysOf(content: BackupContent): Promise<{ masking: Masking; keys: KeyRecord[] }> {
  const masking = new Masking(Buffer.from(content.masking, 'base64'));
  const keys: KeyRecord[] = [];
  for await (const piece of inTurns(content.keys)) {
    for (const k of piece) {
      const key = keyFromContent(k);
      masking.digest(key);
      keys.push(key);
    }
  }
  return { masking, keys };
}

/** Takes from a backup of the member's own cluster whatever is newer than what the member holds. */
function mergeBackup(m: MemberState, content: BackupContent): void {
  for (const [username, gen] of content.deletedUsers ?? []) takeNewer(() => mergeUserTombstone(m, username, gen, 'backup'));
  for (const u of content.users) takeNewer(() => mergeUser(m, u, 'backup'));
  for (const [handle, gen] of content.deletedKeys ?? []) takeNewer(() => mergeKeyTombstone(m, handle, gen));
  for (const k of content.keys) takeNewer(() => mergeKey(m, k, 'backup'));
  if (content.quorum) takeNewer(() => mergeSettings(m, { ...content.quorum!, gen: content.quorumGen ?? 0 }, 'backup'));
  m.clock = Math.max(m.clock, content.clock ?? 0);
}
