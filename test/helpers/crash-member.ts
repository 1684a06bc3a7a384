/**
 * A durable member in a child process, driven over IPC, for the crash test: the parent sends
 * `{ id, request }`, the child answers `{ id, response }` once the member has (durably) answered.
 * argv: the data folder.
 */
import { createMember } from '../../src/hsm-core/index.js';

const member = await createMember({ dataDir: process.argv[2]!, passwordCost: 10, appliancePassword: 'appliance-password', profile: 'unlimited' });
process.on('message', (m: { id: number; request: unknown }) => {
  void member.handle(m.request).then((response) => process.send!({ id: m.id, response }));
});
process.send!({ ready: true });
