/**
 * hsm-core's job threads (mechanisms/threads.ts), on which the RSA threads and the ECDSA nonce
 * thread run: each answer reaches its own job's caller, a job that throws is refused with its
 * message and code, and a thread that stops refuses what it still had and says to make another.
 */
import { expect } from 'chai';
import { JobThread } from '../../src/hsm-core/mechanisms/threads.js';

/** Holds jobs until it has `hold` of them, then answers them last first: `value` is the job's `x` doubled, and `x` 0 throws. */
const REVERSING = `
const { parentPort } = require('node:worker_threads');
const held = [];
parentPort.on('message', (job) => {
  held.push(job);
  if (held.length < job.hold) return;
  for (const { id, x } of held.reverse()) {
    if (x === 0) parentPort.postMessage({ id, ok: false, message: 'x: zero is refused', code: 'ZERO' });
    else parentPort.postMessage({ id, ok: true, value: x * 2 });
  }
  held.length = 0;
});
`;

/** Exits with code 3 at its second job, without answering the first. */
const EXITING = `
const { parentPort } = require('node:worker_threads');
let seen = 0;
parentPort.on('message', () => { if (++seen === 2) process.exit(3); });
`;

describe('hsm-core: job threads', () => {
  it('answers reach their own callers in whatever order the thread gives them; a refusal keeps its message and code', async () => {
    const thread = new JobThread<number>(REVERSING, 'the test thread');
    const settled = await Promise.allSettled([1, 2, 0, 4].map((x) => thread.run({ x, hold: 4 })));
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : `${(s.reason as Error & { code?: string }).code}: ${(s.reason as Error).message}`))).to.deep.equal([2, 4, 'ZERO: x: zero is refused', 8]);
    expect(thread.load).to.equal(0);
    expect(thread.failed).to.equal(false);
  });

  it('a thread that stops refuses the jobs it still had, naming itself, and says it failed', async () => {
    const thread = new JobThread<number>(EXITING, 'the test thread');
    const jobs = [thread.run({}), thread.run({})];
    const refused = await Promise.allSettled(jobs);
    expect(refused.map((s) => (s.status === 'rejected' ? (s.reason as Error).message : 'answered'))).to.deep.equal([
      'the test thread stopped (exit code 3); try again',
      'the test thread stopped (exit code 3); try again',
    ]);
    expect(thread.failed).to.equal(true);
    expect(thread.load).to.equal(0);
  });
});
