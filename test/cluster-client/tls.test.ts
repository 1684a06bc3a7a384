/**
 * Network members: mutual TLS refusals, the wire protocol under fuzzing, oversized frames,
 * `connect` input checks and `strongroom hsm serve`'s first start.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { encodeFrame, FrameReader, HsmError, serveMember } from '../../src/hsm-core/index.js';
import { startMember, type Fixture } from '../helpers/tls-member.js';
import { connect } from '../../src/app/index.js';
import { SocketTransport, TrustAnchor } from '../../src/cluster-client/index.js';
import { seeded, testSeed } from '../helpers/random.js';
import { waitUntil } from '../helpers/wait.js';
import { refusal } from '../helpers/refusal.js';
import { projectModule } from '../helpers/entry.js';

const run = promisify(execFile);
const { file: cliFile, loader } = projectModule('cli/main');
const CLI = [...loader, cliFile];

/** A raw TLS connection; resolves with what happened to one request sent on it. */
function rawAttempt(port: number, options: { ca: string; cert?: string; key?: string }): Promise<'answered' | string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: options.ca, ...(options.cert ? { cert: options.cert, key: options.key } : {}), minVersion: 'TLSv1.3' });
    const reader = new FrameReader();
    socket.on('secureConnect', () => socket.write(encodeFrame(1, { op: 'getHsmInfo' })));
    socket.on('data', (chunk: Buffer) => {
      if (reader.push(chunk).length) {
        socket.destroy();
        resolve('answered');
      }
    });
    socket.on('error', (e) => resolve(e.message));
    socket.on('close', () => resolve('closed'));
  });
}

describe('cluster-client: mutual TLS', function () {
  this.timeout(60_000);
  let f: Fixture;
  before(async () => {
    f = await startMember();
  });
  after(async () => {
    await f?.served.close();
    if (f) rmSync(f.dir, { recursive: true, force: true });
  });

  it('a member host refuses limits that are not positive integers, naming them, before it listens', async () => {
    for (const [options, message] of [
      [{ maxConnections: 0 }, 'maxConnections: a positive integer, got 0'],
      [{ maxFrameBytes: 0.5 }, 'maxFrameBytes: a positive integer, got 0.5'],
    ] as const) {
      const e = await refusal(serveMember({ member: f.member, dataDir: join(f.dir, 'member-0'), host: '127.0.0.1', port: f.served.port, ...options }));
      expect([e.code, e.message]).to.deep.equal(['BAD_REQUEST', message]);
    }
  });

  it('a client with the trust anchor\'s certificate is served; discovery works from one address', async () => {
    expect(await rawAttempt(f.served.port, { ca: f.anchor.pem, ...f.client })).to.equal('answered');
    const cluster = await connect({ members: [f.address], ca: f.anchor.pem, ...f.client });
    const app = await cluster.login('app', 'app-password');
    expect((await app.send({ op: 'generateRandom', length: 8 })).data).to.have.length(8);
    await cluster.close();
  });

  it('refuses a client with no certificate, one from another CA, or an expired one, before reading any request', async () => {
    const otherDir = mkdtempSync(join(tmpdir(), 'strongroom-other-ca-'));
    try {
      const other = await TrustAnchor.openOrCreate(otherDir, 'Another CA');
      const foreign = await other.issueClient('intruder');
      const expired = await f.anchor.issueClient('late client', { notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
      const before = f.handled.count;
      for (const [what, creds] of [['none', {}], ['foreign', foreign], ['expired', expired]] as const) {
        const outcome = await rawAttempt(f.served.port, { ca: f.anchor.pem, ...creds });
        expect(outcome, what).to.not.equal('answered');
        const e = await connect({ members: [f.address], ca: f.anchor.pem, cert: 'cert' in creds ? creds.cert : f.client.cert, key: 'key' in creds ? creds.key : 'not a key' }).then(
          () => null,
          (err: unknown) => err,
        );
        // Without a key of its own the client refuses to start; with a refused certificate no member answers.
        const [code, message] = what === 'none' ? ['BAD_REQUEST', 'ca, cert, key: not a usable trust anchor'] : ['MEMBER_UNAVAILABLE', 'no member of the cluster answered'];
        expect(e, what).to.be.instanceOf(HsmError).and.to.include({ code });
        expect((e as HsmError).message, what).to.contain(message);
      }
      expect(f.handled.count, 'no request from a refused client reached the member').to.equal(before);
      expect(f.logs.some((l) => /refused a connection during the TLS handshake/.test(l))).to.equal(true);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('a client refuses a member whose certificate is not from its trust anchor', async () => {
    const otherDir = mkdtempSync(join(tmpdir(), 'strongroom-other-ca-'));
    try {
      const other = await TrustAnchor.openOrCreate(otherDir, 'Another CA');
      const e = await connect({ members: [f.address], ca: other.pem, ...f.client }).then(() => null, (err: unknown) => err);
      expect(e).to.be.instanceOf(HsmError);
      expect((e as HsmError).message).to.match(/certificate/i);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('a connection that ends without logout ends its sessions: session keys and quorum tokens go (CN_CLOSE_SESSION)', async () => {
    const options = { ca: f.anchor.pem, ...f.client };
    const t = await SocketTransport.connect(f.address, options);
    const login = await t.send({ op: 'login', username: 'admin', password: 'admin-password' });
    const session = (login as { result: { session: string } }).result.session;
    expect((await t.send({ op: 'generateQuorumToken', session, service: 'registration' })).ok).to.equal(true);
    expect(((await f.member.handle({ op: 'listQuorumTokens' })) as { result: { tokens: unknown[] } }).result.tokens).to.have.length(1);
    await t.close();
    for (let i = 0; i < 100 && ((await f.member.handle({ op: 'listQuorumTokens' })) as { result: { tokens: unknown[] } }).result.tokens.length; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(((await f.member.handle({ op: 'listQuorumTokens' })) as { result: { tokens: unknown[] } }).result.tokens).to.deep.equal([]);
    const gone = await f.member.handle({ op: 'generateRandom', session, length: 1 });
    expect(gone.ok ? 'ok' : gone.error.code).to.equal('NOT_LOGGED_IN');
    const admin = (await f.member.handle({ op: 'login', username: 'admin', password: 'admin-password' })) as { result: { session: string } };
    const log = (await f.member.handle({ op: 'getAuditLog', session: admin.result.session })) as { result: { records: { opcode: string }[] } };
    expect(log.result.records.map((r) => r.opcode)).to.include('CN_CLOSE_SESSION');
    await f.member.handle({ op: 'logout', session: admin.result.session });
  });

  it('an oversized frame closes that connection with a clear error; other clients carry on', async () => {
    const cluster = await connect({ members: [f.address], ca: f.anchor.pem, ...f.client });
    const app = await cluster.login('app', 'app-password');
    const message = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: f.served.port, ca: f.anchor.pem, ...f.client });
      const reader = new FrameReader();
      socket.on('secureConnect', () => {
        const head = Buffer.alloc(4);
        head.writeUInt32BE(9 * 1024 * 1024);
        socket.write(head);
      });
      socket.on('data', (chunk: Buffer) => {
        for (const frame of reader.push(chunk)) resolve(`${frame.id}: ${(frame.body as { error: { message: string } }).error.message}`);
      });
      socket.on('close', () => resolve('closed without a word'));
    });
    expect(message).to.match(/^0: frame: 9437184 bytes is over the 8388608-byte limit; closing this connection$/);
    expect((await app.send({ op: 'generateRandom', length: 4 })).data).to.have.length(4);
    await cluster.close();
  });

  const FUZZ_SEED = testSeed(20261202);
  it(`wire fuzzing: thousands of random and mutated frames; the member stays up, serves valid clients, and its state is unchanged (seed ${FUZZ_SEED})`, async () => {
    const rand = seeded(FUZZ_SEED);
    const cluster = await connect({ members: [f.address], ca: f.anchor.pem, ...f.client });
    const app = await cluster.login('app', 'app-password');
    const { handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true } });
    const state = async () => JSON.stringify([await app.send({ op: 'getSyncStatus' }), (await cluster.listUsers()).map((u) => [u.username, u.role, u.failedLogins])]);
    const before = await state();

    const valid = [
      encodeFrame(7, { op: 'getHsmInfo' }),
      encodeFrame(8, { op: 'listUsers' }),
      encodeFrame(9, { op: 'login', username: 'fuzz', password: 'fuzz-password' }),
      encodeFrame(10, { op: 'encrypt', session: 'bogus', handle, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(16) }),
      encodeFrame(11, { op: 'createUser', session: 'bogus', username: 'mallory', password: 'mallory-password', role: 'admin' }),
    ];
    const mutate = (frame: Buffer): Buffer => {
      const out = Buffer.from(frame);
      const flips = 1 + rand.below(4);
      for (let i = 0; i < flips; i++) {
        const at = 8 + rand.below(out.length - 8); // keep the length honest: the body is mutated
        out[at] = rand.below(256);
      }
      return out;
    };
    const random = (): Buffer => {
      const body = rand.bytes(1 + rand.below(64));
      const head = Buffer.alloc(8);
      head.writeUInt32BE(4 + body.length);
      head.writeUInt32BE(rand.below(2 ** 32), 4);
      return Buffer.concat([head, body]);
    };
    /** A connection that reports, per frame sent, whether the member answered or closed it. */
    const open = () =>
      new Promise<{ send(frame: Buffer): Promise<'answered' | 'closed'>; destroy(): void }>((resolve) => {
        const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: f.served.port, ca: f.anchor.pem, ...f.client });
        const reader = new FrameReader();
        let waiting: ((o: 'answered' | 'closed') => void) | null = null;
        let closed = false;
        socket.on('data', (chunk: Buffer) => {
          for (const frame of reader.push(chunk)) {
            if (frame.id === 0) continue; // the member's parting words before it closes
            waiting?.('answered');
            waiting = null;
          }
        });
        socket.on('error', () => undefined);
        socket.on('close', () => {
          closed = true;
          waiting?.('closed');
          waiting = null;
        });
        socket.on('secureConnect', () =>
          resolve({
            send: (frame) =>
              closed
                ? Promise.resolve('closed')
                : new Promise((r) => {
                    waiting = r;
                    socket.write(frame);
                  }),
            destroy: () => socket.destroy(),
          }),
        );
      });
    const outcomes = { answered: 0, closed: 0 };
    const fuzz = async (frames: number) => {
      let conn = await open();
      for (let i = 0; i < frames; i++) {
        const pick = rand.next();
        const frame = pick < 0.75 ? mutate(valid[i % valid.length]!) : pick < 0.9 ? valid[i % valid.length]! : random();
        const outcome = await conn.send(frame);
        outcomes[outcome] += 1;
        if (outcome === 'closed') conn = await open();
      }
      conn.destroy();
    };
    // Two fuzzing connections of 1,500 frames each, while a valid client keeps working.
    const work = async () => {
      for (let i = 0; i < 100; i++) await app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(32) });
    };
    await Promise.all([fuzz(1500), fuzz(1500), work()]);
    expect(outcomes.answered + outcomes.closed).to.equal(3000);
    expect(outcomes.answered, 'frames that decode are answered').to.be.greaterThan(500);
    expect(outcomes.closed, 'frames that do not decode close their connection').to.be.greaterThan(50);
    expect((await app.send({ op: 'generateRandom', length: 4 })).data).to.have.length(4);
    expect(await state()).to.equal(before);
    await cluster.close();
  });

  it('connect refuses bad options with a clear error', async () => {
    const bad = async (options: unknown, pattern: RegExp) => {
      const e = await connect(options as never).then(() => null, (err: unknown) => err);
      expect(e).to.be.instanceOf(HsmError);
      expect((e as HsmError).code).to.equal('BAD_REQUEST');
      expect((e as HsmError).message).to.match(pattern);
    };
    await bad({ members: [], ca: 'x', cert: 'x', key: 'x' }, /members: at least one/);
    await bad({ members: ['no-port'], ca: 'x', cert: 'x', key: 'x' }, /expected host:port/);
    await bad({ members: [f.address], cert: 'x', key: 'x' }, /^ca: required/);
  });

  it('closing a member ends the connections still in their TLS handshake, so a stalled client does not hold it open', async function () {
    this.timeout(15_000);
    const g = await startMember();
    const raw = netConnect(g.served.port, '127.0.0.1');
    raw.on('error', () => undefined);
    const ended = new Promise((resolve) => raw.once('close', resolve));
    // The member has taken the connection, which sends nothing: no ClientHello.
    await waitUntil(() => new Promise<boolean>((resolve) => g.served.server.getConnections((_e, n) => resolve(n === 1))), 'the member to take the connection');
    await g.served.close();
    await ended;
    expect(raw.destroyed).to.equal(true);
    await g.member.close();
    rmSync(g.dir, { recursive: true, force: true });
  });
});

describe('cli: strongroom hsm serve', function () {
  this.timeout(60_000);

  it('at first start writes the cluster CSR and says what to do, exiting 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-serve-'));
    try {
      const e = await run(process.execPath, [...CLI, 'hsm', 'serve', '--listen', '127.0.0.1:0', '--data-dir', dir]).then(
        () => null,
        (err: { code: number; stdout: string }) => err,
      );
      expect(e?.code).to.equal(2);
      expect(e?.stdout).to.match(/cluster CSR is .*member\.csr/);
      expect(e?.stdout).to.match(/sign it with your trust anchor/);
      expect(readFileSync(join(dir, 'member.csr'), 'utf8')).to.match(/BEGIN CERTIFICATE REQUEST/);
      expect(existsSync(join(dir, 'member.key'))).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad --listen', async () => {
    const e = await run(process.execPath, [...CLI, 'hsm', 'serve', '--listen', 'nowhere', '--data-dir', tmpdir()]).then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    expect(e?.code).to.equal(1);
    expect(e?.stderr).to.match(/--listen: expected host:port/);
  });
});
