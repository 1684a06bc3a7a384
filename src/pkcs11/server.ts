/**
 * The PKCS #11 door: p11-kit's RPC protocol served on a Unix socket, so that Debian's
 * `p11-kit-client.so` (`P11_KIT_SERVER_ADDRESS=unix:path=…`) makes Strongroom a PKCS #11 module
 * for any application. The protocol has no authentication: the socket goes in a folder only its
 * owner can enter (0700), and each connection logs in with its own PIN.
 *
 * Each connection: one version byte each way (the client's says its p11-kit generation, and so
 * the dialect of mechanism parameters), then frames. Requests are answered as they complete, so
 * one application's threads pipeline (a slow signature does not hold another thread's lookup);
 * a frame that does not decode closes that connection only. A connection that does not read its
 * answers has its requests left unread until they drain (see serveConnection).
 *
 * @module
 */
import { chmodSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { callById, ERROR_CALL } from './calls.js';
import { FrameReader, ProtocolError, encodeFrame, readMessage, writeMessage, type Dialect } from './codec.js';
import { RequestFlow, checkPositiveIntegers, tickBatched } from '../hsm-core/index.js';
import { Ckr } from './objects.js';
import { DEFAULT_MAX_SESSIONS, Token, type Pkcs11Cluster } from './token.js';

export interface Pkcs11ServeOptions {
  cluster: Pkcs11Cluster;
  /** The socket's path; its folder is made 0700 (an existing folder must not be open to others). */
  socket: string;
  /** The token's label (32 characters at most). */
  label?: string;
  /** Where token certificates and data objects are kept (one file per cluster and user); null keeps them in memory. */
  objectsFolder?: string | null;
  /** The cluster those files are for. */
  clusterId?: string;
  serial?: string;
  /**
   * The most connections open at once (default 256, as a TLS member host): one more is closed at
   * once, and the log says why. Each connection is an application's login and its sessions.
   */
  maxConnections?: number;
  /** The most sessions one connection may have open at once (default 1,024): C_OpenSession is then refused CKR_SESSION_COUNT. */
  maxSessions?: number;
  log?: (line: string) => void;
}

export interface Pkcs11Door {
  readonly socket: string;
  /** Connections now open. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function servePkcs11(options: Pkcs11ServeOptions): Promise<Pkcs11Door> {
  const maxConnections = options.maxConnections ?? 256;
  const maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
  checkPositiveIntegers({ maxConnections, maxSessions });
  const folder = dirname(options.socket);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  if ((statSync(folder).mode & 0o077) !== 0) chmodSync(folder, 0o700);
  if (existsSync(options.socket)) rmSync(options.socket);
  const log = options.log ?? (() => undefined);
  const open = new Set<Socket>();
  const server: Server = createServer((socket) => {
    if (open.size >= maxConnections) {
      log(`refused a PKCS #11 connection: ${maxConnections} are open, the door's limit (maxConnections); an application must close one first`);
      socket.destroy();
      return;
    }
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    const objects = { folder: options.objectsFolder ?? null, clusterId: options.clusterId ?? 'cluster' };
    const token = new Token(options.cluster, options.label ?? 'Strongroom', options.serial ?? 'strongroom', objects, maxSessions);
    serveConnection(socket, token, log);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(options.socket, 0o600);
  return {
    socket: options.socket,
    get connections() {
      return open.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => {
          rmSync(options.socket, { force: true });
          resolve();
        });
      }),
  };
}

/**
 * One application's connection, with backpressure as a TLS member host has it
 * ({@link RequestFlow}): an application that never reads its answers holds at most a few of them
 * in the door's memory, however much it sends, and the door's other applications carry on.
 */
function serveConnection(socket: Socket, token: Token, log: (line: string) => void): void {
  let dialect: Dialect | null = null;
  const reader = new FrameReader();
  let closed = false;
  const send = tickBatched(socket);
  const flow = new RequestFlow(socket, (frame: { code: number; body: Buffer }) => answer(frame.code, frame.body));
  socket.on('drain', () => flow.drained());
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
    flow.close();
    void token.close();
  });
  const fail = (why: string) => {
    log(`closed a PKCS #11 connection: ${why}`);
    closed = true;
    flow.close();
    socket.destroy();
  };
  socket.on('data', (chunk: Buffer) => {
    if (closed) return;
    let data = chunk;
    if (dialect === null) {
      // The version byte: the highest protocol version the client speaks. Version 0 is answered.
      dialect = data[0]! >= 1 ? 'p11-kit-0.25' : 'p11-kit-0.24';
      socket.write(Buffer.from([0]));
      data = data.subarray(1);
      if (data.length === 0) return;
    }
    let frames;
    try {
      frames = reader.push(data);
    } catch (e) {
      fail((e as Error).message);
      return;
    }
    flow.push(frames);
  });

  async function answer(code: number, body: Buffer): Promise<void> {
    let message;
    try {
      message = readMessage(body, (id) => callById(id)?.request, dialect!);
    } catch (e) {
      // A message the table does not describe: the connection ends (as p11-kit's own server does).
      fail(e instanceof ProtocolError ? e.message : String(e));
      return;
    }
    const call = callById(message.call)!;
    let reply: Buffer;
    try {
      const values = await token.call(call.name, message.args);
      reply = writeMessage(message.call, call.response, values);
    } catch (e) {
      const rv = e instanceof Ckr ? e.rv : 0x5;
      reply = writeMessage(ERROR_CALL, 'u', [BigInt(rv)]);
      log(`${call.name}: CKR 0x${rv.toString(16)} (${e instanceof Error ? e.message : String(e)})`);
    }
    if (closed) return;
    // Answers finished in one tick go out in one write.
    if (!send(encodeFrame(code, reply))) flow.full();
  }
}
