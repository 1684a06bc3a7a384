/**
 * What CloudHSM CLI's command families share (cli/cloudhsm/*.ts): reading files, attributes and
 * filters, describing keys, the mechanisms' options, and the kit every command runs with — its
 * output in CloudHSM's shape, `{"error_code":0,"data":…}` or `{"error_code":1,"data":"<what was
 * wrong>"}` with a non-zero exit status in single-command mode.
 *
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Command, Option } from 'commander';
import { HASHES, HsmError, type AttributeFilter, type HashName, type KeyInfo, type SignMechanism, type WrapMechanism } from '../../hsm-core/client.js';
import type { ClusterSession as HsmSession } from '../../cluster-client/index.js';
import type { CliContext } from '../cli-context.js';

export type Data = unknown;
export type Approval = { approvalData: Uint8Array; signatures: { username: string; signature: Uint8Array }[] };

export const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
export const unb64 = (text: string, what: string): Uint8Array => {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text.trim())) throw new HsmError('BAD_REQUEST', `${what}: not base64`);
  return new Uint8Array(Buffer.from(text.trim(), 'base64'));
};
/** Hex as CloudHSM CLI takes it (`0x10`, or without 0x), whole bytes. */
export const unhex = (text: string, what: string): Uint8Array => {
  const digits = typeof text === 'string' ? text.trim().replace(/^0x/i, '') : '';
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) throw new HsmError('BAD_REQUEST', `${what}: hex such as 0x10 (whole bytes), got ${JSON.stringify(text)}`);
  return new Uint8Array(Buffer.from(digits, 'hex'));
};
export const bad = (message: string): never => {
  throw new HsmError('BAD_REQUEST', message);
};

/** A file the person named, or a refusal that names the option and the file. */
export function readBytes(path: string, flag: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    return bad(`${flag}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export const readText = (path: string, flag: string): string => new TextDecoder().decode(readBytes(path, flag));

export function readJson(path: string, flag: string): Record<string, unknown> {
  const text = readText(path, flag);
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    return bad(`${flag}: ${path} is not a token file (JSON)`);
  }
}

/** Reads a quorum token file with its approvers' signatures (`--approval`). */
export function readApproval(path: string, flag = '--approval'): Approval {
  const file = readJson(path, flag);
  if (file.version !== '2.0' || typeof file.approval_data !== 'string' || !Array.isArray(file.signatures)) {
    bad(`${flag}: ${path} is not a quorum token file (version 2.0 with approval_data, token and signatures)`);
  }
  const approvalData = unb64(file.approval_data as string, `${flag} approval_data`);
  if (typeof file.token === 'string' && file.token !== b64(createHash('sha256').update(approvalData).digest())) {
    bad(`${flag}: token is not the SHA-256 of approval_data; the file was changed`);
  }
  const signatures = (file.signatures as unknown[]).map((s, i) => {
    const entry = s as { username?: unknown; signature?: unknown };
    if (typeof entry?.username !== 'string' || typeof entry.signature !== 'string') bad(`${flag}: signatures[${i}] needs username and signature`);
    return { username: entry.username as string, signature: unb64(entry.signature as string, `${flag} signatures[${i}].signature`) };
  });
  return { approvalData, signatures };
}

/** `k=v` words: booleans, integers, strings. */
export function parseAttributes(words: string[] | undefined, flag: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const w of words ?? []) {
    const at = w.indexOf('=');
    if (at < 1) bad(`${flag}: name=value, got ${JSON.stringify(w)}`);
    out[w.slice(0, at)] = parseValue(w.slice(at + 1));
  }
  return out;
}

export function parseValue(v: string): unknown {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^\d+$/.test(v) && v.length < 16) return Number(v);
  return v;
}

/**
 * A key reference as the CLI prints it (`0x` and 16 hex digits, `0x0000000000040da2`), or shorter
 * hex, or decimal (`265634`), as CloudHSM CLI takes them.
 */
export function keyReference(value: string, flag: string): number {
  const digits = /^0x([0-9a-fA-F]{1,16})$/.exec(value)?.[1];
  const n = digits !== undefined ? BigInt(`0x${digits}`) : /^\d{1,20}$/.test(value) ? BigInt(value) : null;
  if (n === null) bad(`${flag}: key-reference is 0x and up to 16 hex digits as key list prints it (0x0000000000000021), or a decimal number; got ${JSON.stringify(value)}`);
  if (n! > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${flag}: key-reference ${value} is larger than any key reference`);
  return Number(n);
}

// ---- attributes as CloudHSM CLI prints them --------------------------------------------------

/** The order CloudHSM CLI prints a key's attributes in; Strongroom's others follow. */
const ATTRIBUTE_ORDER = [
  'key-type', 'label', 'id', 'check-value', 'class', 'encrypt', 'decrypt', 'token', 'always-sensitive', 'derive',
  'destroyable', 'extractable', 'local', 'modifiable', 'never-extractable', 'private', 'sensitive', 'sign', 'trusted',
  'unwrap', 'verify', 'wrap', 'wrap-with-trusted', 'key-length-bytes', 'public-exponent', 'modulus', 'modulus-size-bits',
  'ec-point', 'curve',
];

/** A DER OCTET STRING's content (the member keeps ec-point DER-wrapped, as PKCS #11's CKA_EC_POINT). */
function octetStringContent(hex: string): string {
  const der = Buffer.from(hex.replace(/^0x/, ''), 'hex');
  const long = der[1]! & 0x80 ? der[1]! & 0x7f : 0;
  return `0x${der.subarray(2 + long).toString('hex')}`;
}

function octetString(hexPoint: string): string {
  const point = Buffer.from(hexPoint.replace(/^0x/, ''), 'hex');
  const len = point.length;
  const header = len < 0x80 ? [0x04, len] : len < 0x100 ? [0x04, 0x81, len] : [0x04, 0x82, len >> 8, len & 0xff];
  return `0x${Buffer.concat([Buffer.from(header), point]).toString('hex')}`;
}

/** An integer as CloudHSM CLI prints it: 0x and whole bytes (65537 → 0x010001). */
function hexInteger(n: number): string {
  const hex = n.toString(16);
  return `0x${hex.length % 2 ? `0${hex}` : hex}`;
}

/** A key's attributes in CloudHSM CLI's order and forms: id `0x` when empty, public-exponent and ec-point as hex. */
export function cliAttributes(attributes: Record<string, unknown>): Record<string, unknown> {
  const shown = (name: string, value: unknown): unknown => {
    if (name === 'id' && value === '') return '0x';
    if (name === 'public-exponent' && typeof value === 'number') return hexInteger(value);
    if (name === 'ec-point' && typeof value === 'string') return octetStringContent(value);
    return value;
  };
  const out: Record<string, unknown> = {};
  for (const name of ATTRIBUTE_ORDER) if (name in attributes) out[name] = shown(name, attributes[name]);
  for (const [name, value] of Object.entries(attributes)) if (!(name in out)) out[name] = value;
  return out;
}

/** A filter value in CloudHSM CLI's form, as the member keeps it. */
function memberValue(name: string, text: string, flag: string): unknown {
  if (name === 'id' && text === '0x') return '';
  if (name === 'public-exponent' && /^0x[0-9a-fA-F]{1,13}$/.test(text)) return Number.parseInt(text.slice(2), 16);
  if (name === 'ec-point') {
    if (!/^0x04([0-9a-fA-F]{2})+$/.test(text)) bad(`${flag}: attr.ec-point is the point as key list prints it (0x04…), got ${JSON.stringify(text)}`);
    return octetString(text);
  }
  return parseValue(text);
}

/** A CloudHSM filter: `key-reference=0x…` and `attr.<name>=<value>` terms. */
export function parseFilter(words: string[] | undefined, flag = '--filter'): { handle?: number; attributes?: AttributeFilter } {
  const attributes: Record<string, unknown> = {};
  let handle: number | undefined;
  for (const w of words ?? []) {
    const at = w.indexOf('=');
    if (at < 1) bad(`${flag}: key-reference=0x… or attr.NAME=VALUE, got ${JSON.stringify(w)}`);
    const name = w.slice(0, at);
    const value = w.slice(at + 1);
    if (name === 'key-reference') {
      handle = keyReference(value, flag);
    } else if (name.startsWith('attr.') && name.length > 5) {
      attributes[name.slice(5)] = memberValue(name.slice(5), value, flag);
    } else {
      bad(`${flag}: unknown filter term ${JSON.stringify(name)}; use key-reference=0x… or attr.NAME=VALUE`);
    }
  }
  return { ...(handle !== undefined ? { handle } : {}), ...(Object.keys(attributes).length ? { attributes: attributes as AttributeFilter } : {}) };
}

/** The one key a filter names. */
export async function oneKey(session: HsmSession, words: string[] | undefined, flag: string): Promise<KeyInfo> {
  if (!words?.length) bad(`${flag}: required, e.g. ${flag} attr.label=my-key or key-reference=0x…`);
  const filter = parseFilter(words, flag);
  const { keys, nextToken } = await session.send({ op: 'findKeys', filter, maxItems: 2 });
  if (keys.length === 1) return keys[0]!;
  // CloudHSM CLI's words, which scripts match: "Key selection criteria matched N keys. Refine …".
  const matched = keys.length < 2 ? 0 : nextToken === null ? 2 : (await allMatches(session, filter)).length;
  throw new HsmError(matched === 0 ? 'KEY_NOT_FOUND' : 'BAD_REQUEST', `Key selection criteria matched ${matched} keys. Refine selection criteria to select a single key. (${flag} ${words!.join(' ')})`);
}

/** Every key a filter matches, page after page. */
export async function allMatches(session: HsmSession, filter: ReturnType<typeof parseFilter>): Promise<KeyInfo[]> {
  const first = await session.listKeys({ filter, maxItems: 10_000 });
  const matches = [...first.keys];
  for (let next = first.nextToken; next !== null; ) {
    const rest = await session.listKeys({ filter, maxItems: 10_000, startingToken: next });
    matches.push(...rest.keys);
    next = rest.nextToken;
  }
  return matches;
}

export const ROLE_NAMES: Record<string, string> = { appliance: 'internal(APPLIANCE_USER)' };

/** A key as `key list --verbose` shows it. */
export function describeKey(k: KeyInfo & { clusterCoverage?: string }, verbose: boolean): Data {
  const { 'manage-key-quorum-value': manage, 'use-key-quorum-value': use, ...rest } = k.attributes;
  if (!verbose) return { 'key-reference': k.keyReference, attributes: { label: k.attributes.label } };
  const attributes = cliAttributes(rest);
  const coverage = k.clusterCoverage ?? 'full';
  return {
    'key-reference': k.keyReference,
    'key-info': {
      'key-owners': [{ username: k.owner, 'key-coverage': coverage }],
      'shared-users': k.sharedUsers.map((u) => ({ username: u, 'key-coverage': coverage })),
      'key-quorum-values': { 'manage-key-quorum-value': manage ?? 0, 'use-key-quorum-value': use ?? 0 },
      'cluster-coverage': coverage,
    },
    attributes,
  };
}

export async function keyData(session: HsmSession, handle: number): Promise<Data> {
  const { keys } = await session.listKeys({ filter: { handle } });
  return describeKey(keys[0] ?? (await session.send({ op: 'getAttributes', handle })), true);
}

/** A success answer as CloudHSM CLI gives it: `"data": {"message": "…"}`. */
export const message = (text: string, more: Record<string, unknown> = {}) => ({ ...more, message: text });

export function write(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
}

// ---- the command tree -------------------------------------------------------------------------

export interface CommandSet {
  /** Runs after every command (single-command mode: log out and disconnect). */
  done?: () => Promise<void>;
}

/** What a command's options look like to its body. */
export type Flags = Record<string, unknown> & { clusterId?: string };

/** What every family of commands shares: the context, and how a command prints, runs and asks. */
export function commandKit(ctx: CliContext) {
  const print = (value: Data, code = 0) => ctx.io.out(JSON.stringify({ error_code: code, data: value }, null, 2));
  const leaf = (cmd: Command) => cmd.option('--cluster-id <id>', 'which configured cluster (see configure)');

  /** Runs a command body and prints its result or its refusal in CloudHSM's shape. */
  const run = (body: (opts: Flags, session: () => Promise<HsmSession>, ...args: string[]) => Promise<Data>) =>
    async (...args: unknown[]) => {
      const command = args.at(-1) as Command;
      const opts = command.opts() as Flags;
      const positional = args.slice(0, -2) as string[];
      try {
        const data = await body(opts, () => ctx.requireSession(opts.clusterId), ...positional);
        print(data);
      } catch (e) {
        print(e instanceof Error ? e.message : String(e), 1);
        process.exitCode = 1;
      } finally {
        if (ctx.mode === 'single') await ctx.close();
      }
    };

  const password = async (given: unknown, confirm: boolean): Promise<string> => {
    if (typeof given === 'string') return given;
    const first = await ctx.io.ask('Enter password:', true);
    if (confirm) {
      const second = await ctx.io.ask('Confirm password:', true);
      if (first !== second) bad('the passwords do not match');
    }
    return first;
  };
  const approvalOf = (path: unknown) => (typeof path === 'string' ? { approval: readApproval(path) } : {});
  const roleOption = () => new Option('--role <role>', 'the user\'s role').choices(['admin', 'crypto-user']).makeOptionMandatory();
  return { ctx, print, leaf, run, password, approvalOf, roleOption };
}

export type Kit = ReturnType<typeof commandKit>;

/** CloudHSM CLI's `key wrap` / `key unwrap` mechanisms: each one of the member's wrap mechanisms. */
export const WRAP_MECHANISMS = ['aes-gcm', 'aes-no-pad', 'aes-pkcs5-pad', 'aes-zero-pad', 'cloudhsm-aes-gcm', 'rsa-aes', 'rsa-oaep', 'rsa-pkcs'] as const satisfies readonly WrapMechanism['name'][];

/** MGF1 with each of the member's hashes, as CloudHSM CLI names them. */
export const MGF1_CHOICES = HASHES.map((h) => `mgf1-${h}`);
export type WrapName = (typeof WRAP_MECHANISMS)[number];

export function mechanismOptions(mech: WrapName, cmd: Command, side: 'wrap' | 'unwrap'): void {
  if (mech === 'aes-gcm' || mech === 'cloudhsm-aes-gcm') {
    // 96 bits and more: the member refuses shorter tags (forged too easily), which AWS allows.
    cmd.addOption(new Option('--tag-length-bits <n>', 'the GCM tag').choices(['96', '104', '112', '120', '128']).makeOptionMandatory());
    cmd.option('--aad <hex>', 'additional authenticated data, in hex (0x10)');
  }
  if (mech === 'aes-gcm' && side === 'unwrap') cmd.requiredOption('--iv <hex>', 'the IV key wrap aes-gcm printed (0x and 24 hex digits)');
  if (mech === 'rsa-oaep' || mech === 'rsa-aes') {
    cmd.addOption(new Option('--hash-function <hash>', 'OAEP hash').choices(HASHES).makeOptionMandatory());
    cmd.addOption(new Option('--mgf <mgf>', 'MGF1 with the same hash').choices(MGF1_CHOICES).makeOptionMandatory());
  }
  if (mech === 'rsa-aes') cmd.addOption(new Option('--aes-key-size-bits <n>', 'the ephemeral AES key').choices(['128', '192', '256']).default('256'));
}

export function checkMgf(o: Record<string, unknown>): HashName {
  const hash = o.hashFunction as HashName;
  if (o.mgf !== `mgf1-${hash}`) bad(`--mgf: Strongroom uses MGF1 with the same hash as --hash-function (mgf1-${hash}), got ${String(o.mgf)}`);
  return hash;
}

export function wrapMechanism(mech: WrapName, o: Record<string, unknown>): WrapMechanism {
  const aad = typeof o.aad === 'string' ? { aad: unhex(o.aad, '--aad') } : {};
  switch (mech) {
    case 'aes-gcm':
      return { name: 'aes-gcm', tagLengthBits: Number(o.tagLengthBits), ...aad };
    case 'cloudhsm-aes-gcm':
      return { name: 'cloudhsm-aes-gcm', tagLengthBits: Number(o.tagLengthBits), ...aad };
    case 'rsa-oaep':
      return { name: 'rsa-oaep', hash: checkMgf(o) };
    case 'rsa-aes':
      return { name: 'rsa-aes', hash: checkMgf(o), aesKeyBits: Number(o.aesKeySizeBits) as 128 | 192 | 256 };
    default:
      return { name: mech };
  }
}

export function signMechanism(mech: 'ecdsa' | 'ed25519' | 'ed25519ph' | 'rsa-pkcs' | 'rsa-pkcs-pss', o: Record<string, unknown>): SignMechanism {
  const hash = o.hashFunction as HashName;
  // --data-type digest: the data is the digest the caller computed (exactly the hash's length).
  const prehashed = o.dataType === 'digest' ? { prehashed: true } : {};
  switch (mech) {
    case 'ecdsa':
      // r‖s (64 bytes on P-256), as AWS documents cloudhsm-cli's ECDSA signatures.
      return { name: 'ecdsa', hash, signatureFormat: 'p1363', ...prehashed };
    case 'ed25519':
      return { name: 'ed25519' };
    case 'ed25519ph':
      return { name: 'ed25519ph', ...prehashed };
    case 'rsa-pkcs':
      return { name: 'rsa-pkcs', hash, ...prehashed };
    case 'rsa-pkcs-pss': {
      checkMgf(o);
      const salt = Number(o.saltLength);
      if (!Number.isInteger(salt) || salt < 0 || salt > 1024) bad(`--salt-length: 0 to 1024, got ${JSON.stringify(o.saltLength)}`);
      return { name: 'rsa-pkcs-pss', hash, saltLength: salt, ...prehashed };
    }
  }
}

export function dataOf(o: Record<string, unknown>): Uint8Array {
  if ((typeof o.dataPath === 'string') === (typeof o.data === 'string')) bad('give exactly one of --data-path and --data');
  return typeof o.dataPath === 'string' ? readBytes(o.dataPath, '--data-path') : unb64(o.data as string, '--data');
}

/** Where commander keeps an option's value: `--use-key-quorum-value` → `useKeyQuorumValue`. */
export const optionKey = (flag: string): string => flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** A registration token file: CloudHSM's `tokens` list with approval_data, unsigned and signed. */
export function registrationFile(approvalData: Uint8Array): string {
  return JSON.stringify({
    version: '2.0',
    tokens: [{ approval_data: b64(approvalData), unsigned: b64(createHash('sha256').update(approvalData).digest()), signed: '' }],
  }, null, 2) + '\n';
}

export function readRegistration(path: string, approvalData: Uint8Array): { approvalData: Uint8Array; signature: Uint8Array } {
  const file = readJson(path, 'signed token file');
  const tokens = Array.isArray(file.tokens) ? (file.tokens as { approval_data?: string; signed?: string }[]) : [];
  const entry = tokens.find((t) => t.approval_data === b64(approvalData)) ?? tokens[0];
  if (!entry || typeof entry.signed !== 'string' || entry.signed === '') bad(`signed token file: ${path} has no signed token; sign the unsigned token and paste the base64 signature into "signed"`);
  if (entry!.approval_data !== b64(approvalData)) bad(`signed token file: ${path} holds another registration token`);
  return { approvalData, signature: unb64(entry!.signed!, 'signed') };
}
