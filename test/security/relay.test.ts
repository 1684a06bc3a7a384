/**
 * The relay against a page that sends what it likes (issue 14, item 7 and the smaller items): a
 * `listKeys` carrying its own `op` runs nothing but a key search, and a failure inside the relay
 * reaches the page as a fixed sentence, not as the relay's own error text.
 */
import { expect } from 'chai';
import WebSocket from 'ws';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { startRelay, type Relay } from '../../src/relay/index.js';
import { connectRelay } from '../../src/browser/index.js';
import { refusal, rejection } from '../helpers/refusal.js';

describe('security: the relay forwards only what it offers', function () {
  this.timeout(30_000);
  let cluster: LocalCluster;
  let relay: Relay;
  let url: string;
  const logs: string[] = [];
  const Socket = class extends WebSocket {
    constructor(address: string) {
      super(address, { origin: relay.url });
    }
  } as unknown as new (url: string) => globalThis.WebSocket;

  before(async () => {
    cluster = await startLocalCluster({ adminPassword: 'admin-password', passwordCost: 10, users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }] });
    const failingCa = {
      chain: [],
      signCsr: () => {
        throw new Error('internal detail: /srv/ca/private path');
      },
    };
    relay = await startRelay({ cluster, port: 0, ca: failingCa as never, log: (l) => logs.push(l) });
    url = `${relay.url.replace('http', 'ws')}/ws`;
  });
  after(async () => {
    await relay?.close();
    await cluster?.close();
  });

  it('item 7: an admin page\'s listKeys with its own op creates no admin', async () => {
    const page = await connectRelay(url, { username: 'admin', password: 'admin-password' }, { WebSocket: Socket, role: 'admin' });
    try {
      const smuggled = { op: 'createUser', username: 'evil', password: 'evil-password', role: 'admin' };
      const e = await refusal(page.listKeys(smuggled));
      expect(e.code).to.equal('BAD_REQUEST');
      expect(e.message).to.contain('listKeys: request has no op field');
      expect((await cluster.listUsers()).map((u) => u.username)).not.to.include('evil');
      // The same smuggling straight at the session API is a key search with unknown fields.
      const admin = await cluster.login('admin', 'admin-password');
      const direct = await refusal(admin.listKeys(smuggled as never));
      expect(direct.message).to.match(/^findKeys: unknown fields/);
      await admin.logout();
      expect((await cluster.listUsers()).map((u) => u.username)).not.to.include('evil');
    } finally {
      await page.logout();
    }
  });

  it('a failure inside the relay reaches the page as a fixed sentence; its detail goes to the relay\'s log', async () => {
    const page = await connectRelay(url, { username: 'app', password: 'app-password' }, { WebSocket: Socket });
    try {
      const e = await rejection(page.issueCertificate('-----BEGIN CERTIFICATE REQUEST-----'));
      expect((e as { code?: string }).code).to.equal('INTERNAL_ERROR');
      expect(e.message).to.equal("the relay failed to handle this request; it is in the relay's log");
      expect(logs.some((l) => l.includes('internal detail: /srv/ca/private path'))).to.equal(true);
    } finally {
      await page.logout();
    }
  });
});
