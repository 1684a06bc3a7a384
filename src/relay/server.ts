/**
 * The relay: browser pages cannot open a TLS socket to an HSM member, so the relay holds the
 * cluster connection and speaks WebSocket (`ws`) to pages, and serves the demo pages and the
 * browser bundle over HTTP.
 *
 * Each WebSocket connection is one login (a crypto user, or an admin for the audit log) and can do
 * nothing else before it; its session keys die with the connection. Origins are checked against
 * an allow-list (default: the relay's own). Messages are capped in size, requests in flight per
 * connection and connections in number, and a connection's answers waiting to be written (its
 * requests are left unread meanwhile); an idle connection is closed. A malformed or oversized
 * message closes that connection with a reason; the relay and its other connections carry on.
 * Nothing secret is logged (no passwords, no payloads).
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import type { Duplex } from 'node:stream';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { HsmError, OPERATIONS, OPS, RequestFlow, checkPositiveIntegers, perTurn, type Op } from '../hsm-core/index.js';
import type { HsmSession } from '../app/index.js';
import type { LoginOptions } from '../cluster-client/index.js';
import { doorAlgorithms } from '../subtle/subtle.js';
import type { IssuingCa } from '../keystore/index.js';
import { CLOSE, RELAY_BATCH_MAX, RELAY_BATCH_VERSION, RELAY_PROTOCOL_VERSIONS, type RelayAnswer, type RelayCapabilities } from './protocol.js';

/** A decoded MessagePack map (not an array, not bytes). */
function isMap(m: unknown): m is Record<string, unknown> {
  return !!m && typeof m === 'object' && !Array.isArray(m) && !(m instanceof Uint8Array);
}

/** What the relay needs of a cluster: a way to log in (LocalCluster and RemoteCluster both fit). */
export interface RelayCluster {
  login(username: string, password: string, options?: LoginOptions): Promise<HsmSession>;
}

export interface RelayOptions {
  cluster: RelayCluster;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8787; 0 for any free port. */
  port?: number;
  /** Origins allowed to open a WebSocket (`http://host:port`); default: the relay's own. */
  allowedOrigins?: string[];
  /** Largest message accepted, bytes, and the backlog of unwritten answers at which a connection's requests wait. Default 1 MiB. */
  maxMessageBytes?: number;
  /** Requests one connection may have in flight. Default 64. */
  maxInFlight?: number;
  /** Connections at once. Default 64. */
  maxConnections?: number;
  /** A connection with no message for this long is closed. Default 5 minutes. */
  idleTimeoutMs?: number;
  /** Files served over HTTP (the demo pages): path → file. */
  files?: Record<string, string>;
  /** Folders served over HTTP under a prefix: `/demo/` → folder. */
  folders?: Record<string, string>;
  /**
   * A CA whose key is in the HSM: logged-in pages may send it a PKCS #10 request
   * (`issueCertificate`) and get a certificate back (the demo's certificate page).
   */
  ca?: IssuingCa;
  log?: (line: string) => void;
}

export interface Relay {
  readonly url: string;
  readonly port: number;
  /** Open WebSocket connections. */
  readonly connections: number;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.map': 'application/json',
};

/** Member operations a page may send: those the operations table marks `relay` (a crypto user's key management and cryptography, and an admin's audit log). */
export const RELAY_OPERATIONS: readonly Op[] = OPS.filter((op) => OPERATIONS[op].relay);
const ALLOWED = new Set<string>(RELAY_OPERATIONS);

/** Starts a relay. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const host = options.host ?? '127.0.0.1';
  const maxMessageBytes = options.maxMessageBytes ?? 1 << 20;
  const maxInFlight = options.maxInFlight ?? 64;
  const maxConnections = options.maxConnections ?? 64;
  const idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
  const log = options.log ?? (() => undefined);
  checkPositiveIntegers({ maxMessageBytes, maxInFlight, maxConnections, idleTimeoutMs });
  let algorithms: string[] | null = null;
  // One encoder and decoder for every connection: each call is synchronous, and a new one per
  // message would cost an allocation and a warm-up each time.
  const encoder = new Encoder();
  const decoder = new Decoder({ maxStrLength: maxMessageBytes, maxBinLength: maxMessageBytes, maxArrayLength: 10_000, maxMapLength: 10_000 });

  const http = createServer((req, res) => void serveFile(req, res, options));
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxMessageBytes });
  let origins: Set<string>;

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const origin = req.headers.origin;
    const path = (req.url ?? '').split('?')[0];
    const refuse = (status: number, why: string) => {
      log(`refused a WebSocket connection: ${why}`);
      socket.end(`HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : status === 404 ? 'Not Found' : 'Service Unavailable'}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`);
    };
    if (path !== '/ws') return refuse(404, `no WebSocket endpoint at ${path} (it is /ws)`);
    if (!origin || !origins.has(origin)) return refuse(403, `origin ${origin ?? '(none)'} is not allowed; allowed: ${[...origins].join(', ')}`);
    if (wss.clients.size >= maxConnections) return refuse(503, `the relay serves ${maxConnections} connections, its limit; try again later`);
    wss.handleUpgrade(req, socket, head, (ws) => serveConnection(ws, origin));
  });

  function serveConnection(ws: WebSocket, origin: string): void {
    let version = 0;
    let session: HsmSession | null = null;
    let loggingIn = false;
    let inFlight = 0;
    let closed = false;
    const idle = setTimeout(() => close(CLOSE.goingAway, `idle for ${Math.round(idleTimeoutMs / 1000)} s; reconnect`), idleTimeoutMs);
    const close = (code: number, reason: string) => {
      if (closed) return;
      closed = true;
      flow.close();
      log(`closed a connection from ${origin}: ${reason}`);
      ws.close(code, reason.slice(0, 120));
    };
    // Backpressure ({@link RequestFlow}, as a TLS member host and the PKCS #11 door have it). While
    // more than maxMessageBytes of this connection's answers wait to be written (its page is not
    // reading them), the relay reads none of its messages and takes none of those already read;
    // once the backlog is down to half, it goes on. So a page that never reads holds at most that
    // backlog and the answers to what it had in flight, however much it sends. (The in-flight
    // limit is the relay's own: more are answered RELAY_BUSY.)
    let held = false;
    let toldHeld = false;
    const flow = new RequestFlow<Record<string, unknown>>(ws, (msg) => accept(msg, msg.id as number));
    const written = () => {
      if (held && ws.bufferedAmount <= maxMessageBytes / 2) {
        held = false;
        flow.drained();
      }
    };
    const write = (bytes: Uint8Array) => {
      ws.send(bytes, written);
      if (held || ws.bufferedAmount <= maxMessageBytes) return;
      held = true;
      flow.full();
      if (!toldHeld) log(`a page from ${origin} is not reading its answers (${ws.bufferedAmount} bytes wait): its requests wait until it does`);
      toldHeld = true;
    };
    // Under version 2 the answers finished in one turn of the event loop leave as one batch (an
    // answer alone leaves as a map, as in version 1).
    const sendBatched = perTurn<RelayAnswer>(
      (answers) => {
        if (ws.readyState === ws.OPEN) write(encoder.encode(answers.length === 1 ? answers[0] : answers));
      },
      (end) => setImmediate(end),
      RELAY_BATCH_MAX,
    );
    const send = (answer: RelayAnswer) => {
      if (ws.readyState !== ws.OPEN) return;
      if (version < RELAY_BATCH_VERSION) return write(encoder.encode(answer));
      sendBatched(answer);
    };
    const fail = (id: number, code: string, message: string) => send({ id, ok: false, error: { code, message } });
    ws.on('close', () => {
      closed = true;
      flow.close();
      clearTimeout(idle);
      const s = session;
      session = null;
      // The connection's session keys die with it.
      if (s) void s.logout().catch(() => undefined);
    });
    ws.on('error', () => undefined);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      idle.refresh();
      if (!isBinary) return close(CLOSE.unsupportedData, 'binary MessagePack messages only');
      let decoded: unknown;
      try {
        decoded = decoder.decode(Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]));
      } catch {
        return close(CLOSE.invalidPayload, 'a message that is not a MessagePack map');
      }
      let messages: Record<string, unknown>[];
      if (Array.isArray(decoded) && version >= RELAY_BATCH_VERSION) {
        if (!decoded.length) return close(CLOSE.invalidPayload, 'an empty batch');
        if (!decoded.every(isMap)) return close(CLOSE.invalidPayload, 'a batch with an element that is not a MessagePack map');
        messages = decoded;
      } else if (isMap(decoded)) {
        messages = [decoded];
      } else {
        return close(CLOSE.invalidPayload, Array.isArray(decoded) ? 'a batch before protocol version 2 was agreed (send each message alone)' : 'a message that is not a MessagePack map');
      }
      if (!messages.every((m) => typeof m.id === 'number' && Number.isSafeInteger(m.id) && m.id >= 1)) {
        return close(CLOSE.protocolError, 'a message without a positive integer id');
      }
      flow.push(messages);
    });

    function accept(msg: Record<string, unknown>, id: number): void {
      if (inFlight >= maxInFlight) return fail(id, 'RELAY_BUSY', `this connection has ${maxInFlight} requests in flight, its limit; wait for answers`);
      inFlight += 1;
      handle(msg).then(
        (result) => {
          inFlight -= 1;
          send({ id, ok: true, result });
        },
        (e: unknown) => {
          inFlight -= 1;
          // A page learns the HSM's refusals; anything else is the relay's own failure, told in
          // a fixed sentence (its details go to the relay's log, not to the page).
          if (!(e instanceof HsmError)) log(`request ${id} from ${origin} failed in the relay: ${e instanceof Error ? e.message : String(e)}`);
          const err = e instanceof HsmError ? e.toWire() : { code: 'INTERNAL_ERROR', message: 'the relay failed to handle this request; it is in the relay\'s log' };
          send({ id, ok: false, error: err });
        },
      );
    }

    /** A member request (`type: 'request'`) of the logged-in `s`; throws when it is not one the relay passes on. */
    function request(s: HsmSession, msg: Record<string, unknown>): Promise<unknown> {
      const request = msg.request as Record<string, unknown> | undefined;
      if (!request || typeof request !== 'object' || Array.isArray(request) || typeof request.op !== 'string') {
        throw new HsmError('BAD_REQUEST', 'request: a map with op');
      }
      if (!ALLOWED.has(request.op)) throw new HsmError('PERMISSION_DENIED', `op ${request.op} is not offered through the relay (it offers ${RELAY_OPERATIONS.join(', ')})`);
      if ('session' in request) throw new HsmError('BAD_REQUEST', 'request: no session field; the relay adds the connection\'s own');
      if (request.op === 'getAuditLog') {
        // Audit logs are per member: the page names one (default 0).
        const { member = 0, ...rest } = request as { member?: unknown };
        if (typeof member !== 'number' || !Number.isInteger(member) || member < 0) throw new HsmError('BAD_REQUEST', 'getAuditLog: member is a member number');
        return s.sendToMember(member, rest as never);
      }
      return s.send(request as never);
    }

    async function handle(msg: Record<string, unknown>): Promise<unknown> {
      const type = msg.type;
      if (type === 'hello') {
        const theirs = Array.isArray(msg.versions) ? msg.versions.filter((v): v is number => typeof v === 'number') : [];
        const common = (RELAY_PROTOCOL_VERSIONS as readonly number[]).filter((v) => theirs.includes(v));
        if (!common.length) {
          const why = `this relay speaks protocol version ${RELAY_PROTOCOL_VERSIONS.join(', ')}; the page speaks ${theirs.join(', ') || 'none'}; load strongroom/browser from this relay`;
          setTimeout(() => close(CLOSE.protocolError, 'incompatible protocol version'), 10);
          throw new HsmError('BAD_REQUEST', why);
        }
        version = Math.max(...common);
        return { version, server: 'strongroom-relay', versions: [...RELAY_PROTOCOL_VERSIONS] };
      }
      if (!version) throw new HsmError('BAD_REQUEST', 'send hello with the protocol versions the page speaks first');
      if (type === 'capabilities') return capabilities(version);
      if (type === 'login') {
        if (session || loggingIn) throw new HsmError('BAD_REQUEST', 'this connection is already logged in; one login per connection');
        const { username, password, role } = msg;
        if (typeof username !== 'string' || typeof password !== 'string') throw new HsmError('BAD_REQUEST', 'login: username and password (strings)');
        if (role !== undefined && role !== 'crypto-user' && role !== 'admin') throw new HsmError('BAD_REQUEST', 'login: role is crypto-user or admin');
        loggingIn = true;
        try {
          const s = await options.cluster.login(username, password, { role: role ?? 'crypto-user' });
          if (closed) {
            await s.logout();
            throw new HsmError('NOT_LOGGED_IN', 'the connection closed during the login');
          }
          session = s;
          log(`${s.username} (${s.role}) logged in from ${origin}`);
          return { username: s.username, role: s.role };
        } finally {
          loggingIn = false;
        }
      }
      if (!session) throw new HsmError('NOT_LOGGED_IN', 'log in first (type login, with username and password)');
      if (type === 'logout') {
        const s = session;
        session = null;
        await s.logout();
        return { loggedOut: true };
      }
      if (type === 'issueCertificate') {
        if (!options.ca) throw new HsmError('BAD_REQUEST', 'this relay has no issuing CA');
        const csr = msg.csr;
        if (!(csr instanceof Uint8Array) && typeof csr !== 'string') throw new HsmError('BAD_REQUEST', 'issueCertificate: csr is DER bytes or PEM text');
        const cert = await options.ca.signCsr(csr, { days: 30, usages: ['clientAuth'] });
        log(`issued a certificate for ${cert.subject} to ${session.username}`);
        return { certificate: cert.toString('pem'), chain: options.ca.chain.map((c) => c.toString('pem')) };
      }
      if (type === 'listKeys') {
        const request = (msg.request ?? {}) as Record<string, unknown>;
        if (typeof request !== 'object' || request === null || Array.isArray(request)) throw new HsmError('BAD_REQUEST', 'listKeys: request is a map');
        for (const field of ['op', 'session']) {
          if (field in request) throw new HsmError('BAD_REQUEST', `listKeys: request has no ${field} field (it is a findKeys filter: filter, maxItems, startingToken)`);
        }
        return session.listKeys(request as never);
      }
      if (type === 'request') return request(session, msg);
      throw new HsmError('BAD_REQUEST', `unknown message type ${JSON.stringify(type)}`);
    }
  }

  function capabilities(version: number): RelayCapabilities {
    algorithms ??= doorAlgorithms();
    return { protocolVersion: version, algorithms, operations: [...RELAY_OPERATIONS], limits: { maxMessageBytes, maxInFlight, idleTimeoutMs } };
  }

  await new Promise<void>((resolveListen, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 8787, host, () => {
      http.off('error', reject);
      resolveListen();
    });
  });
  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 8787);
  const shown = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${port}`;
  origins = new Set(options.allowedOrigins ?? [url, `http://localhost:${port}`]);
  log(`relay listening on ${url} (WebSocket ${url.replace('http', 'ws')}/ws; origins ${[...origins].join(', ')})`);

  return {
    url,
    port,
    get connections() {
      return wss.clients.size;
    },
    close: () =>
      new Promise<void>((done) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        http.close(() => done());
        http.closeAllConnections();
      }),
  };
}

async function serveFile(req: IncomingMessage, res: ServerResponse, options: RelayOptions): Promise<void> {
  const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
  let file: string | undefined = options.files?.[path];
  if (!file) {
    for (const [prefix, folder] of Object.entries(options.folders ?? {})) {
      if (!path.startsWith(prefix)) continue;
      const root = resolve(folder);
      const candidate = resolve(join(root, path.slice(prefix.length) || 'index.html'));
      if (candidate === root || candidate.startsWith(root + sep)) file = candidate;
    }
  }
  const notFound = () => {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end(`not found: ${path}\n`);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' });
    res.end('GET only\n');
    return;
  }
  if (!file) return notFound();
  try {
    if (!(await stat(file)).isFile()) return notFound();
    const body = await readFile(file);
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch {
    notFound();
  }
}
