/**
 * The relay, from Node: the browser client (the same module the bundle is built from) over the
 * `ws` package. Round trips, capabilities, version skew, and the security cases: an origin not
 * allowed, a connection that never logs in, a wrong password (counted towards the lockout), a
 * flood, a page that stops reading, fuzzed and oversized frames, idle connections. In each case the relay keeps serving a
 * good client.
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { decode, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { startRelay, type Relay } from '../../src/relay/index.js';
import { RELAY_BATCH_MAX } from '../../src/relay/protocol.js';
import { connectRelay, type RelayConnection } from '../../src/browser/index.js';
import { HsmError } from '../../src/hsm-core/index.js';
import type { CryptoKeyPair } from '../../src/subtle/types.js';
import { refusal, rejection } from '../helpers/refusal.js';
import { waitUntil } from '../helpers/wait.js';

const enc = new TextEncoder();

/** The ws package's WebSocket, sending the Origin a page on `origin` would. */
function socketFrom(origin: string) {
  return class extends WebSocket {
    constructor(url: string) {
      super(url, { origin });
    }
  } as unknown as new (url: string) => globalThis.WebSocket;
}

/** {@link socketFrom}, keeping each socket it opens (to watch or cut the connection underneath). */
function capturingFrom(origin: string) {
  const sockets: WebSocket[] = [];
  const Socket = class extends WebSocket {
    constructor(url: string) {
      super(url, { origin });
      sockets.push(this);
    }
  } as unknown as new (url: string) => globalThis.WebSocket;
  return { Socket, sockets };
}

/** A raw connection: sends `data`, resolves with how the relay closed it. */
function rawClose(url: string, origin: string, send: (ws: WebSocket) => void): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin });
    ws.on('open', () => send(ws));
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.on('error', reject);
  });
}

describe('relay: pages reach the HSM over WebSocket', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let relay: Relay;
  let wsUrl: string;
  let Socket: new (url: string) => globalThis.WebSocket;
  const logs: string[] = [];
  let good: RelayConnection;

  before(async () => {
    cluster = await startLocalCluster({
      adminPassword: 'admin-password',
      passwordCost: 10,
      users: [
        { username: 'app', password: 'app-password', role: 'crypto-user' },
        { username: 'victim', password: 'victim-password', role: 'crypto-user' },
      ],
    });
    relay = await startRelay({ cluster, port: 0, maxInFlight: 16, maxMessageBytes: 64 * 1024, log: (l) => logs.push(l) });
    wsUrl = `${relay.url.replace('http', 'ws')}/ws`;
    Socket = socketFrom(relay.url);
    good = await connectRelay(wsUrl, { username: 'app', password: 'app-password' }, { WebSocket: Socket });
  });
  after(async () => {
    await good?.logout().catch(() => undefined);
    await relay?.close();
    await cluster?.close();
  });

  /** The good client still works. */
  async function stillServes(): Promise<void> {
    const digest = await good.crypto.subtle.digest('SHA-256', enc.encode('abc'));
    expect(Buffer.from(digest).toString('hex')).to.equal('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  }

  it('says what it offers and signs, verifies, encrypts and refuses exports like the Node door', async () => {
    expect(good.protocolVersion).to.equal(2);
    expect(good.capabilities.protocolVersion).to.equal(2);
    expect(good.capabilities.algorithms).to.include.members(['ECDSA', 'AES-GCM', 'RSA-PSS', 'Ed25519', 'HMAC']);
    expect(good.capabilities.operations).to.include('sign');
    const subtle = good.crypto.subtle;
    const pair = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
    const data = enc.encode('hello from a page');
    const signature = await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, data);
    expect(await subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, pair.publicKey, signature, data)).to.equal(true);
    const spki = await subtle.exportKey('spki', pair.publicKey);
    const nodeKey = await crypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
    expect(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, nodeKey, signature, data)).to.equal(true);
    const refused = await rejection(subtle.exportKey('pkcs8', pair.privateKey));
    expect(refused.name).to.equal('InvalidAccessError');
    const aes = await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await subtle.encrypt({ name: 'AES-GCM', iv }, aes, data);
    expect(new TextDecoder().decode(await subtle.decrypt({ name: 'AES-GCM', iv }, aes, ct))).to.equal('hello from a page');
    const bad = await rejection(subtle.decrypt({ name: 'AES-GCM', iv }, aes, new Uint8Array(ct).fill(1)));
    expect(bad.name).to.equal('OperationError');
    const keys = await good.listKeys();
    expect(keys.keys.length).to.be.greaterThan(2);
    expect(keys.keys[0]).to.have.property('clusterCoverage');
  });

  it('refuses a page that speaks another protocol version, naming both sides\' versions', async () => {
    const e = await rejection(connectRelay(wsUrl, { username: 'app', password: 'app-password' }, { WebSocket: Socket, versions: [3, 4] }));
    expect(e.message).to.contain('this relay speaks protocol version 1, 2; the page speaks 3, 4');
    await stillServes();
  });

  it('a version 1 page is served one message at a time and never receives a batch', async () => {
    const { Socket: Capturing, sockets } = capturingFrom(relay.url);
    const old = await connectRelay(wsUrl, { username: 'app', password: 'app-password' }, { WebSocket: Capturing, versions: [1] });
    const received: unknown[] = [];
    sockets[0]!.on('message', (d: Buffer) => received.push(decode(d)));
    expect([old.protocolVersion, old.capabilities.protocolVersion]).to.deep.equal([1, 1]);
    // 12 at once, within this relay's 16 in flight (20 were refused RELAY_BUSY when their messages
    // arrived in one read, before any was answered).
    const digests = await Promise.all(Array.from({ length: 12 }, (_, i) => old.crypto.subtle.digest('SHA-256', new Uint8Array([i]))));
    expect(digests.map((d) => Buffer.from(d).toString('hex'))).to.deep.equal(Array.from({ length: 12 }, (_, i) => createHash('sha256').update(new Uint8Array([i])).digest('hex')));
    // The 12 answers (and that of the session's first request, for its pool of random bytes), one by one.
    expect(received).to.have.length(13);
    expect(received.filter(Array.isArray)).to.deep.equal([]);
    await old.logout();
  });

  it('version 2 carries batches: requests sent together are each answered, and answers come back together', async () => {
    const answers: unknown[] = [];
    const ws = new WebSocket(wsUrl, { origin: relay.url });
    const next = () => new Promise<unknown>((resolve) => ws.once('message', (d: Buffer) => resolve(decode(d))));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(encode({ id: 1, type: 'hello', versions: [1, 2] }));
    expect(await next()).to.deep.include({ id: 1, ok: true, result: { version: 2, server: 'strongroom-relay', versions: [1, 2] } });
    ws.send(encode([{ id: 2, type: 'capabilities' }, { id: 3, type: 'login', username: 'app', password: 'app-password' }]));
    while (answers.length < 2) answers.push(...[await next()].flat());
    expect(answers.map((a) => (a as { id: number; ok: boolean }).ok)).to.deep.equal([true, true]);
    const inputs = Array.from({ length: 10 }, (_, i) => new Uint8Array([i, i]));
    ws.send(encode([...inputs.map((data, i) => ({ id: 10 + i, type: 'request', request: { op: 'digest', hash: 'sha256', data } })), { id: 20, type: 'request', request: { op: 'extractMaskedObject', handle: 1 } }]));
    const batch = await next();
    // Every request's answer, and all of them finished in one turn: one message back.
    expect(batch).to.be.an('array').with.length(11);
    const byId = new Map((batch as { id: number; ok: boolean; result?: { digest: Uint8Array }; error?: { message: string } }[]).map((a) => [a.id, a]));
    for (const [i, data] of inputs.entries()) expect(Buffer.from(byId.get(10 + i)!.result!.digest).toString('hex')).to.equal(createHash('sha256').update(data).digest('hex'));
    expect(byId.get(20)!.error!.message).to.contain('not offered through the relay');
    ws.close();
  });

  it(`a turn's answers, and a page's requests, leave in batches of at most ${RELAY_BATCH_MAX}`, async () => {
    // A relay that takes them all in flight (this suite's takes 16).
    const wide = await startRelay({ cluster, port: 0, maxInFlight: 64 });
    const url = `${wide.url.replace('http', 'ws')}/ws`;
    const ws = new WebSocket(url, { origin: wide.url });
    const messages: unknown[] = [];
    ws.on('message', (d: Buffer) => messages.push(decode(d)));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(encode({ id: 1, type: 'hello', versions: [2] }));
    ws.send(encode({ id: 2, type: 'login', username: 'app', password: 'app-password' }));
    await waitUntil(() => messages.length === 2, 'hello and login answered');
    const count = RELAY_BATCH_MAX + 8;
    ws.send(encode(Array.from({ length: count }, (_, i) => ({ id: 10 + i, type: 'request', request: { op: 'digest', hash: 'sha256', data: new Uint8Array([i]) } }))));
    await waitUntil(() => messages.slice(2).flat().length === count, 'every digest answered');
    // All finished in one turn: the first batch leaves when it is full, the rest when the turn ends.
    expect(messages.slice(2).map((m) => (m as unknown[]).length)).to.deep.equal([RELAY_BATCH_MAX, 8]);
    expect(messages.slice(2).flat().map((a) => (a as { id: number }).id)).to.have.members(Array.from({ length: count }, (_, i) => 10 + i));
    ws.close();

    const { Socket: Capturing, sockets } = capturingFrom(wide.url);
    const page = await connectRelay(url, { username: 'app', password: 'app-password' }, { WebSocket: Capturing });
    await page.crypto.subtle.digest('SHA-256', new Uint8Array(1));
    // What the page sends: each message's requests, by op.
    const sent: string[][] = [];
    const send = sockets[0]!.send.bind(sockets[0]!);
    sockets[0]!.send = ((data: Uint8Array) => {
      type Sent = { type: string; request?: { op: string } };
      const m = decode(data) as Sent | Sent[];
      sent.push((Array.isArray(m) ? m : [m]).map((r) => r.request?.op ?? r.type));
      send(data);
    }) as typeof send;
    const digests = await Promise.all(Array.from({ length: count }, (_, i) => page.crypto.subtle.digest('SHA-256', new Uint8Array([i]))));
    expect(digests.map((d) => Buffer.from(d).toString('hex'))).to.deep.equal(Array.from({ length: count }, (_, i) => createHash('sha256').update(new Uint8Array([i])).digest('hex')));
    // The 40 digests (and the door's request for its pool of random bytes, when it refills it) in a full batch and the rest.
    expect(sent.map((b) => b.length)).to.have.length(2);
    expect(sent[0]).to.have.length(RELAY_BATCH_MAX);
    expect(sent.flat().filter((op) => op === 'digest')).to.have.length(count);
    sockets[0]!.send = send;
    await page.logout();
    await wide.close();
  });

  it('a bad batch closes the connection before any of its requests is handled', async () => {
    const origin = relay.url;
    // Whether the generateKey in a bad batch ran is in the audit log: its key would be a session
    // key, gone with the connection, and other connections' session keys come and go meanwhile.
    const auditBefore = (await cluster.hsmInfo())[0]!.auditHead.sequence;
    const afterLogin = (tail: unknown) => (ws: WebSocket) => {
      ws.send(encode({ id: 1, type: 'hello', versions: [2] }));
      ws.send(encode({ id: 2, type: 'login', username: 'app', password: 'app-password' }));
      ws.once('message', () => ws.once('message', () => ws.send(encode(tail))));
    };
    const generate = { id: 3, type: 'request', request: { op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true } } };
    expect(await rawClose(wsUrl, origin, afterLogin([generate, 7]))).to.deep.equal({ code: 1007, reason: 'a batch with an element that is not a MessagePack map' });
    expect(await rawClose(wsUrl, origin, afterLogin([generate, { type: 'capabilities' }]))).to.deep.equal({ code: 1002, reason: 'a message without a positive integer id' });
    expect(await rawClose(wsUrl, origin, afterLogin([]))).to.deep.equal({ code: 1007, reason: 'an empty batch' });
    expect(await rawClose(wsUrl, origin, (ws) => ws.send(encode([{ id: 1, type: 'hello', versions: [2] }])))).to.deep.equal({ code: 1007, reason: 'a batch before protocol version 2 was agreed (send each message alone)' });
    const since = (await cluster.readAuditLog(0, auditBefore + 1)).records;
    expect(since.filter((r) => r.opcode === 'CN_LOGIN' && r.user === 'app')).to.have.length(3);
    expect(since.filter((r) => r.opcode === 'CN_GENERATE_KEY')).to.deep.equal([]);
    await stillServes();
  });

  it('refuses an origin that is not allowed, before any message', async () => {
    const e = await rejection(connectRelay(wsUrl, { username: 'app', password: 'app-password' }, { WebSocket: socketFrom('http://evil.example') }));
    expect(e).to.be.instanceOf(HsmError);
    expect(logs.some((l) => l.includes('origin http://evil.example is not allowed'))).to.equal(true);
    await stillServes();
  });

  it('a connection that never logs in can do nothing but hello and capabilities', async () => {
    const answers: unknown[] = [];
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(wsUrl, { origin: relay.url });
      ws.on('open', () => {
        ws.send(encode({ id: 1, type: 'request', request: { op: 'generateRandom', length: 8 } }));
        ws.send(encode({ id: 2, type: 'hello', versions: [1] }));
        ws.send(encode({ id: 3, type: 'request', request: { op: 'generateRandom', length: 8 } }));
      });
      ws.on('message', (d: Buffer) => {
        answers.push(JSON.stringify(decode(d)));
        if (answers.length === 3) {
          ws.close();
          resolve();
        }
      });
    });
    const text = answers.join(' ');
    expect(text).to.contain('send hello');
    expect(text).to.contain('log in first');
    await stillServes();
  });

  it('a wrong password is refused and counts towards the lockout', async () => {
    const e = await rejection(connectRelay(wsUrl, { username: 'victim', password: 'not-the-password' }, { WebSocket: Socket }));
    expect(e.message).to.contain('wrong password for victim; 4 more failed logins lock the user');
    const users = await cluster.listUsers();
    expect(users.find((u) => u.username === 'victim')!.failedLogins).to.equal(1);
    await stillServes();
  });

  it('operations outside its list are refused, and a request may not carry a session', async () => {
    const e = await rejection(good.send({ op: 'extractMaskedObject', handle: 1 } as never));
    expect(e.message).to.contain('not offered through the relay');
    const s = await rejection(good.send({ op: 'generateRandom', length: 4, session: 'x' } as never));
    expect(s.message).to.contain('no session field');
  });

  it('a flood beyond the in-flight limit is answered RELAY_BUSY; the flooder and others carry on', async () => {
    const flooder = await connectRelay(wsUrl, { username: 'app', password: 'app-password' }, { WebSocket: Socket });
    // 200 requests of 512 bytes made at once: 100 KiB, sent as batches within the relay's 64 KiB message limit.
    const results = await Promise.allSettled(Array.from({ length: 200 }, () => flooder.crypto.subtle.digest('SHA-256', randomBytes(512))));
    const busy = results.filter((r) => r.status === 'rejected');
    expect(busy.length).to.be.greaterThan(0);
    expect(results.length - busy.length).to.be.greaterThan(0);
    expect(String((busy[0] as PromiseRejectedResult).reason.message)).to.contain('requests in flight');
    expect((await flooder.crypto.subtle.digest('SHA-256', new Uint8Array(1))).byteLength).to.equal(32);
    await stillServes();
    await flooder.logout();
  });

  it('a page that stops reading has its requests left unread while its answers back up, and all answered once it reads', async () => {
    // The requests the relay takes, counted where it hands them to the HSM.
    let taken = 0;
    const counting = {
      login: async (username: string, password: string, options?: Parameters<LocalCluster['login']>[2]) => {
        const s = await cluster.login(username, password, options);
        const send = s.send.bind(s);
        s.send = ((request: never) => {
          taken += 1;
          return send(request);
        }) as typeof s.send;
        return s;
      },
    };
    const told: string[] = [];
    // In flight enough for the whole flood, so that nothing is refused RELAY_BUSY.
    const slow = await startRelay({ cluster: counting, port: 0, maxInFlight: 4096, log: (l) => told.push(l) });
    const ws = new WebSocket(`${slow.url.replace('http', 'ws')}/ws`, { origin: slow.url });
    const answers = new Map<number, { ok: boolean; result?: { data: Uint8Array } }>();
    ws.on('message', (d: Buffer) => {
      for (const a of [decode(d)].flat() as { id: number; ok: boolean; result?: { data: Uint8Array } }[]) answers.set(a.id, a);
    });
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(encode({ id: 1, type: 'hello', versions: [2] }));
    ws.send(encode({ id: 2, type: 'login', username: 'app', password: 'app-password' }));
    await waitUntil(() => answers.size === 2, 'hello and login answered');
    taken = 0;
    // 200 messages of 16 requests for 64 KiB each (200 MiB of answers), and the page stops reading.
    const MESSAGES = 200;
    const TOTAL = MESSAGES * 16;
    const held = () => told.some((l) => l.includes('is not reading its answers'));
    ws.pause();
    for (let m = 0; m < MESSAGES; m++) {
      const before = taken;
      ws.send(encode(Array.from({ length: 16 }, (_, i) => ({ id: 10 + m * 16 + i, type: 'request', request: { op: 'generateRandom', length: 65_536 } }))));
      // One message at a time while the relay takes them, so that they are not read all at once.
      if (!held()) await waitUntil(() => taken === before + 16 || held(), `message ${m} taken, or the relay holding the page`);
    }
    // Wait until the relay takes no more: the count stays still for a while.
    let last = -1;
    for (let still = 0; still < 5; ) {
      await new Promise((r) => setTimeout(r, 40));
      still = taken === last ? still + 1 : 0;
      last = taken;
    }
    expect(taken, `${taken} requests taken while the page did not read`).to.be.below(TOTAL / 3);
    expect(held(), 'the relay logs that the page is not reading').to.equal(true);
    ws.resume();
    await waitUntil(() => answers.size === TOTAL + 2, 'every request answered', 60_000);
    expect([...answers.values()].every((a) => a.ok)).to.equal(true);
    expect(answers.get(10 + TOTAL - 1)!.result!.data.byteLength).to.equal(65_536);
    ws.close();
    await slow.close();
  });

  it('fuzzed, text and oversized frames close only that connection, with a reason', async () => {
    const origin = relay.url;
    expect(await rawClose(wsUrl, origin, (ws) => ws.send('{"id":1,"type":"hello"}'))).to.deep.equal({ code: 1003, reason: 'binary MessagePack messages only' });
    expect((await rawClose(wsUrl, origin, (ws) => ws.send(Buffer.from([0xc1, 0xff, 0x00])))).code).to.equal(1007);
    expect((await rawClose(wsUrl, origin, (ws) => ws.send(encode([1, 2, 3])))).code).to.equal(1007);
    expect((await rawClose(wsUrl, origin, (ws) => ws.send(encode({ type: 'hello' })))).code).to.equal(1002);
    expect((await rawClose(wsUrl, origin, (ws) => ws.send(randomBytes(70 * 1024)))).code).to.equal(1009);
    for (let i = 0; i < 200; i++) {
      const closed = await rawClose(wsUrl, origin, (ws) => {
        ws.send(randomBytes(1 + (i % 64)));
        setTimeout(() => ws.close(), 20);
      });
      expect(closed.code).to.be.oneOf([1000, 1002, 1005, 1007]);
    }
    await stillServes();
    expect(logs.join('\n')).to.not.contain('app-password');
  });

  it('refuses limits that are not positive integers, naming the option', async () => {
    for (const [options, message] of [
      [{ maxInFlight: 0 }, 'maxInFlight: a positive integer, got 0'],
      [{ maxMessageBytes: 1.5 }, 'maxMessageBytes: a positive integer, got 1.5'],
      [{ maxConnections: -1 }, 'maxConnections: a positive integer, got -1'],
      [{ idleTimeoutMs: Number.NaN }, 'idleTimeoutMs: a positive integer, got NaN'],
    ] as const) {
      const e = await refusal(startRelay({ cluster, port: 0, ...options }));
      expect([e.code, e.message]).to.deep.equal(['BAD_REQUEST', message]);
    }
  });

  it('refuses connections beyond its limit, and takes new ones when others leave', async () => {
    const smallLog: string[] = [];
    const small = await startRelay({ cluster, port: 0, maxConnections: 2, log: (l) => smallLog.push(l) });
    const url = `${small.url.replace('http', 'ws')}/ws`;
    const S = socketFrom(small.url);
    try {
      const a = await connectRelay(url, { username: 'app', password: 'app-password' }, { WebSocket: S });
      const b = await connectRelay(url, { username: 'app', password: 'app-password' }, { WebSocket: S });
      const refused = await rejection(connectRelay(url, { username: 'app', password: 'app-password' }, { WebSocket: S }));
      // A page cannot see why a WebSocket was refused; the relay's log says it.
      expect(refused).to.be.instanceOf(HsmError).and.to.include({ code: 'MEMBER_UNAVAILABLE' });
      expect(smallLog.filter((l) => l.startsWith('refused'))).to.deep.equal(['refused a WebSocket connection: the relay serves 2 connections, its limit; try again later']);
      expect(small.connections).to.equal(2);
      expect((await a.crypto.subtle.digest('SHA-256', new Uint8Array(1))).byteLength).to.equal(32);
      await b.logout();
      await waitUntil(() => small.connections === 1, 'the relay to see the connection go');
      const c = await connectRelay(url, { username: 'app', password: 'app-password' }, { WebSocket: S });
      await c.logout();
      await a.logout();
    } finally {
      await small.close();
    }
  });

  it('a connection that drops without logging out ends its HSM session, and its session keys go', async () => {
    const { Socket: Capturing, sockets } = capturingFrom(relay.url);
    const [before] = await cluster.hsmInfo();
    const page = await connectRelay(wsUrl, { username: 'app', password: 'app-password' }, { WebSocket: Capturing });
    await page.crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const [during] = await cluster.hsmInfo();
    expect([during!.keys, during!.sessions]).to.deep.equal([before!.keys + 1, before!.sessions + 1]);
    sockets[0]!.terminate();
    await waitUntil(async () => {
      const [now] = await cluster.hsmInfo();
      return now!.keys === before!.keys && now!.sessions === before!.sessions;
    }, 'the dropped connection\'s session and session key to end');
  });

  it('session keys die with their connection; an idle connection is closed', async () => {
    // A cluster of its own: the file's other pages keep sessions open, whose collected CryptoKeys
    // delete their keys whenever the garbage collector runs, which would move the count.
    const own = await startLocalCluster({ adminPassword: 'admin-password', passwordCost: 10, users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }] });
    const ownRelay = await startRelay({ cluster: own, port: 0 });
    try {
      const before = (await own.hsmInfo())[0]!.keys;
      const page = await connectRelay(`${ownRelay.url.replace('http', 'ws')}/ws`, { username: 'app', password: 'app-password' }, { WebSocket: socketFrom(ownRelay.url) });
      await page.crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      expect((await own.hsmInfo())[0]!.keys).to.equal(before + 1);
      await page.logout();
      expect((await own.hsmInfo())[0]!.keys).to.equal(before);
    } finally {
      await ownRelay.close();
      await own.close();
    }

    const idle = await startRelay({ cluster, port: 0, idleTimeoutMs: 150 });
    try {
      const closed = await rawClose(`${idle.url.replace('http', 'ws')}/ws`, idle.url, () => undefined);
      expect(closed.code).to.equal(1001);
      expect(closed.reason).to.contain('idle');
    } finally {
      await idle.close();
    }
  });
});
