/**
 * The control socket of a running `strongroom up`: a Unix socket in the cluster's data folder
 * (`control.sock`, mode 0600, so only its owner can use it) through which `strongroom cluster
 * add-member | remove-member` reach the supervisor that runs the members. Newline-delimited JSON:
 * one request, then `{ progress }` lines and one `{ result }` or `{ error }`.
 *
 * @module
 */
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { HsmError } from '../hsm-core/client.js';
import type { LocalCluster } from '../app/index.js';

export type ControlRequest = { command: 'add-member' } | { command: 'remove-member'; member: number } | { command: 'status' };

export function controlPath(dataDir: string): string {
  return join(dataDir, 'control.sock');
}

export async function serveControl(cluster: LocalCluster, dataDir: string): Promise<Server> {
  const path = controlPath(dataDir);
  if (existsSync(path)) rmSync(path);
  const server = createServer((socket) => {
    let buffered = '';
    const send = (message: unknown) => socket.write(`${JSON.stringify(message)}\n`);
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      buffered += chunk.toString();
      if (buffered.length > 4096) return void socket.destroy();
      const end = buffered.indexOf('\n');
      if (end < 0) return;
      let request: ControlRequest;
      try {
        request = JSON.parse(buffered.slice(0, end)) as ControlRequest;
      } catch {
        send({ error: { code: 'BAD_REQUEST', message: 'control: a request is one line of JSON' } });
        return void socket.end();
      }
      const progress = (step: string) => send({ progress: step });
      const run = async (): Promise<unknown> => {
        switch (request.command) {
          case 'add-member':
            return { member: await cluster.addMember(progress), members: cluster.status() };
          case 'remove-member':
            if (!Number.isInteger(request.member)) throw new HsmError('BAD_REQUEST', 'remove-member: --member is the member number');
            await cluster.removeMember(request.member, progress);
            return { member: request.member, members: cluster.status() };
          case 'status':
            return { members: cluster.status(), sync: await cluster.sync() };
          default:
            throw new HsmError('BAD_REQUEST', `control: unknown command ${JSON.stringify((request as { command?: unknown }).command)}`);
        }
      };
      run().then(
        (result) => {
          send({ result });
          socket.end();
        },
        (e: unknown) => {
          send({ error: { code: e instanceof HsmError ? e.code : 'INTERNAL_ERROR', message: e instanceof Error ? e.message : String(e) } });
          socket.end();
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

/** Sends one request to a running `strongroom up` and reports progress as it comes. */
export function callControl(dataDir: string, request: ControlRequest, onProgress: (step: string) => void): Promise<unknown> {
  const path = controlPath(dataDir);
  if (!existsSync(path)) {
    return Promise.reject(new HsmError('MEMBER_UNAVAILABLE', `no running cluster at ${dataDir} (no control socket ${path}); start it with npm start, or npx strongroom up --data-dir ${dataDir}`));
  }
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buffered = '';
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('error', (e) => reject(new HsmError('MEMBER_UNAVAILABLE', `control socket ${path}: ${e.message}`)));
    socket.on('data', (chunk) => {
      buffered += chunk.toString();
      let end: number;
      while ((end = buffered.indexOf('\n')) >= 0) {
        const message = JSON.parse(buffered.slice(0, end)) as { progress?: string; result?: unknown; error?: { code: string; message: string } };
        buffered = buffered.slice(end + 1);
        if (message.progress !== undefined) onProgress(message.progress);
        else if (message.error) reject(HsmError.fromWire(message.error));
        else resolve(message.result);
      }
    });
  });
}
