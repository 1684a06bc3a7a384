/**
 * CloudHSM CLI's commands (CLOUDHSM.md §10), the same in single-command and interactive mode:
 * `cluster activate | hsm-info`, `login [mfa-token-sign]`, `logout`, `user …`, `quorum token-sign …`,
 * `key …`, `crypto sign | verify`, `audit show | verify`, and `configure`.
 *
 * Every command prints CloudHSM's shape on stdout, `{"error_code":0,"data":…}`, or
 * `{"error_code":1,"data":"<what was wrong>"}` with a non-zero exit status in single-command mode.
 * Defaults are CloudHSM CLI's: keys are token keys unless `--session`; AES and generic secrets
 * get sign and verify only; key pairs get no usages unless `--attributes` say so.
 *
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Command, Option } from 'commander';
import {
  HsmError,
  verifyAuditChain,
  withArticle,
  type AttributeFilter,
  type KeyInfo,
  type QuorumService,
  type Results,
  type WrapMechanism,
  type SignMechanism,
  type HashName,
} from '../hsm-core/index.js';
import type { HsmSession } from '../app/index.js';
import { CliContext, configPath, configure } from './cli-context.js';

type Data = unknown;
type Approval = { approvalData: Uint8Array; signatures: { username: string; signature: Uint8Array }[] };

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const unb64 = (text: string, what: string): Uint8Array => {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text.trim())) throw new HsmError('BAD_REQUEST', `${what}: not base64`);
  return new Uint8Array(Buffer.from(text.trim(), 'base64'));
};
const bad = (message: string): never => {
  throw new HsmError('BAD_REQUEST', message);
};

/** A file the person named, or a refusal that names the option and the file. */
function readBytes(path: string, flag: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    return bad(`${flag}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

const readText = (path: string, flag: string): string => new TextDecoder().decode(readBytes(path, flag));

function readJson(path: string, flag: string): Record<string, unknown> {
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

function parseValue(v: string): unknown {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^\d+$/.test(v) && v.length < 16) return Number(v);
  return v;
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
      if (!/^0x[0-9a-fA-F]{1,14}$/.test(value)) bad(`${flag}: key-reference is hex such as 0x0000000000000021, got ${JSON.stringify(value)}`);
      handle = parseInt(value.slice(2), 16);
    } else if (name.startsWith('attr.') && name.length > 5) {
      attributes[name.slice(5)] = parseValue(value);
    } else {
      bad(`${flag}: unknown filter term ${JSON.stringify(name)}; use key-reference=0x… or attr.NAME=VALUE`);
    }
  }
  return { ...(handle !== undefined ? { handle } : {}), ...(Object.keys(attributes).length ? { attributes: attributes as AttributeFilter } : {}) };
}

/** The one key a filter names. */
async function oneKey(session: HsmSession, words: string[] | undefined, flag: string): Promise<KeyInfo> {
  if (!words?.length) bad(`${flag}: required, e.g. ${flag} attr.label=my-key or key-reference=0x…`);
  const filter = parseFilter(words, flag);
  const { keys } = await session.send({ op: 'findKeys', filter, maxItems: 2 });
  if (keys.length === 0) throw new HsmError('KEY_NOT_FOUND', `${flag}: no key matches ${words!.join(' ')}`);
  if (keys.length > 1) bad(`${flag}: more than one key matches ${words!.join(' ')}; narrow the filter (e.g. key-reference=0x…)`);
  return keys[0]!;
}

const ROLE_NAMES: Record<string, string> = { appliance: 'internal(APPLIANCE_USER)' };

/** A key as `key list --verbose` shows it. */
function describeKey(k: KeyInfo & { clusterCoverage?: string }, verbose: boolean): Data {
  const { 'manage-key-quorum-value': manage, 'use-key-quorum-value': use, ...attributes } = k.attributes;
  if (!verbose) return { 'key-reference': k.keyReference, attributes: { label: k.attributes.label } };
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

async function keyData(session: HsmSession, handle: number): Promise<Data> {
  const { keys } = await session.listKeys({ filter: { handle } });
  return describeKey(keys[0] ?? (await session.send({ op: 'getAttributes', handle })), true);
}

function write(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
}

// ---- the command tree -------------------------------------------------------------------------

export interface CommandSet {
  /** Runs after every command (single-command mode: log out and disconnect). */
  done?: () => Promise<void>;
}

/**
 * Adds the CloudHSM CLI commands to `root` (reusing its `cluster` command if there is one).
 * `ctx` holds the connection and session; `print` writes each result.
 */
export function addCloudHsmCommands(root: Command, ctx: CliContext): void {
  const print = (value: Data, code = 0) => ctx.io.out(JSON.stringify({ error_code: code, data: value }, null, 2));
  const leaf = (cmd: Command) => cmd.option('--cluster-id <id>', 'which configured cluster (see configure)');
  type Flags = Record<string, unknown> & { clusterId?: string };

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

  // configure ------------------------------------------------------------------------------------
  root
    .command('configure')
    .description("write the connection file (CloudHSM's configure tool): where a member is and the certificates for mutual TLS")
    .requiredOption('--cluster <host:port>', 'a member of the cluster (the others are discovered)')
    .requiredOption('--ca <file>', "the trust anchor's certificate (customerCA.crt)")
    .option('--cert <file>', 'the client certificate (default: client.crt beside --ca)')
    .option('--key <file>', "the client certificate's key (default: client.key beside --ca)")
    .option('--cluster-id <id>', 'a name for this cluster, for --cluster-id on later commands', 'default')
    .action(run(async (o) => {
      const path = configPath(ctx.env);
      const entry = configure(path, {
        id: o.clusterId as string,
        cluster: o.cluster as string,
        ca: o.ca as string,
        ...(typeof o.cert === 'string' ? { cert: o.cert } : {}),
        ...(typeof o.key === 'string' ? { key: o.key } : {}),
      });
      return { 'config-file': path, 'cluster-id': entry.id, members: entry.members };
    }));

  // cluster ----------------------------------------------------------------------------------------
  const cluster = root.commands.find((c) => c.name() === 'cluster') ?? root.command('cluster').description('the cluster');
  leaf(cluster.command('activate').description("activate a new cluster: set the first admin's password"))
    .option('--password <password>', "the admin's new password (prompted for when absent)")
    .action(run(async (o) => {
      const pw = await password(o.password, true);
      await (await ctx.connection(o.clusterId)).activate(pw);
      return 'Cluster activation successful';
    }));
  leaf(cluster.command('hsm-info').description('the HSMs of the cluster')).action(run(async (o) => {
    const infos = await (await ctx.connection(o.clusterId)).hsmInfo();
    return {
      hsms: infos.map((i) => ({
        vendor: 'Strongroom (emulated)',
        model: i.model,
        'serial-number': i.serialNumber,
        'firmware-version': i.firmware,
        'cluster-id': i.clusterId,
        state: i.state,
        mode: i.mode,
        'member-index': i.memberIndex,
      })),
    };
  }));

  // login / logout ---------------------------------------------------------------------------------
  leaf(root.command('login').description('log in to every HSM of the cluster'))
    .requiredOption('--username <name>', 'the user')
    .addOption(roleOption())
    .option('--password <password>', 'prompted for when absent')
    .argument('[strategy]', 'mfa-token-sign, for a user with MFA')
    .option('--token <file>', 'with mfa-token-sign: where the unsigned tokens are written')
    .action(run(async (o, _s, strategy) => {
      if (strategy !== undefined && strategy !== 'mfa-token-sign') bad(`unknown login strategy ${JSON.stringify(strategy)}; the only one is mfa-token-sign`);
      if (strategy && typeof o.token !== 'string') bad('mfa-token-sign: --token <file> is required');
      if (!strategy && o.token !== undefined) bad('--token goes with mfa-token-sign');
      if (ctx.session) bad(`already logged in as ${ctx.session.username}; log out first`);
      const pw = await password(o.password, false);
      const conn = await ctx.connection(o.clusterId);
      const tokenFile = o.token as string | undefined;
      const session = await conn.login(o.username as string, pw, {
        role: o.role as 'admin' | 'crypto-user',
        ...(tokenFile
          ? {
              mfa: async (tokens: Uint8Array[]) => {
                write(tokenFile, JSON.stringify({ version: '2.0', tokens: tokens.map((t) => ({ unsigned: b64(t), signed: '' })) }, null, 2) + '\n');
                const answer = (await ctx.io.ask('Enter signed token file path (press enter if same as the unsigned token file):')).trim() || tokenFile;
                const file = readJson(answer, 'signed token file');
                const entries = Array.isArray(file.tokens) ? (file.tokens as { unsigned?: string; signed?: string }[]) : [];
                return tokens.map((t) => {
                  const entry = entries.find((e) => e.unsigned === b64(t));
                  if (!entry?.signed) bad(`signed token file: no signature for token ${b64(t)}; sign every unsigned token`);
                  return unb64(entry!.signed!, 'signed');
                });
              },
            }
          : {}),
      });
      ctx.session = session;
      return { username: session.username, role: session.role };
    }));
  leaf(root.command('logout').description('log out of every HSM')).action(run(async () => {
    if (!ctx.session) bad('not logged in');
    await ctx.session!.logout();
    ctx.session = null;
    return 'Logout successful';
  }));

  // user -------------------------------------------------------------------------------------------
  const user = root.command('user').description('HSM users');
  leaf(user.command('list').description('the users of the cluster')).action(run(async (o) => {
    const users = await (await ctx.connection(o.clusterId)).listUsers();
    const strategy = (on: boolean) => (on ? [{ strategy: 'token-sign', status: 'enabled' }] : []);
    return {
      users: users.map((u) => ({
        username: u.username,
        role: ROLE_NAMES[u.role] ?? u.role,
        locked: String(u.locked),
        mfa: strategy(u.mfa),
        quorum: strategy(u.quorum),
        'cluster-coverage': u.clusterCoverage,
      })),
    };
  }));
  leaf(user.command('create').description('create a user (admin)'))
    .requiredOption('--username <name>', 'up to 31 letters, digits and _')
    .addOption(roleOption())
    .option('--password <password>', 'prompted for when absent')
    .option('--approval <file>', 'a quorum token signed by approvers (user service)')
    .action(run(async (o, session) => {
      const s = await session();
      const pw = await password(o.password, true);
      const r = await s.send({ op: 'createUser', username: o.username as string, password: pw, role: o.role as 'admin' | 'crypto-user', ...approvalOf(o.approval) });
      return { username: r.username, role: r.role };
    }));
  leaf(user.command('delete').description('delete a user (admin)'))
    .requiredOption('--username <name>', 'the user')
    .addOption(roleOption())
    .option('--approval <file>', 'a quorum token signed by approvers (user service)')
    .action(run(async (o, session) => {
      const s = await session();
      const users = await (await ctx.connection(o.clusterId)).listUsers();
      const target = users.find((u) => u.username === String(o.username).toLowerCase());
      if (target && target.role !== o.role) bad(`${target.username} is ${withArticle(target.role)}, not ${withArticle(String(o.role))}`);
      const r = await s.send({ op: 'deleteUser', username: o.username as string, ...approvalOf(o.approval) });
      return { username: r.username, role: o.role };
    }));
  leaf(user.command('change-password').description("change a user's password (admin: anyone's; crypto user: own)"))
    .requiredOption('--username <name>', 'the user')
    .addOption(roleOption())
    .option('--password <password>', 'prompted for when absent')
    .option('--approval <file>', 'a quorum token signed by approvers (user service)')
    .option('--deregister-mfa', "also remove the user's MFA key (and so its quorum registration)")
    .option('--deregister-quorum', "also remove the user's quorum registration")
    .action(run(async (o, session) => {
      const s = await session();
      const pw = await password(o.password, true);
      const r = await s.send({
        op: 'changePassword',
        username: o.username as string,
        password: pw,
        ...approvalOf(o.approval),
        ...(o.deregisterMfa ? { deregisterMfa: true } : {}),
        ...(o.deregisterQuorum ? { deregisterQuorum: true } : {}),
      });
      return { username: r.username, role: r.role };
    }));
  leaf(user.command('change-mfa').description("change a user's MFA").command('token-sign').description('register or deregister a token-sign key'))
    .requiredOption('--username <name>', 'the user')
    .addOption(roleOption())
    .option('--token <file>', 'where the unsigned registration token is written')
    .option('--deregister', 'remove MFA (and the quorum registration that uses the same key)')
    .option('--change-password <password>', "also set the user's password")
    .option('--change-quorum', 'register the key for quorum too')
    .option('--approval <file>', 'a quorum token signed by approvers (user service; for --deregister)')
    .option('--signed-token <file>', 'the signed token file (instead of the prompt)')
    .option('--public-key <file>', 'the PEM public key (instead of the prompt)')
    .action(run(async (o, session) => {
      const s = await session();
      if (Boolean(o.token) === Boolean(o.deregister)) bad('give exactly one of --token <file> and --deregister');
      const base = { op: 'changeMfa' as const, username: o.username as string, role: o.role as 'admin' | 'crypto-user', ...approvalOf(o.approval) };
      let r: Results['changeMfa'];
      if (o.deregister) {
        r = await s.send({ ...base, deregister: true });
      } else {
        const token = o.token as string;
        const { approvalData } = await s.send({ op: 'generateQuorumToken', service: 'registration' });
        write(token, registrationFile(approvalData));
        const signedPath = typeof o.signedToken === 'string' ? o.signedToken : (await ctx.io.ask('Enter signed token file path (press enter if same as the unsigned token file):')).trim() || token;
        const keyPath = typeof o.publicKey === 'string' ? o.publicKey : (await ctx.io.ask('Enter public key PEM file path:')).trim();
        const registration = readRegistration(signedPath, approvalData);
        r = await s.send({ ...base, publicKey: new TextEncoder().encode(readText(keyPath, 'public key')), registration, ...(o.changeQuorum ? { changeQuorum: true } : {}) });
      }
      if (typeof o.changePassword === 'string') await s.send({ op: 'changePassword', username: o.username as string, password: o.changePassword });
      return { username: r.username, role: r.role };
    }));
  leaf(user.command('change-quorum').description("change a user's quorum strategy").command('token-sign').description('token-sign quorum').command('register').description('register your quorum public key'))
    .requiredOption('--public-key <file>', 'the PEM public key (RSA 2048)')
    .requiredOption('--signed-token <file>', 'the registration token, signed with the private key')
    .action(run(async (o, session) => {
      const s = await session();
      const file = readJson(o.signedToken as string, '--signed-token');
      const tokens = Array.isArray(file.tokens) ? (file.tokens as { approval_data?: string }[]) : [];
      if (typeof tokens[0]?.approval_data !== 'string') bad(`--signed-token: ${String(o.signedToken)} is not a registration token file (quorum token-sign generate --service registration)`);
      const approvalData = unb64(tokens[0]!.approval_data!, '--signed-token approval_data');
      const r = await s.send({
        op: 'registerQuorumKey',
        publicKey: new TextEncoder().encode(readText(o.publicKey as string, '--public-key')),
        registration: readRegistration(o.signedToken as string, approvalData),
      });
      return { username: r.username, role: r.role };
    }));

  // quorum -----------------------------------------------------------------------------------------
  const qts = root.command('quorum').description('quorum (M of N) authentication').command('token-sign').description('the token-sign strategy');
  leaf(qts.command('generate').description('generate a quorum token for a service'))
    .addOption(new Option('--service <service>', 'what the token is for').choices(['user', 'quorum', 'registration', 'key-management', 'key-usage']).makeOptionMandatory())
    .requiredOption('--token <file>', 'where to write the token file')
    .option('--filter <terms...>', 'for key-management and key-usage: the key')
    .action(run(async (o, session) => {
      const s = await session();
      const service = o.service as QuorumService;
      const keyService = service === 'key-management' || service === 'key-usage';
      if (keyService !== Array.isArray(o.filter)) bad(keyService ? `--filter: a ${service} token names its key` : '--filter: only key-management and key-usage tokens name a key');
      const handle = keyService ? (await oneKey(s, o.filter as string[], '--filter')).handle : undefined;
      const { approvalData } = await s.send({ op: 'generateQuorumToken', service, ...(handle !== undefined ? { handle } : {}) });
      write(o.token as string, service === 'registration' ? registrationFile(approvalData) : JSON.stringify({
        version: '2.0',
        approval_data: b64(approvalData),
        token: b64(createHash('sha256').update(approvalData).digest()),
        signatures: [],
      }, null, 2) + '\n');
      return { path: o.token };
    }));
  leaf(qts.command('list').description('the live quorum tokens')).action(run(async (o) => {
    const lists = await (await ctx.connection(o.clusterId)).askEveryMember('listQuorumTokens');
    const seen = new Map<string, { t: Results['listQuorumTokens']['tokens'][number]; n: number }>();
    for (const list of lists) {
      for (const t of list.tokens) {
        const key = `${t.username}/${t.service}/${t.handle ?? ''}`;
        const entry = seen.get(key);
        if (entry) entry.n += 1;
        else seen.set(key, { t, n: 1 });
      }
    }
    return {
      tokens: [...seen.values()].map(({ t, n }) => ({
        username: t.username,
        service: t.service,
        ...(t.handle !== null ? { 'key-reference': `0x${t.handle.toString(16).padStart(16, '0')}` } : {}),
        'approvals-required': { value: t.approvalsRequired },
        'number-of-approvals': { value: t.approvals },
        'token-timeout-seconds': { value: t.secondsLeft },
        'cluster-coverage': n === lists.length ? 'full' : 'inconsistent',
      })),
    };
  }));
  leaf(qts.command('list-quorum-values').description('the quorum value of each admin service')).action(run(async (o) => {
    const [settings] = await (await ctx.connection(o.clusterId)).askEveryMember('getQuorumSettings');
    return settings!.values;
  }));
  leaf(qts.command('list-timeouts').description('token timeouts, seconds')).action(run(async (o) => {
    const [settings] = await (await ctx.connection(o.clusterId)).askEveryMember('getQuorumSettings');
    return settings!.timeouts;
  }));
  leaf(qts.command('set-quorum-value').description('set the quorum value of a service (admin)'))
    .addOption(new Option('--service <service>', 'the admin service').choices(['user', 'quorum']).makeOptionMandatory())
    .requiredOption('--value <n>', 'approvals needed, 1 (off) to 8')
    .option('--approval <file>', 'a quorum token signed by approvers (quorum service, when its value is above 1)')
    .action(run(async (o, session) => {
      const value = Number(o.value);
      if (!Number.isInteger(value) || value < 1 || value > 8) bad(`--value: 1 to 8, got ${JSON.stringify(o.value)}`);
      await (await session()).send({ op: 'setQuorumValue', service: o.service as 'user' | 'quorum', value, ...approvalOf(o.approval) });
      return 'Set quorum value successful';
    }));
  leaf(qts.command('set-timeout').description('set token timeouts, seconds (admin)'))
    .option('--generated <s>', 'how long a generated token stays valid')
    .option('--approved <s>', 'how long an approved token stays valid')
    .action(run(async (o, session) => {
      const seconds = (flag: string, v: unknown) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 86_400) bad(`${flag}: 1 to 86400 seconds, got ${JSON.stringify(v)}`);
        return n;
      };
      if (o.generated === undefined && o.approved === undefined) bad('give --generated and/or --approved');
      return (await session()).send({
        op: 'setQuorumTimeouts',
        ...(o.generated !== undefined ? { generated: seconds('--generated', o.generated) } : {}),
        ...(o.approved !== undefined ? { approved: seconds('--approved', o.approved) } : {}),
      });
    }));
  leaf(qts.command('delete').description('delete quorum tokens (your own; an admin: anyone\'s)'))
    .option('--username <name>', "only this user's tokens")
    .addOption(new Option('--service <service>', 'only tokens for this service').choices(['user', 'quorum', 'registration', 'key-management', 'key-usage']))
    .action(run(async (o, session) => {
      const { deleted } = await (await session()).send({
        op: 'deleteQuorumTokens',
        ...(typeof o.username === 'string' ? { username: o.username } : {}),
        ...(typeof o.service === 'string' ? { service: o.service as QuorumService } : {}),
      });
      return `Deleted ${deleted} token segment${deleted === 1 ? '' : 's'}`;
    }));

  // key --------------------------------------------------------------------------------------------
  const key = root.command('key').description('keys (crypto users)');
  const quorumValue = (flag: string, v: unknown) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 8) bad(`${flag}: 0 to 8, got ${JSON.stringify(v)}`);
    return n;
  };
  /** Shares a new key and checks the quorum values against the users it will have. */
  const creationExtras = (o: Flags, manageFlag: string, useFlag: string) => {
    const share = (o.shareCryptoUsers as string[] | undefined) ?? [];
    const manage = quorumValue(manageFlag, o[optionKey(manageFlag)]);
    const use = quorumValue(useFlag, o[optionKey(useFlag)]);
    for (const [flag, v] of [[manageFlag, manage], [useFlag, use]] as const) {
      if (v !== undefined && v > 1 + share.length) bad(`${flag}: ${v} is more than the ${1 + share.length} users the key will have (its owner and --share-crypto-users)`);
    }
    return { share, quorum: { ...(manage !== undefined ? { 'manage-key-quorum-value': manage } : {}), ...(use !== undefined ? { 'use-key-quorum-value': use } : {}) } };
  };
  const shareAll = async (s: HsmSession, handle: number, users: string[]) => {
    for (const u of users) await s.send({ op: 'shareKey', handle, username: u });
  };
  const genSym = key.command('generate-symmetric').description('generate a secret key');
  for (const [name, min, max] of [['aes', 16, 32], ['generic-secret', 1, 800]] as const) {
    leaf(genSym.command(name).description(`generate ${name === 'aes' ? 'an AES' : 'a generic secret'} key (a token key unless --session)`))
      .requiredOption('--label <label>', 'the key label')
      .requiredOption('--key-length-bytes <n>', name === 'aes' ? '16, 24 or 32' : '1 to 800')
      .option('--session', 'a session key (gone at logout) instead of a token key')
      .option('--attributes <k=v...>', 'more attributes, e.g. encrypt=true decrypt=true')
      .option('--share-crypto-users <users...>', 'share the new key with these crypto users')
      .option('--manage-key-quorum-value <n>', 'approvals to manage the key, 0–8')
      .option('--use-key-quorum-value <n>', 'approvals to use the key, 0–8')
      .action(run(async (o, session) => {
        const length = Number(o.keyLengthBytes);
        if (!Number.isInteger(length) || length < min || length > max || (name === 'aes' && ![16, 24, 32].includes(length))) {
          bad(`--key-length-bytes: ${name === 'aes' ? '16, 24 or 32' : '1 to 800'}, got ${JSON.stringify(o.keyLengthBytes)}`);
        }
        const { share, quorum } = creationExtras(o, '--manage-key-quorum-value', '--use-key-quorum-value');
        const s = await session();
        const attributes = { sign: true, verify: true, ...parseAttributes(o.attributes as string[], '--attributes'), label: o.label as string, token: !o.session, ...quorum };
        const { handle } = await s.send({ op: 'generateKey', keyType: name, lengthBytes: length, attributes });
        await shareAll(s, handle, share);
        return { key: await keyData(s, handle) };
      }));
  }
  const genPair = key.command('generate-asymmetric-pair').description('generate a key pair (no usages unless the attributes say so)');
  for (const kind of ['rsa', 'ec'] as const) {
    const cmd = leaf(genPair.command(kind).description(`generate an ${kind.toUpperCase()} key pair (token keys unless --session)`))
      .requiredOption('--public-label <label>', 'the public key label')
      .requiredOption('--private-label <label>', 'the private key label')
      .option('--session', 'session keys instead of token keys')
      .option('--public-attributes <k=v...>', 'attributes of the public key, e.g. verify=true')
      .option('--private-attributes <k=v...>', 'attributes of the private key, e.g. sign=true')
      .option('--share-crypto-users <users...>', 'share the private key with these crypto users')
      .option('--manage-private-key-quorum-value <n>', 'approvals to manage the private key, 0–8')
      .option('--use-private-key-quorum-value <n>', 'approvals to use the private key, 0–8');
    if (kind === 'rsa') cmd.requiredOption('--modulus-size-bits <n>', '2048 to 4096').option('--public-exponent <n>', 'odd, at least 65537', '65537');
    else cmd.addOption(new Option('--curve <curve>', 'the curve (ed25519: an EdDSA pair)').choices(['prime256v1', 'secp256r1', 'secp384r1', 'secp521r1', 'secp256k1', 'secp224r1', 'ed25519']).makeOptionMandatory());
    cmd.action(run(async (o, session) => {
      const token = !o.session;
      const { share, quorum } = creationExtras(o, '--manage-private-key-quorum-value', '--use-private-key-quorum-value');
      const publicAttributes = { ...parseAttributes(o.publicAttributes as string[], '--public-attributes'), label: o.publicLabel as string, token };
      const privateAttributes = { ...parseAttributes(o.privateAttributes as string[], '--private-attributes'), label: o.privateLabel as string, token, ...quorum };
      let shape: { keyType: 'rsa' | 'ec' | 'ed25519'; modulusBits?: number; publicExponent?: number; curve?: string };
      if (kind === 'rsa') {
        const bits = Number(o.modulusSizeBits);
        const e = Number(o.publicExponent);
        if (!Number.isInteger(bits) || bits < 2048 || bits > 16384) bad(`--modulus-size-bits: at least 2048, got ${JSON.stringify(o.modulusSizeBits)}`);
        if (!Number.isSafeInteger(e) || e < 65537 || e % 2 === 0) bad(`--public-exponent: an odd number of at least 65537, got ${JSON.stringify(o.publicExponent)}`);
        shape = { keyType: 'rsa', modulusBits: bits, publicExponent: e };
      } else {
        shape = o.curve === 'ed25519' ? { keyType: 'ed25519' } : { keyType: 'ec', curve: o.curve as string };
      }
      const s = await session();
      const r = await s.send({ op: 'generateKeyPair', ...shape, publicAttributes, privateAttributes } as never) as Results['generateKeyPair'];
      await shareAll(s, r.privateHandle, share);
      return { public_key: await keyData(s, r.publicHandle), private_key: await keyData(s, r.privateHandle) };
    }));
  }
  leaf(key.command('import').description('import a key').command('pem').description('import a public key from a PEM file'))
    .requiredOption('--path <file>', 'the PEM file')
    .requiredOption('--label <label>', 'the key label')
    .addOption(new Option('--key-type-class <type>', 'what the PEM holds').choices(['rsa-public', 'ec-public']).makeOptionMandatory())
    .option('--attributes <k=v...>', 'attributes, e.g. verify=true')
    .action(run(async (o, session) => {
      const text = readText(o.path as string, '--path');
      const m = /-----BEGIN PUBLIC KEY-----([\s\S]+?)-----END PUBLIC KEY-----/.exec(text);
      if (!m) bad(`--path: ${String(o.path)} holds no PEM public key (-----BEGIN PUBLIC KEY-----); CloudHSM imports public keys only`);
      const s = await session();
      const r = await s.send({
        op: 'importKey',
        keyClass: 'public-key',
        keyType: o.keyTypeClass === 'rsa-public' ? 'rsa' : 'ec',
        format: 'spki',
        keyData: unb64(m![1]!.replace(/\s+/g, ''), '--path'),
        attributes: { ...parseAttributes(o.attributes as string[], '--attributes'), label: o.label as string, token: true },
      });
      return { key: await keyData(s, r.handle) };
    }));
  leaf(key.command('list').description('keys you own or share, and all public keys'))
    .option('--filter <terms...>', 'key-reference=0x… or attr.NAME=VALUE')
    .option('--max-items <n>', 'keys per page', '10')
    .option('--starting-token <token>', 'the next-token of the previous page')
    .option('-v, --verbose', 'attributes, owners, shared users and cluster coverage')
    .action(run(async (o, session) => {
      const max = Number(o.maxItems);
      if (!Number.isInteger(max) || max < 1 || max > 10_000) bad(`--max-items: 1 to 10000, got ${JSON.stringify(o.maxItems)}`);
      const s = await session();
      const filter = parseFilter(o.filter as string[]);
      const page = await s.listKeys({ filter, maxItems: max, ...(typeof o.startingToken === 'string' ? { startingToken: o.startingToken } : {}) });
      // CloudHSM's total counts every match from this page on, not only the page.
      let total = page.keys.length;
      for (let token = page.nextToken; token !== null; ) {
        const rest = await s.send({ op: 'findKeys', filter, maxItems: 10_000, startingToken: token });
        total += rest.keys.length;
        token = rest.nextToken;
      }
      return {
        matched_keys: page.keys.map((k) => describeKey(k, o.verbose === true)),
        ...(page.nextToken !== null ? { next_token: page.nextToken } : {}),
        total_key_count: total,
        returned_key_count: page.keys.length,
      };
    }));
  leaf(key.command('set-attribute').description("set one attribute of a key (owner; admin: trusted)"))
    .requiredOption('--filter <terms...>', 'the key')
    .requiredOption('--name <attribute>', 'e.g. label, encrypt, trusted')
    .requiredOption('--value <value>', 'true, false, a number or text')
    .option('--approval <file>', 'a key-management quorum token signed by approvers')
    .action(run(async (o, session) => {
      const s = await session();
      const k = await oneKey(s, o.filter as string[], '--filter');
      await s.send({ op: 'setAttributes', handle: k.handle, attributes: { [o.name as string]: parseValue(o.value as string) }, ...approvalOf(o.approval) });
      return 'Attribute set successfully';
    }));
  for (const verb of ['share', 'unshare'] as const) {
    leaf(key.command(verb).description(`${verb} a key with a crypto user (owner)`))
      .requiredOption('--filter <terms...>', 'the key')
      .requiredOption('--username <name>', 'the crypto user')
      .addOption(new Option('--role <role>', 'their role').choices(['crypto-user']).makeOptionMandatory())
      .option('--approval <file>', 'a key-management quorum token signed by approvers')
      .action(run(async (o, session) => {
        const s = await session();
        const k = await oneKey(s, o.filter as string[], '--filter');
        await s.send({ op: verb === 'share' ? 'shareKey' : 'unshareKey', handle: k.handle, username: o.username as string, ...approvalOf(o.approval) });
        return `Key ${verb}d successfully`;
      }));
  }
  leaf(key.command('delete').description('delete a key (owner)'))
    .requiredOption('--filter <terms...>', 'the key')
    .action(run(async (o, session) => {
      const s = await session();
      const k = await oneKey(s, o.filter as string[], '--filter');
      await s.send({ op: 'deleteKey', handle: k.handle });
      return 'Key deleted successfully';
    }));

  const wrap = key.command('wrap').description('wrap a key (the owner of the payload key)');
  const unwrap = key.command('unwrap').description('unwrap a key');
  for (const mech of WRAP_MECHANISMS) {
    const w = leaf(wrap.command(mech).description(`wrap with ${mech}`))
      .requiredOption('--payload-filter <terms...>', 'the key to wrap (extractable)')
      .requiredOption('--wrapping-filter <terms...>', 'the wrapping key (wrap=true)')
      .option('--path <file>', 'write the wrapped key here (binary) instead of printing it')
      .option('--payload-approval <file>', "a quorum token for the payload key")
      .option('--wrapping-approval <file>', 'a quorum token for the wrapping key');
    const u = leaf(unwrap.command(mech).description(`unwrap with ${mech} (a token key unless --session)`))
      .requiredOption('--filter <terms...>', 'the unwrapping key (unwrap=true)')
      .addOption(new Option('--key-type-class <type>', 'what the wrapped key is').choices(['aes', 'generic-secret', 'rsa-private', 'ec-private']).makeOptionMandatory())
      .requiredOption('--label <label>', 'the new key label')
      .option('--data-path <file>', 'the wrapped key, binary')
      .option('--data <base64>', 'the wrapped key, base64')
      .option('--session', 'a session key instead of a token key')
      .option('--attributes <k=v...>', 'attributes of the new key')
      .option('--approval <file>', 'a quorum token for the unwrapping key');
    mechanismOptions(mech, w, 'wrap');
    mechanismOptions(mech, u, 'unwrap');
    w.action(run(async (o, session) => {
      const s = await session();
      const payload = await oneKey(s, o.payloadFilter as string[], '--payload-filter');
      const wrapping = await oneKey(s, o.wrappingFilter as string[], '--wrapping-filter');
      const r = await s.send({
        op: 'wrapKey',
        mechanism: wrapMechanism(mech, o),
        wrappingHandle: wrapping.handle,
        payloadHandle: payload.handle,
        ...(typeof o.wrappingApproval === 'string' ? { approval: readApproval(o.wrappingApproval, '--wrapping-approval') } : {}),
        ...(typeof o.payloadApproval === 'string' ? { payloadApproval: readApproval(o.payloadApproval, '--payload-approval') } : {}),
      });
      // aes-gcm: the HSM chose the IV; it travels in front of the wrapped key, as cloudhsm-aes-gcm does.
      const wrapped = r.iv ? Buffer.concat([r.iv, r.wrapped]) : Buffer.from(r.wrapped);
      if (typeof o.path === 'string') writeFileSync(o.path, wrapped);
      return {
        payload_key_reference: payload.keyReference,
        wrapping_key_reference: wrapping.keyReference,
        ...(typeof o.path === 'string' ? { path: o.path } : { wrapped_key_data: wrapped.toString('base64') }),
      };
    }));
    u.action(run(async (o, session) => {
      if ((typeof o.dataPath === 'string') === (typeof o.data === 'string')) bad('give exactly one of --data-path and --data');
      let data = typeof o.dataPath === 'string' ? readBytes(o.dataPath, '--data-path') : unb64(o.data as string, '--data');
      const mechanism = wrapMechanism(mech, o) as WrapMechanism & { iv?: Uint8Array };
      if (mech === 'aes-gcm') {
        if (data.length < 13) bad('--data: too short for an aes-gcm wrapped key (12-byte IV in front)');
        mechanism.iv = data.slice(0, 12);
        data = data.slice(12);
      }
      const [keyClass, keyType] = ({ aes: ['secret-key', 'aes'], 'generic-secret': ['secret-key', 'generic-secret'], 'rsa-private': ['private-key', 'rsa'], 'ec-private': ['private-key', 'ec'] } as const)[o.keyTypeClass as 'aes'];
      const s = await session();
      const k = await oneKey(s, o.filter as string[], '--filter');
      const r = await s.send({
        op: 'unwrapKey',
        mechanism,
        unwrappingHandle: k.handle,
        wrapped: data,
        keyClass,
        keyType,
        attributes: { ...parseAttributes(o.attributes as string[], '--attributes'), label: o.label as string, token: !o.session },
        ...approvalOf(o.approval),
      });
      return { key: await keyData(s, r.handle) };
    }));
  }

  // crypto -----------------------------------------------------------------------------------------
  const crypto = root.command('crypto').description('sign and verify (crypto users)');
  const signCmd = crypto.command('sign').description('sign data with a private key');
  const verifyCmd = crypto.command('verify').description('verify a signature with a public key');
  for (const mech of ['ecdsa', 'ed25519', 'rsa-pkcs', 'rsa-pkcs-pss'] as const) {
    const common = (cmd: Command) => {
      leaf(cmd)
        .requiredOption('--key-filter <terms...>', 'the key')
        .option('--data-path <file>', 'the data, binary')
        .option('--data <base64>', 'the data, base64')
        .addOption(new Option('--data-type <type>', 'raw data (hashed by the HSM)').choices(['raw']).default('raw'));
      if (mech !== 'ed25519') cmd.addOption(new Option('--hash-function <hash>', 'the hash').choices(['sha1', 'sha224', 'sha256', 'sha384', 'sha512']).makeOptionMandatory());
      if (mech === 'rsa-pkcs-pss') {
        cmd.addOption(new Option('--mgf <mgf>', 'the mask generation function (its hash must be the hash function)').choices(['mgf1-sha1', 'mgf1-sha224', 'mgf1-sha256', 'mgf1-sha384', 'mgf1-sha512']).makeOptionMandatory());
        cmd.requiredOption('--salt-length <n>', 'salt bytes');
      }
      return cmd;
    };
    common(signCmd.command(mech).description(`sign with ${mech}`)).option('--approval <file>', 'a key-usage quorum token signed by approvers').action(run(async (o, session) => {
      const s = await session();
      const k = await oneKey(s, o.keyFilter as string[], '--key-filter');
      const { signature } = await s.send({ op: 'sign', handle: k.handle, mechanism: signMechanism(mech, o), data: dataOf(o), ...approvalOf(o.approval) });
      return { 'key-reference': k.keyReference, signature: b64(signature) };
    }));
    common(verifyCmd.command(mech).description(`verify with ${mech}`))
      .option('--signature-path <file>', 'the signature, binary')
      .option('--signature <base64>', 'the signature, base64')
      .action(run(async (o, session) => {
        if ((typeof o.signaturePath === 'string') === (typeof o.signature === 'string')) bad('give exactly one of --signature-path and --signature');
        const signature = typeof o.signaturePath === 'string' ? readBytes(o.signaturePath, '--signature-path') : unb64(o.signature as string, '--signature');
        const s = await session();
        const k = await oneKey(s, o.keyFilter as string[], '--key-filter');
        const { valid } = await s.send({ op: 'verify', handle: k.handle, mechanism: signMechanism(mech, o), data: dataOf(o), signature });
        if (!valid) throw new HsmError('DATA_INVALID', 'Signature verification failed');
        return 'Signature verified successfully';
      }));
  }

  // audit ------------------------------------------------------------------------------------------
  const audit = root.command('audit').description("the members' audit logs (admins)");
  /** The members to read: `--member`, or every one of the cluster. */
  const members = async (o: Flags) => {
    const count = (await (await ctx.connection(o.clusterId)).hsmInfo()).length;
    if (o.member === undefined) return Array.from({ length: count }, (_, i) => i);
    const n = Number(o.member);
    if (!Number.isInteger(n) || n < 0 || n >= count) bad(`--member: 0 to ${count - 1}, got ${JSON.stringify(o.member)}`);
    return [n];
  };
  leaf(audit.command('show').description('audit records of each member'))
    .option('--member <n>', 'only this member')
    .option('--from-sequence <n>', 'the first record', '0')
    .option('--max-items <n>', 'records per member', '100')
    .action(run(async (o, session) => {
      const s = await session();
      const from = Number(o.fromSequence);
      const max = Number(o.maxItems);
      if (!Number.isInteger(from) || from < 0) bad(`--from-sequence: 0 or more, got ${JSON.stringify(o.fromSequence)}`);
      if (!Number.isInteger(max) || max < 1 || max > 10_000) bad(`--max-items: 1 to 10000, got ${JSON.stringify(o.maxItems)}`);
      const out = [];
      for (const i of await members(o)) {
        const log = await s.sendToMember(i, { op: 'getAuditLog', fromSequence: from, maxItems: max });
        out.push({ member: i, head: log.head, records: log.records });
      }
      return { members: out };
    }));
  leaf(audit.command('verify').description("verify each member's hash chain from record 0"))
    .option('--member <n>', 'only this member')
    .action(run(async (o, session) => {
      const s = await session();
      const out = [];
      for (const i of await members(o)) {
        const records: Results['getAuditLog']['records'] = [];
        let head: Results['getAuditLog']['head'];
        for (;;) {
          const page = await s.sendToMember(i, { op: 'getAuditLog', fromSequence: records.length, maxItems: 10_000 });
          records.push(...page.records);
          head = page.head;
          if (page.records.length === 0 || records.length > head.sequence) break;
        }
        const verdict = verifyAuditChain(records);
        const headMatches = records.at(-1)?.hash === head.hash;
        out.push({ member: i, records: records.length, head, verified: verdict.ok && headMatches, ...(verdict.ok ? {} : { 'broken-at': verdict.sequence, reason: verdict.reason }) });
      }
      if (out.some((m) => !m.verified)) throw new HsmError('DATA_INVALID', `audit chain broken: ${out.filter((m) => !m.verified).map((m) => `member ${m.member} at record ${String(m['broken-at'] ?? 'head')}`).join(', ')}`);
      return { members: out };
    }));
}

const WRAP_MECHANISMS = ['aes-gcm', 'aes-no-pad', 'aes-pkcs5-pad', 'aes-zero-pad', 'cloudhsm-aes-gcm', 'rsa-aes', 'rsa-oaep', 'rsa-pkcs'] as const;
type WrapName = (typeof WRAP_MECHANISMS)[number];

function mechanismOptions(mech: WrapName, cmd: Command, _side: 'wrap' | 'unwrap'): void {
  if (mech === 'aes-gcm' || mech === 'cloudhsm-aes-gcm') {
    cmd.addOption(new Option('--tag-length-bits <n>', 'the GCM tag').choices(['32', '64', '96', '104', '112', '120', '128']).makeOptionMandatory());
    cmd.option('--aad <base64>', 'additional authenticated data');
  }
  if (mech === 'rsa-oaep' || mech === 'rsa-aes') {
    cmd.addOption(new Option('--hash-function <hash>', 'OAEP hash').choices(['sha1', 'sha224', 'sha256', 'sha384', 'sha512']).makeOptionMandatory());
    cmd.addOption(new Option('--mgf <mgf>', 'MGF1 with the same hash').choices(['mgf1-sha1', 'mgf1-sha224', 'mgf1-sha256', 'mgf1-sha384', 'mgf1-sha512']).makeOptionMandatory());
  }
  if (mech === 'rsa-aes') cmd.addOption(new Option('--aes-key-size-bits <n>', 'the ephemeral AES key').choices(['128', '192', '256']).default('256'));
}

function checkMgf(o: Record<string, unknown>): HashName {
  const hash = o.hashFunction as HashName;
  if (o.mgf !== `mgf1-${hash}`) bad(`--mgf: Strongroom uses MGF1 with the same hash as --hash-function (mgf1-${hash}), got ${String(o.mgf)}`);
  return hash;
}

function wrapMechanism(mech: WrapName, o: Record<string, unknown>): WrapMechanism {
  const aad = typeof o.aad === 'string' ? { aad: unb64(o.aad, '--aad') } : {};
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

function signMechanism(mech: 'ecdsa' | 'ed25519' | 'rsa-pkcs' | 'rsa-pkcs-pss', o: Record<string, unknown>): SignMechanism {
  const hash = o.hashFunction as HashName;
  switch (mech) {
    case 'ecdsa':
      return { name: 'ecdsa', hash, signatureFormat: 'der' };
    case 'ed25519':
      return { name: 'ed25519' };
    case 'rsa-pkcs':
      return { name: 'rsa-pkcs', hash };
    case 'rsa-pkcs-pss': {
      checkMgf(o);
      const salt = Number(o.saltLength);
      if (!Number.isInteger(salt) || salt < 0 || salt > 1024) bad(`--salt-length: 0 to 1024, got ${JSON.stringify(o.saltLength)}`);
      return { name: 'rsa-pkcs-pss', hash, saltLength: salt };
    }
  }
}

function dataOf(o: Record<string, unknown>): Uint8Array {
  if ((typeof o.dataPath === 'string') === (typeof o.data === 'string')) bad('give exactly one of --data-path and --data');
  return typeof o.dataPath === 'string' ? readBytes(o.dataPath, '--data-path') : unb64(o.data as string, '--data');
}

/** Where commander keeps an option's value: `--use-key-quorum-value` → `useKeyQuorumValue`. */
const optionKey = (flag: string): string => flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** A registration token file: CloudHSM's `tokens` list with approval_data, unsigned and signed. */
function registrationFile(approvalData: Uint8Array): string {
  return JSON.stringify({
    version: '2.0',
    tokens: [{ approval_data: b64(approvalData), unsigned: b64(createHash('sha256').update(approvalData).digest()), signed: '' }],
  }, null, 2) + '\n';
}

function readRegistration(path: string, approvalData: Uint8Array): { approvalData: Uint8Array; signature: Uint8Array } {
  const file = readJson(path, 'signed token file');
  const tokens = Array.isArray(file.tokens) ? (file.tokens as { approval_data?: string; signed?: string }[]) : [];
  const entry = tokens.find((t) => t.approval_data === b64(approvalData)) ?? tokens[0];
  if (!entry || typeof entry.signed !== 'string' || entry.signed === '') bad(`signed token file: ${path} has no signed token; sign the unsigned token and paste the base64 signature into "signed"`);
  if (entry!.approval_data !== b64(approvalData)) bad(`signed token file: ${path} holds another registration token`);
  return { approvalData, signature: unb64(entry!.signed!, 'signed') };
}
