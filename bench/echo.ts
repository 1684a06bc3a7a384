/**
 * The machine's floors for a request to another process: a bare echo (no framing, no member)
 * between this process and a child Node process over loopback, one message at a time, over TCP
 * and over TLS 1.3 (as a TLS member's connection is; the server's certificate is from a throwaway
 * trust anchor). A TLS member's one-at-a-time cost cannot go below the TLS one, so the cluster table
 * prints both beside that cost: on a virtual machine whose idle cores sleep, most of a round trip
 * is waking the other process, and Node's TLS adds its own share on both sides.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { TrustAnchor } from '../src/index.js';

const MESSAGE = 40; // a small request's size: frame header, id and a few fields

/** The child: an echo server on a loopback port, over TLS when it is given a key and certificate (JSON on its first stdin line). */
const SERVER = `
const net = require('node:net');
const tls = require('node:tls');
const serve = (s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); };
let input = '';
let server = null;
process.stdin.on('data', (d) => {
  input += d;
  if (server || !input.includes('\\n')) return;
  const credentials = JSON.parse(input.slice(0, input.indexOf('\\n')));
  server = credentials ? tls.createServer({ ...credentials, minVersion: 'TLSv1.3' }, serve) : net.createServer(serve);
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
});
process.stdin.on('end', () => process.exit(0));
`;

export interface Echo {
  /** One round trip of a small message. */
  roundTrip(): Promise<void>;
  close(): void;
}

/** Starts the echo process, over TLS 1.3 or bare TCP, and connects to it. */
export async function startEcho(options: { tls?: boolean } = {}): Promise<Echo> {
  let credentials: { cert: string; key: string } | null = null;
  if (options.tls) {
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-bench-echo-'));
    try {
      const anchor = await TrustAnchor.openOrCreate(dir, 'bench echo');
      credentials = await anchor.issueClient('bench echo');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.write(`${JSON.stringify(credentials)}\n`);
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  const socket = credentials
    ? // The certificate is a client's (clientAuth), which a client refuses from a server: the floor
      // measures the trip, and nothing but zeros crosses it, so it is not checked.
      tlsConnect({ host: '127.0.0.1', port, minVersion: 'TLSv1.3', rejectUnauthorized: false })
    : connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => socket.once(credentials ? 'secureConnect' : 'connect', resolve).once('error', reject));
  const waiters: (() => void)[] = [];
  let received = 0;
  socket.on('data', (d: Buffer) => {
    received += d.length;
    while (received >= MESSAGE) {
      received -= MESSAGE;
      waiters.shift()!();
    }
  });
  const message = Buffer.alloc(MESSAGE);
  return {
    roundTrip: () =>
      new Promise<void>((resolve) => {
        waiters.push(resolve);
        socket.write(message);
      }),
    close: () => {
      socket.destroy();
      child.stdin.end();
    },
  };
}
