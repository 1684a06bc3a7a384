/**
 * `strongroom hsm serve`: one member on the network, behind mutual TLS (see hsm-core/hosts/tls.ts).
 *
 * At first start in an empty data folder it writes the member's cluster CSR and stops, saying
 * what to do: sign it with your trust anchor, save the result as member.crt beside it with your
 * trust anchor's certificate as customerCA.crt, and start again. (`startLocalCluster` with
 * `transport: 'tls'` and `strongroom up` do all of this themselves.)
 *
 * From the environment: STRONGROOM_APPLIANCE_PASSWORD, the appliance user's password (for the
 * supervisor that joins and repairs members; without it nobody can log in as the appliance user);
 * STRONGROOM_MASTER_PASSPHRASE, protecting the storage key of the data folder;
 * STRONGROOM_SERVICE_KEY and STRONGROOM_MANUFACTURER_KEY (64 hex characters each), the backup
 * keys (AKBK and MKBK; without a service key the member makes no backups);
 * STRONGROOM_APPLIANCE_CERT_SHA256, the fingerprint of the supervisor's client certificate, which
 * mTLS enforcement (`cluster mtls set-enforcement`) never refuses.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createMember, ensureClusterCsr, lockFolder, serveMember, useThreadPool, HsmError, MEMBER_FILES, type ProfileName } from '../hsm-core/index.js';

export interface ServeCommand {
  listen: string;
  dataDir: string;
  memberIndex: number;
  profile: ProfileName;
  queueLimit?: number;
  passwordCost?: number;
  mode?: 'fips' | 'non-fips';
  log: (line: string) => void;
}

function keyFromEnv(name: string): Uint8Array | undefined {
  const hex = process.env[name];
  if (hex === undefined || hex === '') return undefined;
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new HsmError('BAD_REQUEST', `${name}: 64 hexadecimal characters (32 bytes)`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export async function hsmServe(options: ServeCommand): Promise<{ close(): Promise<void>; port: number } | null> {
  const m = /^(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(options.listen);
  if (!m || Number(m[2]) > 65535) throw new HsmError('BAD_REQUEST', `--listen: expected host:port (e.g. 127.0.0.1:2223), got ${JSON.stringify(options.listen)}`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  // A folder another process has open is refused before anything is written to it.
  if (existsSync(options.dataDir)) lockFolder(options.dataDir, 'data folder').release();
  if (!existsSync(join(options.dataDir, MEMBER_FILES.cert))) {
    await ensureClusterCsr(options.dataDir, `strongroom member ${options.memberIndex}`);
    options.log(`strongroom hsm: no certificate yet. The cluster CSR is ${join(options.dataDir, MEMBER_FILES.csr)}:`);
    options.log(`  sign it with your trust anchor, save the certificate as ${join(options.dataDir, MEMBER_FILES.cert)}`);
    options.log(`  and your trust anchor's certificate as ${join(options.dataDir, MEMBER_FILES.ca)}, then start again.`);
    return null;
  }
  if ((keyFromEnv('STRONGROOM_SERVICE_KEY') === undefined) !== (keyFromEnv('STRONGROOM_MANUFACTURER_KEY') === undefined)) {
    throw new HsmError('BAD_REQUEST', 'STRONGROOM_SERVICE_KEY and STRONGROOM_MANUFACTURER_KEY: give both (the installation\'s backup keys) or neither (no backups)');
  }
  // One process per member: it signs on its own thread (see hsm-core/mechanisms/pool.ts).
  useThreadPool(false);
  const member = await createMember({
    profile: options.profile,
    memberIndex: options.memberIndex,
    // The member's keys, users and audit log live in the same folder (store/, storage-key).
    dataDir: options.dataDir,
    ...(options.mode !== undefined ? { mode: options.mode } : {}),
    ...(keyFromEnv('STRONGROOM_SERVICE_KEY') ? { serviceKey: keyFromEnv('STRONGROOM_SERVICE_KEY')! } : {}),
    ...(keyFromEnv('STRONGROOM_MANUFACTURER_KEY') ? { manufacturerKey: keyFromEnv('STRONGROOM_MANUFACTURER_KEY')! } : {}),
    ...(process.env.STRONGROOM_APPLIANCE_PASSWORD ? { appliancePassword: process.env.STRONGROOM_APPLIANCE_PASSWORD } : {}),
    ...(options.queueLimit !== undefined ? { queueLimit: options.queueLimit } : {}),
    ...(options.passwordCost !== undefined ? { passwordCost: options.passwordCost } : {}),
  });
  const served = await serveMember({
    member,
    dataDir: options.dataDir,
    host,
    port: Number(m[2]),
    ...(process.env.STRONGROOM_APPLIANCE_CERT_SHA256 ? { applianceCertificate: process.env.STRONGROOM_APPLIANCE_CERT_SHA256 } : {}),
    log: (line) => options.log(`strongroom hsm: ${line}`),
  });
  const shown = host.includes(':') ? `[${host}]` : host;
  options.log(`strongroom hsm: member ${options.memberIndex} listening on ${shown}:${served.port} (mutual TLS 1.3)`);
  return {
    port: served.port,
    close: async () => {
      await served.close();
      await member.close();
    },
  };
}
