/**
 * The strongroom command as CloudHSM CLI, driven as a subprocess from the built package through
 * CloudHSM's getting-started story on TLS members: configure, activate, users, keys, sharing,
 * attributes, wrap/unwrap under every mechanism, sign/verify, lockout and unlock, 2-of-3 quorum
 * with approvals signed by the openssl command, MFA login, audit; then interactive mode on a
 * pseudo-terminal (tmux): prompt, completion, history, errors.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { BIN, Repl, runCli } from '../helpers/cloudhsm-cli.js';

describe('cli: CloudHSM CLI commands (strongroom …)', function () {
  this.timeout(180_000);
  let dir: string;
  let cluster: LocalCluster;
  let env: NodeJS.ProcessEnv;
  const keys: Record<string, string> = {};

  /** One single-command run: the answer, the exit code and stderr. */
  const cli = (args: string[], extraEnv: Record<string, string> = {}) => runCli({ ...env, ...extraEnv }, args);
  const as = (user: string, role: 'admin' | 'crypto-user') => ({ CLOUDHSM_ROLE: role, CLOUDHSM_PIN: `${user}:${user}-password` });

  /** The docs' recipe: base64 -d the token, openssl pkeyutl -sign -pkeyopt digest:sha256, base64. */
  function opensslSign(user: string, tokenB64: string): string {
    const bin = join(dir, `${user}-${createHash('sha1').update(tokenB64).digest('hex')}.bin`);
    writeFileSync(bin, Buffer.from(tokenB64, 'base64'));
    execFileSync('openssl', ['pkeyutl', '-sign', '-inkey', keys[user]!, '-pkeyopt', 'digest:sha256', '-keyform', 'PEM', '-in', bin, '-out', `${bin}.sig`]);
    return readFileSync(`${bin}.sig`).toString('base64');
  }
  function opensslKey(user: string): string {
    const key = join(dir, `${user}.key`);
    if (keys[user]) return join(dir, `${user}.pub`);
    execFileSync('openssl', ['genrsa', '-out', key, '2048'], { stdio: 'ignore' });
    execFileSync('openssl', ['rsa', '-in', key, '-outform', 'PEM', '-pubout', '-out', join(dir, `${user}.pub`)], { stdio: 'ignore' });
    keys[user] = key;
    return join(dir, `${user}.pub`);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-cli-'));
    // Non-FIPS: every wrap mechanism is tried, RSA PKCS #1 v1.5 too (which FIPS mode refuses).
    cluster = await startLocalCluster({ mode: 'non-fips', transport: 'tls', members: 1, activate: false, passwordCost: 10, dataDir: join(dir, 'cluster') });
    env = { ...process.env, STRONGROOM_CLI_CONFIG: join(dir, 'cli.json'), STRONGROOM_CLI_HISTORY: join(dir, 'history') };
    delete env.STRONGROOM_CLUSTER;
    delete env.CLOUDHSM_PIN;
    delete env.CLOUDHSM_ROLE;
  });
  after(async () => {
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('configure, activate, add HSMs, create users, and refuse bad arguments without changing anything', async () => {
    const bad = await cli(['configure', '--cluster', 'not an address', '--ca', join(dir, 'cluster', 'customerCA.crt')]);
    expect(bad).to.include({ error_code: 1, code: 1 });
    expect(bad.data).to.contain('--cluster: host:port');
    expect(existsSync(join(dir, 'cli.json'))).to.equal(false);
    const configured = await cli(['configure', '--cluster', cluster.tls!.addresses[0]!, '--ca', join(dir, 'cluster', 'customerCA.crt')]);
    expect(configured.error_code).to.equal(0);

    expect((await cli(['user', 'list'])).data.users.map((u: { role: string }) => u.role)).to.have.members(['unactivated-admin', 'internal(APPLIANCE_USER)']);
    expect(await cli(['cluster', 'activate', '--password', 'admin-password'])).to.deep.include({ error_code: 0, data: 'Cluster activation successful' });
    expect((await cli(['cluster', 'activate', '--password', 'admin-password'])).data).to.contain('already active');
    // CloudHSM's story: activate with one HSM, then add HSMs.
    await cluster.addMember();
    await cluster.addMember();
    expect((await cli(['cluster', 'hsm-info'])).data.hsms).to.have.length(3);

    const admin = as('admin', 'admin');
    // The first user in single-command mode, the others in one interactive session (the same
    // commands; each single command is a process of its own, which the suite's time notices).
    expect(await cli(['user', 'create', '--username', 'admin2', '--role', 'admin', '--password', 'admin2-password'], admin)).to.deep.include({ error_code: 0, data: { username: 'admin2', role: 'admin' }, code: 0 });
    const repl = new Repl(env);
    try {
      await repl.ready();
      await repl.run('login --username admin --role admin --password admin-password');
      for (const [name, role] of [['admin3', 'admin'], ['alice', 'crypto-user'], ['bob', 'crypto-user'], ['dave', 'crypto-user']] as const) {
        expect(await repl.run(`user create --username ${name} --role ${role} --password ${name}-password`)).to.deep.equal({ error_code: 0, data: { username: name, role } });
      }
      const badName = await repl.run("user create --username 'bad name' --role crypto-user --password whatever-1");
      expect(badName.error_code).to.equal(1);
      expect((await repl.run('user create --username erin --role crypto-user --password short')).data).to.contain('password: 8–32 characters');
    } finally {
      await repl.close();
    }
    // Refusals in single-command mode: the answer's error_code and the process's exit code are 1.
    const refused = [
      await cli(['user', 'create', '--username', 'erin', '--role', 'crypto-user', '--password', 'erin-password'], as('alice', 'crypto-user')),
      await cli(['user', 'create', '--username', 'erin', '--role', 'crypto-user', '--password', 'erin-password']),
      await cli(['user', 'delete', '--username', 'alice', '--role', 'admin'], admin),
    ];
    for (const r of refused) expect(r).to.include({ error_code: 1, code: 1 });
    expect(refused[1]!.data).to.contain('CLOUDHSM_PIN');
    expect(refused[2]!.data).to.contain('alice is a crypto-user, not an admin');
    const commander = await cli(['user', 'create', '--username', 'erin'], admin);
    // A usage error exits 2, as CloudHSM CLI's (clap's) do; a refused command exits 1.
    expect(commander.code).to.equal(2);
    const users = (await cli(['user', 'list'])).data.users as { username: string; 'cluster-coverage': string; locked: string; mfa: unknown[] }[];
    expect(users.map((u) => u.username).sort()).to.deep.equal(['admin', 'admin2', 'admin3', 'alice', 'app_user', 'bob', 'dave']);
    expect(users.every((u) => u['cluster-coverage'] === 'full' && u.locked === 'false' && Array.isArray(u.mfa))).to.equal(true);
  });

  it('keys: CloudHSM defaults, sharing, attributes, list, sign and verify, delete; bad arguments change nothing', async () => {
    const alice = as('alice', 'crypto-user');
    // Single-command mode (credentials from CLOUDHSM_PIN) for the first key; alice's other steps
    // in one interactive session.
    const aes = await cli(['key', 'generate-symmetric', 'aes', '--label', 'wrapper', '--key-length-bytes', '32', '--attributes', 'wrap=true', 'unwrap=true'], alice);
    expect(aes).to.include({ error_code: 0, code: 0 });
    expect(aes.data.key.attributes).to.include({ token: true, sign: true, verify: true, encrypt: false, decrypt: false, wrap: true, extractable: true, 'key-length-bytes': 32 });
    expect(aes.data.key['key-reference']).to.match(/^0x[0-9a-f]{16}$/);
    const repl = new Repl(env);
    try {
      await repl.ready();
      await repl.run('login --username alice --role crypto-user --password alice-password');
      const pair = await repl.run('key generate-asymmetric-pair ec --curve prime256v1 --public-label ec-pub --private-label ec-priv --share-crypto-users bob');
      expect(pair.data.private_key.attributes).to.include({ sign: false, token: true, curve: 'secp256r1' });
      expect(pair.data.private_key['key-info']['shared-users']).to.deep.equal([{ username: 'bob', 'key-coverage': 'full' }]);
      expect((await repl.run('key set-attribute --filter attr.label=ec-priv --name sign --value true')).data).to.deep.equal({ message: 'Attribute set successfully' });
      expect((await repl.run('key set-attribute --filter attr.label=ec-pub --name verify --value true')).error_code).to.equal(0);
      // Shared users may use but not manage.
      expect((await cli(['key', 'set-attribute', '--filter', 'attr.label=ec-priv', '--name', 'label', '--value', 'mine'], as('bob', 'crypto-user'))).data).to.contain('only the owner');

      const listed = await repl.run('key list --filter attr.label=ec-priv --verbose');
      expect(listed.data.matched_keys).to.have.length(1);
      expect(listed.data.matched_keys[0]['key-info']).to.deep.include({ 'key-owners': [{ username: 'alice', 'key-coverage': 'full' }], 'cluster-coverage': 'full' });
      // The key reference as printed (0x and 16 hex digits) selects the key, as in AWS's examples.
      const printed = listed.data.matched_keys[0]['key-reference'] as string;
      expect(printed).to.match(/^0x[0-9a-f]{16}$/);
      expect((await repl.run(`key list --filter key-reference=${printed}`)).data.matched_keys.map((k: { 'key-reference': string }) => k['key-reference'])).to.deep.equal([printed]);
      // Paging as CloudHSM CLI's: next_token is an offset, and the total counts every match on every page.
      const page = await repl.run('key list --max-items 1');
      expect(page.data.matched_keys).to.have.length(1);
      expect(page.data).to.include({ returned_key_count: 1, total_key_count: 3, next_token: '1' });
      const next = await repl.run(`key list --max-items 1 --starting-token ${page.data.next_token as string}`);
      expect(next.data).to.include({ returned_key_count: 1, total_key_count: 3, next_token: '2' });
      expect(next.data.matched_keys[0]['key-reference']).to.not.equal(page.data.matched_keys[0]['key-reference']);
      const last = await repl.run('key list --max-items 2 --starting-token 2');
      expect(last.data).to.deep.include({ returned_key_count: 1, total_key_count: 3 });
      expect(last.data).to.not.have.property('next_token');
      expect((await repl.run('key list --starting-token abc')).data).to.contain('--starting-token: the next_token of the previous page (a number), got "abc"');

      const data = Buffer.from('pay 100 to bob').toString('base64');
      const signed = await cli(['crypto', 'sign', 'ecdsa', '--key-filter', 'attr.label=ec-priv', '--hash-function', 'sha256', '--data', data], as('bob', 'crypto-user'));
      expect(signed.error_code).to.equal(0);
      // r‖s, as AWS documents: 32 + 32 bytes on P-256 (DER would be about 70).
      expect(Buffer.from(signed.data.signature as string, 'base64')).to.have.length(64);
      expect((await repl.run(`crypto verify ecdsa --key-filter attr.label=ec-pub --hash-function sha256 --data ${data} --signature ${signed.data.signature as string}`)).data).to.deep.equal({ message: 'Signature verified successfully' });
      const forged = await repl.run(`crypto verify ecdsa --key-filter attr.label=ec-pub --hash-function sha256 --data ${Buffer.from('pay 900 to bob').toString('base64')} --signature ${signed.data.signature as string}`);
      expect(forged).to.deep.equal({ error_code: 1, data: 'Signature verification failed' });

      const before = (await repl.run('key list --max-items 100')).data.matched_keys.length;
      const badArgs = [
        ['key', 'generate-symmetric', 'aes', '--label', 'x', '--key-length-bytes', '20'],
        ['key', 'generate-symmetric', 'aes', '--label', 'x', '--key-length-bytes', '16', '--attributes', 'nonsense'],
        ['key', 'generate-symmetric', 'aes', '--label', 'x', '--key-length-bytes', '16', '--attributes', 'class=public-key'],
        ['key', 'generate-asymmetric-pair', 'rsa', '--public-label', 'p', '--private-label', 'q', '--modulus-size-bits', '1024'],
        ['key', 'generate-symmetric', 'aes', '--label', 'x', '--key-length-bytes', '16', '--use-key-quorum-value', '3'],
        ['key', 'delete', '--filter', 'attr.label=nothing-like-this'],
        ['key', 'list', '--filter', 'label=x'],
        ['crypto', 'sign', 'ecdsa', '--key-filter', 'attr.label=ec-priv', '--hash-function', 'sha256', '--data', '!!!'],
      ];
      // Two in single-command mode (exit code 1), the rest in the interactive session.
      for (const args of badArgs.slice(0, 2)) {
        const r = await cli(args, alice);
        expect(r, args.join(' ')).to.include({ error_code: 1, code: 1 });
        expect(r.data, args.join(' ')).to.be.a('string').and.not.equal('');
      }
      for (const args of badArgs.slice(2)) {
        const r = await repl.run(args.join(' '));
        expect(r.error_code, args.join(' ')).to.equal(1);
        expect(r.data, args.join(' ')).to.be.a('string').and.not.equal('');
      }
      expect((await repl.run('key list --max-items 100')).data.matched_keys.length).to.equal(before);
    } finally {
      await repl.close();
    }
  });

  it('lockout after 5 wrong passwords on every HSM, and an admin unlocks by resetting the password', async () => {
    // One wrong password in single-command mode, four in an interactive session: five in all.
    expect((await cli(['key', 'list'], { CLOUDHSM_ROLE: 'crypto-user', CLOUDHSM_PIN: 'dave:wrong-password' })).error_code).to.equal(1);
    const repl = new Repl(env);
    try {
      await repl.ready();
      for (let i = 0; i < 4; i++) expect((await repl.run('login --username dave --role crypto-user --password wrong-password')).error_code).to.equal(1);
      expect((await repl.run('login --username dave --role crypto-user --password dave-password')).data).to.contain('locked');
    } finally {
      await repl.close();
    }
    const locked = await cli(['key', 'list'], as('dave', 'crypto-user'));
    expect(locked.data).to.contain('locked');
    expect((await cli(['user', 'list'])).data.users.find((u: { username: string }) => u.username === 'dave').locked).to.equal('true');
    expect((await cli(['user', 'change-password', '--username', 'dave', '--role', 'crypto-user', '--password', 'dave-password'], as('admin', 'admin'))).error_code).to.equal(0);
    expect((await cli(['key', 'list'], as('dave', 'crypto-user'))).error_code).to.equal(0);
  });

  it('interactive: wrap and unwrap under every mechanism, 2-of-3 quorum with openssl signatures, MFA login, audit', async () => {
    const repl = new Repl(env);
    try {
      await repl.ready();
      // Keys for wrapping.
      expect((await repl.run('login --username alice --role crypto-user --password alice-password')).data).to.deep.equal({ username: 'alice', role: 'crypto-user' });
      await repl.run('key generate-symmetric aes --label payload --key-length-bytes 16');
      await repl.run('key generate-asymmetric-pair rsa --modulus-size-bits 2048 --public-label rsa-wrap --private-label rsa-unwrap --public-attributes wrap=true --private-attributes unwrap=true');
      const mechanisms: [string, string, string][] = [
        ['aes-gcm', 'attr.label=wrapper', '--tag-length-bits 128'],
        ['cloudhsm-aes-gcm', 'attr.label=wrapper', '--tag-length-bits 128'],
        ['aes-no-pad', 'attr.label=wrapper', ''],
        ['aes-pkcs5-pad', 'attr.label=wrapper', ''],
        ['aes-zero-pad', 'attr.label=wrapper', ''],
        ['rsa-oaep', 'attr.label=rsa-wrap', '--hash-function sha256 --mgf mgf1-sha256'],
        ['rsa-aes', 'attr.label=rsa-wrap', '--hash-function sha256 --mgf mgf1-sha256'],
        ['rsa-pkcs', 'attr.label=rsa-wrap', ''],
      ];
      const payloadCheck = (await repl.run('key list --filter attr.label=payload --verbose')).data.matched_keys[0].attributes['check-value'];
      for (const [mech, wrapping, extra] of mechanisms) {
        const wrapped = await repl.run(`key wrap ${mech} --payload-filter attr.label=payload --wrapping-filter ${wrapping} ${extra}`);
        expect(wrapped.error_code, `${mech}: ${JSON.stringify(wrapped.data)}`).to.equal(0);
        const unwrapping = wrapping === 'attr.label=wrapper' ? wrapping : 'attr.label=rsa-unwrap';
        const iv = mech === 'aes-gcm' ? `--iv ${wrapped.data.iv as string}` : '';
        const unwrapped = await repl.run(`key unwrap ${mech} --filter ${unwrapping} --key-type-class aes --label back-${mech} --session --data ${wrapped.data.wrapped_key_data} ${extra} ${iv}`);
        expect(unwrapped.error_code, `${mech}: ${JSON.stringify(unwrapped.data)}`).to.equal(0);
        expect(unwrapped.data.key.attributes).to.include({ local: false, 'check-value': payloadCheck, token: false });
      }
      expect((await repl.run('key wrap aes-gcm --payload-filter attr.label=payload --wrapping-filter attr.label=wrapper')).data).to.contain("required option '--tag-length-bits <n>' not specified");

      // Sign and verify under every signing mechanism; share, unshare, import a PEM, delete.
      await repl.run('key generate-asymmetric-pair rsa --modulus-size-bits 2048 --public-label rsa-v --private-label rsa-s --private-attributes sign=true --public-attributes verify=true');
      await repl.run('key generate-asymmetric-pair ec --curve ed25519 --public-label ed-v --private-label ed-s --private-attributes sign=true --public-attributes verify=true');
      const data = Buffer.from('the quarterly numbers').toString('base64');
      for (const [mech, signer, verifier, extra] of [
        ['rsa-pkcs', 'rsa-s', 'rsa-v', '--hash-function sha384'],
        ['rsa-pkcs-pss', 'rsa-s', 'rsa-v', '--hash-function sha256 --mgf mgf1-sha256 --salt-length 32'],
        ['ed25519', 'ed-s', 'ed-v', ''],
        ['ecdsa', 'ec-priv', 'ec-pub', '--hash-function sha512'],
      ] as const) {
        const sig = await repl.run(`crypto sign ${mech} --key-filter attr.label=${signer} --data ${data} ${extra}`);
        expect(sig.error_code, `${mech}: ${JSON.stringify(sig.data)}`).to.equal(0);
        expect((await repl.run(`crypto verify ${mech} --key-filter attr.label=${verifier} --data ${data} --signature ${sig.data.signature} ${extra}`)).data, mech).to.deep.equal({ message: 'Signature verified successfully' });
      }
      expect((await repl.run('key share --filter attr.label=payload --username bob --role crypto-user')).data).to.deep.equal({ message: 'Key shared successfully' });
      expect((await repl.run('key list --filter attr.label=payload --verbose')).data.matched_keys[0]['key-info']['shared-users']).to.deep.equal([{ username: 'bob', 'key-coverage': 'full' }]);
      expect((await repl.run('key unshare --filter attr.label=payload --username bob --role crypto-user')).data).to.deep.equal({ message: 'Key unshared successfully' });
      const pem = join(dir, 'partner.pem');
      execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'partner.key')]);
      execFileSync('openssl', ['pkey', '-in', join(dir, 'partner.key'), '-pubout', '-out', pem]);
      const imported = await repl.run(`key import pem --path ${pem} --label partner --key-type-class ec-public --attributes verify=true`);
      expect(imported.data.key.attributes).to.include({ class: 'public-key', 'key-type': 'ec', curve: 'secp256r1', local: false, verify: true, token: true });
      expect((await repl.run(`key import pem --path ${join(dir, 'partner.key')} --label partner2 --key-type-class ec-public`)).data).to.contain('holds no PEM public key');
      expect((await repl.run('key delete --filter attr.label=partner')).data).to.deep.equal({ message: 'Key deleted successfully' });
      expect((await repl.run('key list --filter attr.label=partner')).data.matched_keys).to.deep.equal([]);
      expect((await repl.run('logout')).data).to.equal('Logout successful');

      // Each admin registers a quorum key: a registration token signed with openssl.
      for (const name of ['admin', 'admin2', 'admin3']) {
        const pub = opensslKey(name);
        await repl.run(`login --username ${name} --role admin --password ${name}-password`);
        const file = join(dir, `${name}-registration.json`);
        expect((await repl.run(`quorum token-sign generate --service registration --token ${file}`)).data).to.deep.equal({ path: file });
        const token = JSON.parse(readFileSync(file, 'utf8')) as { tokens: { unsigned: string; signed: string }[] };
        token.tokens[0]!.signed = opensslSign(name, token.tokens[0]!.unsigned);
        writeFileSync(file, JSON.stringify(token));
        expect((await repl.run(`user change-quorum token-sign register --public-key ${pub} --signed-token ${file}`)).data).to.deep.equal({ username: name, role: 'admin' });
        await repl.run('logout');
      }
      await repl.run('login --username admin --role admin --password admin-password');
      expect((await repl.run('quorum token-sign list-quorum-values')).data).to.deep.equal({ user: 1, quorum: 1, cluster: 1 });
      expect((await repl.run('quorum token-sign list-timeouts')).data).to.deep.equal({ generated: 600, approved: 600 });
      // AWS's answer to set-timeout (issue 19, item 7).
      expect((await repl.run('quorum token-sign set-timeout --generated 900'))).to.deep.equal({ error_code: 0, data: 'Set token timeout successful' });
      expect((await repl.run('quorum token-sign list-timeouts')).data).to.deep.equal({ generated: 900, approved: 600 });
      expect((await repl.run('quorum token-sign set-quorum-value --service user --value 2')).data).to.equal('Set quorum value successful');
      expect(await repl.run('user create --username carol --role crypto-user --password carol-password')).to.deep.equal({
        error_code: 1,
        data: 'Quorum approval is required for this operation (user service: 2 approvals; generate a token with quorum token-sign generate)',
      });
      const tokenFile = join(dir, 'admin.token');
      await repl.run(`quorum token-sign generate --service user --token ${tokenFile}`);
      const listed = (await repl.run('quorum token-sign list')).data.tokens;
      expect(listed).to.have.length(1);
      expect(listed[0]).to.deep.include({ username: 'admin', service: 'user', 'approvals-required': { value: 2 }, 'cluster-coverage': 'full' });
      const token = JSON.parse(readFileSync(tokenFile, 'utf8')) as { token: string; signatures: { username: string; signature: string }[] };
      token.signatures.push({ username: 'admin2', signature: opensslSign('admin2', token.token) });
      writeFileSync(tokenFile, JSON.stringify(token));
      expect((await repl.run(`user create --username carol --role crypto-user --password carol-password --approval ${tokenFile}`)).data).to.contain('1 valid approval of the 2 needed');
      token.signatures.push({ username: 'admin3', signature: opensslSign('admin3', token.token) });
      writeFileSync(tokenFile, JSON.stringify(token));
      expect((await repl.run(`user create --username carol --role crypto-user --password carol-password --approval ${tokenFile}`)).data).to.deep.equal({ username: 'carol', role: 'crypto-user' });
      expect((await repl.run(`user delete --username carol --role crypto-user --approval ${tokenFile}`)).error_code).to.equal(1);
      expect((await repl.run('quorum token-sign list')).data.tokens).to.deep.equal([]);
      const audit = await repl.run('audit verify');
      expect(audit.data.members.map((m: { verified: boolean }) => m.verified)).to.deep.equal([true, true, true]);
      const shown = (await repl.run('audit show --max-items 10000')).data.members as { records: { opcode: string }[] }[];
      expect(shown).to.have.length(3);
      const opcodes = shown.flatMap((m) => m.records.map((r) => r.opcode));
      expect(opcodes).to.include.members(['CN_SET_M_VALUE', 'CN_GET_TOKEN', 'CN_APPROVE_TOKEN', 'CN_CREATE_USER', 'CN_DELETE_TOKEN']);
      await repl.run('logout');

      // Key quorum through the CLI: a key that needs its owner and its shared user to sign.
      for (const name of ['alice', 'bob']) {
        const pub = opensslKey(name);
        await repl.run(`login --username ${name} --role crypto-user --password ${name}-password`);
        const file = join(dir, `${name}-registration.json`);
        await repl.run(`quorum token-sign generate --service registration --token ${file}`);
        const reg = JSON.parse(readFileSync(file, 'utf8')) as { tokens: { unsigned: string; signed: string }[] };
        reg.tokens[0]!.signed = opensslSign(name, reg.tokens[0]!.unsigned);
        writeFileSync(file, JSON.stringify(reg));
        expect((await repl.run(`user change-quorum token-sign register --public-key ${pub} --signed-token ${file}`)).error_code).to.equal(0);
        if (name === 'bob') break;
        await repl.run('logout');
      }
      await repl.run('logout');
      await repl.run('login --username alice --role crypto-user --password alice-password');
      expect((await repl.run('key generate-asymmetric-pair ec --curve secp256r1 --public-label q-pub --private-label q-priv --private-attributes sign=true --share-crypto-users bob --use-private-key-quorum-value 3')).data).to.contain('more than the 2 users');
      const quorumKey = await repl.run('key generate-asymmetric-pair ec --curve secp256r1 --public-label q-pub --private-label q-priv --private-attributes sign=true --share-crypto-users bob --use-private-key-quorum-value 2');
      expect(quorumKey.data.private_key['key-info']['key-quorum-values']).to.deep.equal({ 'manage-key-quorum-value': 0, 'use-key-quorum-value': 2 });
      expect((await repl.run(`crypto sign ecdsa --key-filter attr.label=q-priv --hash-function sha256 --data ${data}`)).data).to.contain('Quorum approval is required for this operation');
      const keyToken = join(dir, 'key-usage.token');
      await repl.run(`quorum token-sign generate --service key-usage --filter attr.label=q-priv --token ${keyToken}`);
      const kt = JSON.parse(readFileSync(keyToken, 'utf8')) as { token: string; signatures: { username: string; signature: string }[] };
      kt.signatures.push({ username: 'alice', signature: opensslSign('alice', kt.token) }, { username: 'bob', signature: opensslSign('bob', kt.token) });
      writeFileSync(keyToken, JSON.stringify(kt));
      expect((await repl.run(`crypto sign ecdsa --key-filter attr.label=q-priv --hash-function sha256 --data ${data} --approval ${keyToken}`)).error_code).to.equal(0);
      expect(await repl.run(`crypto sign ecdsa --key-filter attr.label=q-priv --hash-function sha256 --data ${data} --approval ${keyToken}`)).to.deep.equal({
        error_code: 1,
        data: 'approval: this member holds no live token in it (it expired, was used, was deleted, or its session logged out); generate a new one',
      });
      await repl.run('logout');

      // MFA for bob: register the key, then log in with one signed token per HSM.
      const bobPub = opensslKey('bob');
      await repl.run('login --username bob --role crypto-user --password bob-password');
      const reg = join(dir, 'bob-mfa.json');
      const registered = await repl.run(`user change-mfa token-sign --username bob --role crypto-user --token ${reg}`, async (prompt) => {
        if (prompt.startsWith('Enter public key')) return bobPub;
        const file = JSON.parse(readFileSync(reg, 'utf8')) as { tokens: { unsigned: string; signed: string }[] };
        file.tokens[0]!.signed = opensslSign('bob', file.tokens[0]!.unsigned);
        writeFileSync(reg, JSON.stringify(file));
        return '';
      });
      expect(registered.data).to.deep.equal({ username: 'bob', role: 'crypto-user' });
      await repl.run('logout');
      expect((await repl.run('login --username bob --role crypto-user --password bob-password')).data).to.contain('mfa-token-sign');
      const mfaFile = join(dir, 'bob-login.json');
      let tokens = 0;
      const loggedIn = await repl.run(`login --username bob --role crypto-user --password bob-password mfa-token-sign --token ${mfaFile}`, async () => {
        const file = JSON.parse(readFileSync(mfaFile, 'utf8')) as { version: string; tokens: { unsigned: string; signed: string }[] };
        expect(file.version).to.equal('2.0');
        tokens = file.tokens.length;
        for (const t of file.tokens) t.signed = opensslSign('bob', t.unsigned);
        writeFileSync(mfaFile, JSON.stringify(file));
        return mfaFile;
      });
      expect(loggedIn.data).to.deep.equal({ username: 'bob', role: 'crypto-user' });
      expect(tokens).to.equal(3);
      await repl.run('logout');
      expect((await repl.run('user list')).data.users.find((u: { username: string }) => u.username === 'bob').mfa).to.deep.equal([{ strategy: 'token-sign', status: 'enabled' }]);
      // The history keeps the commands, never a password given with --password.
      const history = readFileSync(env.STRONGROOM_CLI_HISTORY!, 'utf8');
      expect(history).to.contain('login --username bob --role crypto-user --password ****');
      expect(history).not.to.match(/alice-password|bob-password/);
    } finally {
      await repl.close();
    }
  });

  it('interactive on a terminal (tmux): prompt, Tab completion, history, help and errors', async function () {
    if (!existsSync('/usr/bin/tmux')) {
      if (process.env.CI) throw new Error('tmux is missing (apt-get install tmux)');
      this.skip();
    }
    const session = `strongroom-${process.pid}`;
    const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
    const screen = () => tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', session);
    const waitFor = async (text: string | RegExp, timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = screen();
        if (typeof text === 'string' ? s.includes(text) : text.test(s)) return s;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(text)} on the terminal:\n${s}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const envArgs = ['STRONGROOM_CLI_CONFIG', 'STRONGROOM_CLI_HISTORY'].map((k) => `${k}=${env[k]!}`);
    tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', 'env', ...envArgs, process.execPath, BIN);
    try {
      await waitFor('strongroom > ');
      tmux('send-keys', '-t', session, 'quorum token-sign list-q', 'Tab');
      await waitFor('quorum token-sign list-quorum-values');
      tmux('send-keys', '-t', session, 'Enter');
      await waitFor('"quorum": 1');
      tmux('send-keys', '-t', session, 'logn --username x', 'Enter');
      await waitFor("unknown command 'logn'");
      tmux('send-keys', '-t', session, 'login --username alice --role crypto-user', 'Enter');
      await waitFor('Enter password:');
      tmux('send-keys', '-t', session, 'not-her-password', 'Enter');
      const after = await waitFor('"error_code": 1');
      expect(after).to.not.contain('not-her-password');
      expect(after).to.contain('wrong password for alice');
      tmux('send-keys', '-t', session, 'help key wrap', 'Enter');
      await waitFor('cloudhsm-aes-gcm');
      await waitFor('Usage: strongroom key wrap');
      tmux('send-keys', '-t', session, 'Up', 'Up', 'Up');
      await waitFor(/strongroom > login --username alice --role crypto-user\s*$/m);
      tmux('send-keys', '-t', session, 'C-u', 'quit', 'Enter');
    } finally {
      try {
        tmux('kill-session', '-t', session);
      } catch {
        // already gone
      }
    }
    expect(readFileSync(env.STRONGROOM_CLI_HISTORY!, 'utf8')).to.contain('quorum token-sign list-quorum-values');
  });
});
