import { startLocalCluster } from './src/index.ts';
import { servePkcs11 } from './src/pkcs11/server.ts';
const cluster = await startLocalCluster({ adminPassword: 'admin-password', passwordCost: 10, users: [{ username: 'cu1', password: 'cu1-password', role: 'crypto-user' }] });
const door = await servePkcs11({ cluster, socket: '/tmp/p11dir/strongroom.sock', objectsFolder: '/tmp/p11dir/objects', clusterId: 'c1', log: (l) => console.error(l) });
console.log('ready');
process.on('SIGINT', async () => { await door.close(); await cluster.close(); process.exit(0); });
