import { startLocalCluster } from '../src/index.js';
import { rate } from './measure.js';
const kib = new Uint8Array(1024).fill(7);
const which = process.argv[2];
const cluster = await startLocalCluster({ adminPassword: 'bench-admin-password', users: [{ username: 'b', password: 'bench-password', role: 'crypto-user' }] });
const s = await cluster.login('b', 'bench-password');
const subtle = s.crypto.subtle as any;
const ed = await subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
const ec = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
const edRaw = await s.send({ op: 'generateKeyPair', keyType: 'ed25519', privateAttributes: { sign: true } } as any) as any;
const ECDSA = { name: 'ECDSA', hash: 'SHA-256' };
const ops: Record<string, () => Promise<unknown>> = {
  ed: () => subtle.sign('Ed25519', ed.privateKey, kib),
  edobj: () => subtle.sign({ name: 'Ed25519' }, ed.privateKey, kib),
  edraw: () => s.send({ op: 'sign', handle: edRaw.privateHandle, mechanism: { name: 'ed25519' }, data: kib } as any),
  ec: () => subtle.sign(ECDSA, ec.privateKey, kib),
};
const r = await rate(ops[which]!, 32, 4);
console.log(which, r.toFixed(0));
await s.logout(); await cluster.close();
