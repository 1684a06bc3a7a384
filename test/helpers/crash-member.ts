/**
 * A durable member in a child process, driven over IPC, for the crash test: the parent sends
 * `{ id, request }`, the child answers `{ id, response }` once the member has (durably) answered.
 * The child loads hsm-core as the project starts its own members (helpers/entry.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { projectModule } from './entry.js';

/** The child's program: argv is hsm-core's module URL, then the data folder. */
const CHILD = `
const { createMember } = await import(process.argv[1]);
const member = await createMember({ dataDir: process.argv[2], passwordCost: 10, appliancePassword: 'appliance-password', profile: 'unlimited' });
process.on('message', (m) => {
  void member.handle(m.request).then((response) => process.send({ id: m.id, response }));
});
process.send({ ready: true });
`;

/** Starts a member on `dataDir` in a child process with an IPC channel (advanced serialization: byte arrays stay bytes). */
export function startCrashMember(dataDir: string): ChildProcess {
  const { file, loader } = projectModule('hsm-core/index');
  const args = [...loader, '--input-type=module', '-e', CHILD, pathToFileURL(file).href, dataDir];
  return spawn(process.execPath, args, { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
}
