/**
 * Where the cluster sends a request (cluster.ts: handlesOf and the session's sticky member): a
 * request that names a session key — in any of the fields that name keys — goes to the member
 * that holds it, whatever member the balancing would have picked. And a session field of the
 * request's own never replaces the session's token.
 */
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { type HsmSession, type LocalCluster } from '../../src/index.js';
import { startTestCluster } from '../helpers/cluster.js';
import { waitUntil } from '../helpers/wait.js';

/** A test cluster for the enclosing describe, started before its tests and closed after, with `app` logged in (given to `use`). */
function withApp(use: (app: HsmSession) => void): void {
  let cluster: LocalCluster | undefined;
  before(async () => {
    cluster = await startTestCluster();
    use(await cluster.login('app', 'app-password'));
  });
  after(async () => cluster?.close());
}

describe('cluster-client: requests that name session keys go to their member', function () {
  this.timeout(60_000);
  let app: HsmSession;
  withApp((session) => (app = session));

  /** Sends the same request four times: balancing alone would send some of them to another member. */
  const everyTime = async (request: Parameters<HsmSession['send']>[0]) => {
    for (let i = 0; i < 4; i++) await app.send(request);
  };
  const secret = async (attributes: Record<string, unknown>) => (await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes })).handle;

  it('wrapping, payload and unwrapping keys', async () => {
    const sessionKek = await secret({ wrap: true, unwrap: true });
    const tokenKek = await secret({ token: true, wrap: true });
    const tokenPayload = await secret({ token: true });
    const sessionPayload = await secret({});
    await everyTime({ op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: sessionKek, payloadHandle: tokenPayload });
    await everyTime({ op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: tokenKek, payloadHandle: sessionPayload });
    const { wrapped } = await app.send({ op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: sessionKek, payloadHandle: tokenPayload });
    await everyTime({ op: 'unwrapKey', mechanism: { name: 'aes-no-pad' }, unwrappingHandle: sessionKek, wrapped, keyClass: 'secret-key', keyType: 'aes' });
  });

  it('base keys and ECDH peers', async () => {
    const base = (await app.send({ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 32, attributes: { derive: true } })).handle;
    await everyTime({ op: 'deriveBits', baseHandle: base, mechanism: { name: 'hkdf', hash: 'sha256', salt: new Uint8Array(0), info: new Uint8Array(0) }, lengthBits: 128 });
    const ours = await app.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { token: true, derive: true }, publicAttributes: { token: true } });
    const theirs = await app.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1' });
    await everyTime({ op: 'deriveBits', baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: theirs.publicHandle } });
    const bits = await app.send({ op: 'deriveBits', baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: theirs.publicHandle } });
    expect(bits.bits).to.have.length(32);
  });
});

describe('cluster-client: session keys made on different members, used together', function () {
  this.timeout(60_000);
  let app: HsmSession;
  withApp((session) => (app = session));

  const home = (handle: number) => handle % 32;
  /** Session keys made at once until two of them are on different members: [first, second]. */
  async function onTwoMembers(make: () => Promise<number>): Promise<[number, number]> {
    for (let round = 0; round < 10; round++) {
      const handles = await Promise.all(Array.from({ length: 6 }, make));
      const other = handles.find((h) => home(h) !== home(handles[0]!));
      if (other !== undefined) return [handles[0]!, other];
    }
    throw new Error('every key was made on one member');
  }
  const gone = async (member: number, handle: number) => {
    const r = await app.sendToMember(member, { op: 'getAttributes', handle }).then(() => 'found', (e: { code: string }) => e.code);
    return r === 'KEY_NOT_FOUND';
  };

  it('a wrap moves the payload to the wrapping key\'s member (masked, within the session); unwrapping gives the same key', async () => {
    const [kek, payload] = await onTwoMembers(async () => (await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { wrap: true, unwrap: true, extractable: true, sensitive: false } })).handle);
    const payloadHome = home(payload);
    const bytesOf = async (handle: number) => Buffer.from((await app.send({ op: 'exportKey', handle, format: 'raw' })).keyData as Uint8Array).toString('hex');
    const original = await bytesOf(payload);
    const { wrapped, iv } = await app.send({ op: 'wrapKey', mechanism: { name: 'aes-gcm' }, wrappingHandle: kek, payloadHandle: payload });
    // The payload now lives beside the wrapping key, under the same handle, and left its member.
    expect((await app.sendToMember(home(kek), { op: 'getAttributes', handle: payload })).attributes).to.include({ token: false, 'key-type': 'aes' });
    await waitUntil(() => gone(payloadHome, payload), `the copy left on member ${payloadHome} to go`);
    expect(await bytesOf(payload)).to.equal(original);
    const { handle: back } = await app.send({ op: 'unwrapKey', mechanism: { name: 'aes-gcm', iv: iv! }, unwrappingHandle: kek, wrapped, keyClass: 'secret-key', keyType: 'aes', attributes: { extractable: true, sensitive: false } });
    expect(await bytesOf(back)).to.equal(original);
    // Nothing of it reached the other members: session keys are not replicated.
    for (let i = 0; i < 3; i++) if (i !== home(kek)) expect(await gone(i, payload), `member ${i}`).to.equal(true);
  });

  it('an ECDH agreement with a peer key made on another member gives the same secret as from the peer\'s side', async () => {
    const pair = () => app.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { derive: true }, publicAttributes: {} });
    const pairs = await Promise.all(Array.from({ length: 6 }, pair));
    const a = pairs[0]!;
    const b = pairs.find((p) => home(p.privateHandle) !== home(a.privateHandle));
    expect(b, 'two pairs on different members').to.not.equal(undefined);
    const ab = await app.send({ op: 'deriveBits', baseHandle: a.privateHandle, mechanism: { name: 'ecdh', publicHandle: b!.publicHandle } });
    const ba = await app.send({ op: 'deriveBits', baseHandle: b!.privateHandle, mechanism: { name: 'ecdh', publicHandle: a.publicHandle } });
    expect(Buffer.from(ab.bits).toString('hex')).to.equal(Buffer.from(ba.bits).toString('hex'));
    expect(ab.bits).to.have.length(32);
  });

  it('the same key moved by many calls at once moves once, and every call succeeds', async () => {
    const [kek, payload] = await onTwoMembers(async () => (await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { wrap: true, unwrap: true, extractable: true } })).handle);
    const results = await Promise.all(Array.from({ length: 8 }, () => app.send({ op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: kek, payloadHandle: payload })));
    expect(new Set(results.map((r) => Buffer.from(r.wrapped).toString('hex'))).size).to.equal(1);
  });
});

describe('cluster-client: a request names no session of its own', function () {
  this.timeout(60_000);
  let app: HsmSession;
  withApp((session) => (app = session));

  it('a session field in the request is replaced by the session\'s own token, on the quick path and the full one, and the caller\'s object is left as it was', async () => {
    const data = new TextEncoder().encode('whose session?');
    // The quick path (one member, nothing replicated).
    const digestRequest = { op: 'digest', hash: 'sha256', data, session: 'a-token-of-no-session' } as const;
    const { digest } = await app.send(digestRequest as never as { op: 'digest'; hash: 'sha256'; data: Uint8Array });
    expect(Buffer.from(digest).toString('hex')).to.equal(createHash('sha256').update(data).digest('hex'));
    expect(digestRequest.session).to.equal('a-token-of-no-session');
    // The full path (a token key, replicated): made as the session's user.
    const { handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, label: 'whose-session' }, session: 'a-token-of-no-session' } as never as { op: 'generateKey'; keyType: 'aes'; lengthBytes: 32 });
    const info = await app.send({ op: 'getAttributes', handle });
    expect(info.owner).to.equal('app');
    expect(info.attributes).to.include({ label: 'whose-session' });
  });
});
