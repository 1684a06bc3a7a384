/**
 * The machine's floor for a request to another process: a bare TCP echo (no TLS, no framing, no
 * member) between this process and a child Node process over loopback, one message at a time.
 * A TLS member's one-at-a-time cost cannot go below it, so the cluster table prints it beside
 * that cost: on a virtual machine whose idle cores sleep, most of a round trip is waking the
 * other process, not anything either side computes.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';

const MESSAGE = 40; // a small request's size: frame header, id and a few fields

const SERVER = `
const net = require('node:net');
const server = net.createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); });
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

export interface Echo {
  /** One round trip of a small message. */
  roundTrip(): Promise<void>;
  close(): void;
}

/** Starts the echo process and connects to it. */
export async function startEcho(): Promise<Echo> {
  const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
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
