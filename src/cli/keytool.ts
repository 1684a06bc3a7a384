/**
 * `strongroom keytool`: Java's keytool against a CloudHSM-style store (CLOUDHSM.md §7). Options
 * are keytool's (`-genkeypair -alias a -keyalg EC …`). The HSM login comes from HSM_USER and
 * HSM_PASSWORD, as CloudHSM's keytool integration requires; the cluster from STRONGROOM_CLUSTER
 * (default `.strongroom/cluster.json`, which `strongroom up` writes).
 *
 * One difference from Java's keytool with CloudHSM: `-genkeypair` makes the key pair in the HSM
 * (non-extractable); CloudHSM's keytool generates it in software and imports it as extractable.
 *
 * @module
 */
import { webcrypto } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadX509 } from '../certificates/index.js';
import { HsmError } from '../hsm-core/client.js';
import { connectFromEnvironment } from '../app/from-env.js';
import type { HsmSession, RemoteCluster } from '../app/index.js';
import { IssuingCa, KeyStore, type CaKeyAlgorithm } from '../keystore/index.js';
import { defaultDataDir } from './data-dir.js';
import { CKA, CKO } from '../pkcs11/constants.js';
import { idOf } from '../pkcs11/objects.js';
import { SideStore, type SideObject } from '../pkcs11/side-store.js';

const COMMANDS: Record<string, { options: string[]; flags?: string[] }> = {
  '-genkeypair': { options: ['-alias', '-keyalg', '-keysize', '-dname', '-validity', '-ext'] },
  '-certreq': { options: ['-alias', '-file'] },
  '-gencert': { options: ['-alias', '-infile', '-outfile', '-validity', '-ext'], flags: ['-rfc'] },
  '-importcert': { options: ['-alias', '-file'], flags: ['-trustcacerts', '-noprompt'] },
  '-importkeystore': { options: ['-srckeystore', '-srcstorepass', '-srcstoretype'], flags: ['-extractable', '-noprompt'] },
  '-exportcert': { options: ['-alias', '-file'], flags: ['-rfc'] },
  '-list': { options: ['-alias'], flags: ['-v', '-rfc'] },
  '-delete': { options: ['-alias'] },
};
const COMMON = ['-keystore', '-storepass', '-storetype'];

export interface KeytoolIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: Record<string, string | undefined>;
}

/** keytool's arguments: the command, then `-name value` options and flags. */
function parse(args: string[]): { command: string; options: Map<string, string>; flags: Set<string> } {
  const command = args[0];
  if (!command || !COMMANDS[command]) throw new HsmError('BAD_REQUEST', `keytool: the first argument is a command: ${Object.keys(COMMANDS).join(', ')}${command ? `; got ${command}` : ''}`);
  const spec = COMMANDS[command]!;
  const options = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (spec.flags?.includes(a)) flags.add(a);
    else if ([...spec.options, ...COMMON].includes(a)) {
      const value = args[++i];
      if (value === undefined) throw new HsmError('BAD_REQUEST', `keytool ${command}: ${a} needs a value`);
      options.set(a, value);
    } else throw new HsmError('BAD_REQUEST', `keytool ${command}: unknown option ${a} (it takes ${[...spec.options, ...COMMON, ...(spec.flags ?? [])].join(' ')})`);
  }
  return { command, options, flags };
}

function need(options: Map<string, string>, name: string, command: string): string {
  const v = options.get(name);
  if (v === undefined) throw new HsmError('BAD_REQUEST', `keytool ${command}: ${name} is required`);
  return v;
}

function algorithmOf(keyalg: string | undefined, keysize: string | undefined): CaKeyAlgorithm {
  const alg = (keyalg ?? 'EC').toUpperCase();
  if (alg === 'EC') return keysize === '384' ? 'ECDSA-P384' : 'ECDSA-P256';
  if (alg === 'RSA') return (`RSA-${keysize ?? '2048'}` as CaKeyAlgorithm);
  throw new HsmError('BAD_REQUEST', `keytool: -keyalg EC or RSA, got ${keyalg}`);
}

/** Runs one keytool command; resolves with the exit status. */
export async function keytool(args: string[], io: KeytoolIo): Promise<number> {
  let cluster: RemoteCluster | undefined;
  try {
    const { command, options, flags } = parse(args);
    const storeFile = options.get('-keystore') ?? join(defaultDataDir(io.env), 'keystore.p12');
    const storepass = options.get('-storepass') ?? io.env.STRONGROOM_STOREPASS;
    if (!storepass) throw new HsmError('BAD_REQUEST', `keytool ${command}: -storepass is required (or STRONGROOM_STOREPASS)`);
    const type = options.get('-storetype') ?? 'CloudHSM';
    if (type.toLowerCase() !== 'cloudhsm') throw new HsmError('BAD_REQUEST', `keytool: -storetype CloudHSM, got ${type}`);
    const user = io.env.HSM_USER;
    const password = io.env.HSM_PASSWORD;
    if (!user || !password) throw new HsmError('BAD_REQUEST', 'keytool: set HSM_USER and HSM_PASSWORD to the crypto user to log in as');
    const env = { ...io.env, STRONGROOM_CLUSTER: io.env.STRONGROOM_CLUSTER ?? join(defaultDataDir(io.env), 'cluster.json') };
    cluster = await connectFromEnvironment(env);
    const session = await cluster.login(user, password);
    const store = KeyStore.getInstance('CloudHSM', session);
    // A keystore file that does not exist yet is created (as Java's keytool does).
    await (existsSync(storeFile) ? store.loadFile(storeFile, storepass) : store.load(null, null));
    // The PKCS #11 door's token certificates of this user, kept beside the cluster.json the door serves with.
    const cfg = env.STRONGROOM_CLUSTER!;
    const objects = io.env.STRONGROOM_PKCS11_OBJECTS ?? (cfg.endsWith('.json') ? join(dirname(cfg), 'pkcs11', 'objects') : null);
    const door = objects ? { store: new SideStore(objects, (await cluster.hsmInfo())[0]?.clusterId ?? 'cluster', user), folder: objects } : null;
    const changed = await run(command, options, flags, store, session, io, door);
    if (changed) await store.storeFile(storeFile, storepass);
    await session.logout();
    return 0;
  } catch (e) {
    io.err(`keytool error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    await cluster?.close();
  }
}

async function run(command: string, options: Map<string, string>, flags: Set<string>, store: KeyStore, session: HsmSession, io: KeytoolIo, door: { store: SideStore; folder: string } | null): Promise<boolean> {
  const x509 = await loadX509();
  const alias = () => need(options, '-alias', command);
  const pemOrDer = (cert: { toString(f: 'pem'): string; rawData: ArrayBuffer }) => (flags.has('-rfc') ? cert.toString('pem') + '\n' : Buffer.from(cert.rawData));
  switch (command) {
    case '-genkeypair': {
      const a = alias();
      if (await store.containsAlias(a)) throw new HsmError('BAD_REQUEST', `alias <${a}> already exists`);
      const ca = (options.get('-ext') ?? '').toLowerCase().startsWith('bc:c');
      // Made in the HSM, non-extractable (CloudHSM's keytool generates in software instead).
      const root = await IssuingCa.createRoot(session, {
        subject: options.get('-dname') ?? `CN=${a}`,
        alias: a,
        algorithm: algorithmOf(options.get('-keyalg'), options.get('-keysize')),
        days: Number(options.get('-validity') ?? 90),
        ca,
      });
      await store.setKeyEntry(a, root.privateKey as never, root.chain);
      io.err(`Generated the key pair of <${a}> in the HSM (non-extractable) with a self-signed certificate ${root.certificate.subject}`);
      return true;
    }
    case '-certreq': {
      const a = alias();
      const key = await store.getKey(a);
      const cert = store.getCertificate(a);
      if (!key || key.type !== 'private' || !cert) throw new HsmError('BAD_REQUEST', `alias <${a}>: no key entry with a certificate`);
      const { keys } = await session.send({ op: 'findKeys', filter: { attributes: { label: `${a}:public` } } });
      if (!keys[0]) throw new HsmError('KEY_NOT_FOUND', `alias <${a}>: no public key labelled ${a}:public in the HSM`);
      const publicKey = await session.crypto.keyFromHandle(keys[0].handle, key.algorithm as never);
      const signing = key.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: (key.algorithm as { namedCurve?: string }).namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: cert.subject, keys: { privateKey: key, publicKey } as never, signingAlgorithm: signing }, session.crypto as never);
      const text = csr.toString('pem') + '\n';
      if (options.has('-file')) writeFileSync(options.get('-file')!, text);
      else io.out(text.trimEnd());
      return false;
    }
    case '-gencert': {
      const a = alias();
      const chain = store.getCertificateChain(a);
      if (!chain) throw new HsmError('BAD_REQUEST', `alias <${a}>: no key entry to sign with`);
      const ca = await IssuingCa.open(session, a, chain);
      const csr = readFileSync(need(options, '-infile', command));
      const leaf = await ca.signCsr(csr.toString('utf8').includes('BEGIN') ? csr.toString('utf8') : new Uint8Array(csr), { days: Number(options.get('-validity') ?? 90) });
      const out = pemOrDer(leaf);
      if (options.has('-outfile')) writeFileSync(options.get('-outfile')!, out);
      else io.out(out.toString());
      return false;
    }
    case '-importcert': {
      const a = alias();
      const text = readFileSync(need(options, '-file', command));
      const cert = new x509.X509Certificate(text.toString('utf8').includes('BEGIN') ? text.toString('utf8') : new Uint8Array(text));
      if (await store.entryInstanceOf(a, 'PrivateKeyEntry')) {
        // A certificate reply: the chain is completed from the store's other certificates.
        const chain = [cert];
        const others = (await store.aliases()).flatMap((x) => store.getCertificateChain(x) ?? (store.getCertificate(x) ? [store.getCertificate(x)!] : []));
        for (let c = cert; c.issuer !== c.subject; ) {
          const issuer = others.find((o) => o.subject === c.issuer && !chain.includes(o));
          if (!issuer) break;
          chain.push(issuer);
          c = issuer;
        }
        await store.setCertificateChain(a, chain);
        io.err(`Certificate reply was installed in keystore (<${a}>, chain of ${chain.length})`);
      } else {
        await store.setCertificateEntry(a, cert);
        io.err('Certificate was added to keystore');
      }
      return true;
    }
    case '-importkeystore': {
      const src = need(options, '-srckeystore', command);
      const imported = await store.importPkcs12(new Uint8Array(readFileSync(src)), need(options, '-srcstorepass', command), { extractable: flags.has('-extractable') });
      io.err(`Imported ${imported.length} entr${imported.length === 1 ? 'y' : 'ies'} (${imported.join(', ')}); private keys are in the HSM as ${flags.has('-extractable') ? 'extractable' : 'non-extractable'} token keys`);
      return true;
    }
    case '-exportcert': {
      const a = alias();
      const cert = store.getCertificate(a);
      if (!cert) throw new HsmError('BAD_REQUEST', `alias <${a}> does not exist or has no certificate`);
      const out = pemOrDer(cert);
      if (options.has('-file')) {
        writeFileSync(options.get('-file')!, out);
        io.err(`Certificate stored in file <${options.get('-file')}>`);
      } else io.out(out.toString());
      return false;
    }
    case '-list': {
      const aliases = options.has('-alias') ? [options.get('-alias')!] : await store.aliases();
      io.out(`Keystore type: CLOUDHSM\n\nYour keystore contains ${aliases.length} entr${aliases.length === 1 ? 'y' : 'ies'}\n`);
      for (const a of aliases) {
        const kind = (await store.entryInstanceOf(a, 'PrivateKeyEntry')) ? 'PrivateKeyEntry' : (await store.entryInstanceOf(a, 'SecretKeyEntry')) ? 'SecretKeyEntry' : store.isCertificateEntry(a) ? 'trustedCertEntry' : 'unknown';
        const cert = store.getCertificate(a);
        const fingerprint = cert ? Buffer.from(await webcrypto.subtle.digest('SHA-256', cert.rawData)).toString('hex').toUpperCase().match(/../g)!.join(':') : null;
        io.out(`${a}, ${kind}${fingerprint ? `,\nCertificate fingerprint (SHA-256): ${fingerprint}` : ', (key in the HSM, no certificate)'}`);
        if (flags.has('-v')) for (const [i, c] of (store.getCertificateChain(a) ?? (cert ? [cert] : [])).entries()) io.out(`  [${i + 1}] Owner: ${c.subject}\n      Issuer: ${c.issuer}\n      Valid until: ${c.notAfter.toISOString()}`);
      }
      if (door && !options.has('-alias')) await listDoorCertificates(door, session, io, flags.has('-v'), x509);
      return false;
    }
    case '-delete': {
      await store.deleteEntry(alias());
      return true;
    }
    default:
      return false;
  }
}

/**
 * The certificates PKCS #11 applications wrote beside their keys through the door (CKO_CERTIFICATE
 * token objects, e.g. by Java's SunPKCS11 or pkcs11-tool --write-object): by label, with the HSM key
 * whose CKA_ID they share, as Java's keytool -storetype PKCS11 pairs them.
 */
async function listDoorCertificates(door: { store: SideStore; folder: string }, session: HsmSession, io: KeytoolIo, verbose: boolean, x509: Awaited<ReturnType<typeof loadX509>>): Promise<void> {
  const bytesOf = (o: SideObject, type: number): Buffer | null => {
    const v = o.attributes.find((a) => a.type === type)?.value;
    return v && 'bytes' in v && v.bytes ? v.bytes : null;
  };
  const certificates = door.store.objects.filter((o) => o.attributes.some((a) => a.type === CKA.CLASS && a.value && 'ulong' in a.value && a.value.ulong === BigInt(CKO.CERTIFICATE)));
  if (certificates.length === 0) return;
  io.out(`\nPKCS #11 door (${door.folder}): ${certificates.length} certificate${certificates.length === 1 ? '' : 's'}\n`);
  for (const o of certificates) {
    const der = bytesOf(o, CKA.VALUE)!;
    const label = bytesOf(o, CKA.LABEL)?.toString('utf8') ?? '';
    const id = bytesOf(o, CKA.ID) ?? Buffer.alloc(0);
    const keys = id.length ? (await session.listKeys({ filter: { attributes: { id: idOf(id), class: 'private-key' } }, maxItems: 2 })).keys : [];
    const entry = keys.length ? `PrivateKeyEntry (CKA_ID ${idOf(id)}, key ${keys[0]!.keyReference} in the HSM)` : `trustedCertEntry (CKA_ID ${idOf(id) || 'none'}, no key in the HSM has it)`;
    const fingerprint = Buffer.from(await webcrypto.subtle.digest('SHA-256', der)).toString('hex').toUpperCase().match(/../g)!.join(':');
    io.out(`${label || '(no label)'}, ${entry},\nCertificate fingerprint (SHA-256): ${fingerprint}`);
    if (verbose) {
      const c = new x509.X509Certificate(der);
      io.out(`  [1] Owner: ${c.subject}\n      Issuer: ${c.issuer}\n      Valid until: ${c.notAfter.toISOString()}`);
    }
  }
}
