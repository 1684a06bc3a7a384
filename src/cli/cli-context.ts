/**
 * What the CloudHSM-style commands run against: the connection (from the file `strongroom
 * configure` writes, `--cluster-id`, or `STRONGROOM_CLUSTER`), the logged-in session, how to ask
 * the person for a password or a file, and where output goes. Single-command mode logs in from
 * `CLOUDHSM_ROLE` and `CLOUDHSM_PIN` (`user:password`) as CloudHSM CLI does; interactive mode keeps
 * the session of its `login` until `logout` or exit.
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Cluster } from '../cluster-client/cluster.js';
import type { LoginOptions } from '../cluster-client/index.js';
import { ClusterSession as HsmSession } from '../cluster-client/session.js';
import { parseAddress } from '../cluster-client/address.js';
import { HsmError, writeFileDurably } from '../hsm-core/client.js';
import { defaultDataDir } from './data-dir.js';

export interface ClusterEntry {
  id: string;
  members: string[];
  ca: string;
  cert: string;
  key: string;
}

export interface CliConfig {
  clusters: ClusterEntry[];
}

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Asks for one line; `hidden` for passwords (not echoed on a terminal). */
  ask(prompt: string, hidden?: boolean): Promise<string>;
}

/** The configuration file: `STRONGROOM_CLI_CONFIG`, or `~/.config/strongroom/cli.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRONGROOM_CLI_CONFIG) return resolve(env.STRONGROOM_CLI_CONFIG);
  return join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'strongroom', 'cli.json');
}

export function readConfig(path: string): CliConfig {
  if (!existsSync(path)) return { clusters: [] };
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as CliConfig;
    if (!Array.isArray(parsed.clusters)) throw new Error('no clusters list');
    return parsed;
  } catch (e) {
    throw new HsmError('BAD_REQUEST', `the configuration ${path} is not valid (${e instanceof Error ? e.message : String(e)}); run strongroom configure again`);
  }
}

/** `strongroom configure`: adds or replaces one cluster in the configuration file. */
export function configure(path: string, entry: { id: string; cluster: string; ca: string; cert?: string; key?: string }): ClusterEntry {
  const members = entry.cluster.split(',').map((a) => a.trim()).filter(Boolean);
  try {
    if (!members.length) throw new Error('none');
    members.forEach(parseAddress);
  } catch {
    throw new HsmError('BAD_REQUEST', `--cluster: host:port of a member (several separated by commas), got ${JSON.stringify(entry.cluster)}`);
  }
  const ca = resolve(entry.ca);
  // Mutual TLS: without --cert/--key, the client certificate beside the trust anchor (as strongroom up lays them out).
  const cert = resolve(entry.cert ?? join(dirname(ca), 'client.crt'));
  const key = resolve(entry.key ?? join(dirname(ca), 'client.key'));
  for (const [flag, file] of [['--ca', ca], ['--cert', cert], ['--key', key]] as const) {
    if (!existsSync(file)) throw new HsmError('BAD_REQUEST', `${flag}: no such file ${file}`);
  }
  const config = readConfig(path);
  const cluster: ClusterEntry = { id: entry.id, members, ca, cert, key };
  config.clusters = [...config.clusters.filter((c) => c.id !== entry.id), cluster];
  mkdirSync(dirname(path), { recursive: true });
  writeFileDurably(path, JSON.stringify(config, null, 2) + '\n', 0o600);
  return cluster;
}

export class CliContext {
  readonly #connections = new Map<string, Promise<Cluster>>();
  /** Logins by cluster: the default's under '' (key replicate and user replicate log in to two). */
  readonly #sessions = new Map<string, HsmSession>();
  /** The cluster id given when interactive mode started (`--cluster-id`), the default for its commands. */
  defaultClusterId: string | undefined;

  constructor(
    readonly io: CliIo,
    readonly mode: 'single' | 'interactive',
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get session(): HsmSession | null {
    return this.sessionFor(undefined);
  }

  set session(s: HsmSession | null) {
    this.setSession(undefined, s);
  }

  #key(clusterId: string | undefined): string {
    return clusterId ?? this.defaultClusterId ?? '';
  }

  /** The login to a cluster (interactive `login --cluster-id`), if any. */
  sessionFor(clusterId: string | undefined): HsmSession | null {
    return this.#sessions.get(this.#key(clusterId)) ?? null;
  }

  setSession(clusterId: string | undefined, s: HsmSession | null): void {
    if (s) this.#sessions.set(this.#key(clusterId), s);
    else this.#sessions.delete(this.#key(clusterId));
  }

  /** The cluster a command runs against. */
  connection(clusterId?: string): Promise<Cluster> {
    const id = clusterId ?? this.defaultClusterId;
    const key = id ?? '';
    let pending = this.#connections.get(key);
    if (!pending) {
      pending = this.#open(id);
      this.#connections.set(key, pending);
      pending.catch(() => this.#connections.delete(key));
    }
    return pending;
  }

  async #open(id: string | undefined): Promise<Cluster> {
    // Loaded when a command first connects: commands that never do (configure, help, hsm serve) start faster.
    const { connectCluster, explained, fromEnvironment } = await import('../cluster-client/connect.js');
    const connectFromEnvironment = (env: NodeJS.ProcessEnv) => {
      const { options, source } = fromEnvironment(env);
      return explained(connectCluster, options, source);
    };
    if (this.env.STRONGROOM_CLUSTER && id === undefined) return connectFromEnvironment(this.env);
    const path = configPath(this.env);
    const config = readConfig(path);
    let entry: ClusterEntry | undefined;
    if (id !== undefined) {
      entry = config.clusters.find((c) => c.id === id);
      if (!entry) throw new HsmError('BAD_REQUEST', `--cluster-id: no cluster ${JSON.stringify(id)} in ${path} (configured: ${config.clusters.map((c) => c.id).join(', ') || 'none'})`);
    } else if (config.clusters.length === 1) {
      entry = config.clusters[0];
    } else if (config.clusters.length > 1) {
      throw new HsmError('BAD_REQUEST', `${path} names ${config.clusters.length} clusters (${config.clusters.map((c) => c.id).join(', ')}); choose one with --cluster-id`);
    } else {
      // What npm start wrote: the local cluster (found from any folder of the project).
      const local = resolve(defaultDataDir(this.env), 'cluster.json');
      if (!existsSync(local)) throw new HsmError('BAD_REQUEST', `no cluster configured: run strongroom configure --cluster HOST:PORT --ca customerCA.crt (or start one with npm start)`);
      return connectFromEnvironment({ STRONGROOM_CLUSTER: local });
    }
    const read = (file: string) => {
      try {
        return readFileSync(file, 'utf8');
      } catch {
        throw new HsmError('BAD_REQUEST', `cannot read ${file}, named in ${path}; run strongroom configure again`);
      }
    };
    return explained(connectCluster, { members: entry!.members, ca: read(entry!.ca), cert: read(entry!.cert), key: read(entry!.key), retry: 'standard' }, path);
  }

  /**
   * The session for a command that needs one. Interactive mode: the one `login` made. Single-command
   * mode: a login from CLOUDHSM_ROLE and CLOUDHSM_PIN, ended after the command.
   */
  async requireSession(clusterId?: string, prefix: '' | 'DESTINATION_' = ''): Promise<HsmSession> {
    const existing = this.sessionFor(clusterId);
    if (existing) return existing;
    const cluster = clusterId === undefined ? '' : ` --cluster-id ${clusterId}`;
    if (this.mode === 'interactive') throw new HsmError('NOT_LOGGED_IN', `not logged in: run login${cluster} --username NAME --role crypto-user|admin first`);
    const pinVar = `${prefix}CLOUDHSM_PIN`;
    const roleVar = `${prefix}CLOUDHSM_ROLE`;
    const pin = this.env[pinVar];
    const role = this.env[roleVar];
    if (!pin || !role) {
      throw new HsmError('NOT_LOGGED_IN', `this command needs a login: set ${roleVar} (admin or crypto-user) and ${pinVar} (user:password), or run it in interactive mode after login${cluster}`);
    }
    if (role !== 'admin' && role !== 'crypto-user') throw new HsmError('BAD_REQUEST', `${roleVar}: admin or crypto-user, got ${JSON.stringify(role)}`);
    const at = pin.indexOf(':');
    if (at < 1) throw new HsmError('BAD_REQUEST', `${pinVar}: username:password`);
    const session = await loginTo(await this.connection(clusterId), pin.slice(0, at), pin.slice(at + 1), { role });
    this.setSession(clusterId, session);
    return session;
  }

  async close(): Promise<void> {
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(sessions.map((session) => session.logout().catch(() => undefined)));
    const connections = [...this.#connections.values()];
    this.#connections.clear();
    await Promise.all(connections.map((c) => c.then((x) => x.close(), () => undefined)));
  }
}

/**
 * Logs in to a cluster for the CLI: a plain cluster session (the CLI sends CloudHSM's requests and
 * never uses the WebCrypto door, so it does not load it).
 */
export async function loginTo(cluster: Cluster, username: string, password: string, options: LoginOptions): Promise<HsmSession> {
  return new HsmSession(await cluster.login(username, password, options));
}
