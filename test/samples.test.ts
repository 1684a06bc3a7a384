/**
 * The samples and the examples of README.md and docs/ run as a user would run them: as separate programs that
 * import the package by name.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { documentation } from './helpers/docs.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

/** Runs a TypeScript program as a user would; the clusters it starts hash passwords at the tests' low cost (docs/model.md). */
async function runTs(file: string): Promise<string> {
  const env = { ...process.env, STRONGROOM_PASSWORD_COST: '10' };
  const { stdout } = await run(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, env, timeout: 60_000 });
  return stdout;
}

describe('samples and documentation examples', function () {
  this.timeout(90_000);

  it('samples/quickstart.ts runs on its own and shows the HSM refusing to export its key', async () => {
    const out = await runTs('samples/quickstart.ts');
    expect(out).to.include("WebCrypto: signed with an HSM ECDSA key; Node's own WebCrypto verifies it: true");
    expect(out).to.include('WebCrypto: exporting the private key is refused: InvalidAccessError');
    expect(out).to.include('decrypted: "attack at dawn"');
    expect(out).to.include('signature valid: true');
    expect(out).to.match(/export refused: KEY_NOT_EXTRACTABLE: key 0x[0-9a-f]{16} has extractable=false/);
    expect(out).to.match(/found 1 key labelled quickstart-ec:public, KCV 0x[0-9a-f]{6}/);
  });

  it('samples/keystore-ca.ts issues a three-level chain in the HSM, stores it, reloads it in a new session and signs', async () => {
    const out = await runTs('samples/keystore-ca.ts');
    expect(out).to.include('issued: CN=Example document signer, O=Example <- CN=Example Issuing CA, O=Example <- CN=Example Root CA, O=Example');
    expect(out).to.include('stored 4 aliases; the file holds certificates only: example-issuing, example-root, example-root-cert, example-signer');
    expect(out).to.include('reloaded: chain of 3, signed with the HSM key, verified with the certificate: true');
    expect(out).to.include('wrong password: keystore: wrong password');
  });

  it('every ts example in README.md and docs/ runs', async () => {
    const blocks = documentation().flatMap(({ text }) => [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!));
    expect(blocks.length).to.be.greaterThan(5);
    const dir = join(ROOT, 'test', '.tmp', 'readme');
    mkdirSync(dir, { recursive: true });
    // Two examples at a time (they are separate programs, each mostly starting up and waiting).
    const files = blocks.map((code, i) => {
      const file = join(dir, `example-${i}.ts`);
      writeFileSync(file, code);
      return file;
    });
    const outputs: string[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < files.length; i = next++) outputs[i] = await runTs(files[i]!);
    };
    await Promise.all([worker(), worker()]);
    for (const [i, code] of blocks.entries()) {
      const out = outputs[i]!;
      if (code.includes("label: 'api-signing'")) {
        expect(out).to.include('HMAC-SHA256 tag of 32 bytes, valid: true');
        expect(out).to.include('refused as expected: KEY_NOT_EXTRACTABLE');
      }
      if (code.includes("KeyStore.getInstance('CloudHSM'")) {
        expect(out).to.match(/chain of 3, signature of 64 bytes, aliases: doc-signer, issuing-ca, root-ca/);
      }
      if (code.includes('addMember()')) {
        expect(out).to.include('member 2 holds the key: durable');
        expect(out).to.include('backups: activation, member-added, member-removed');
        expect(out).to.include('after a restart: durable');
      }
      if (code.includes("transport: 'worker'")) {
        expect(out).to.match(/requests per member: \d+, \d+, \d+/);
        for (const n of /requests per member: (\d+), (\d+), (\d+)/.exec(out)!.slice(1)) expect(Number(n)).to.be.greaterThan(20);
        expect(out).to.include('payments key coverage: full');
        expect(out).to.match(/member 1 after the failure: up, repairs [1-9]/);
        expect(out).to.include('discovered 2 members from one address');
        expect(out).to.include('HMAC over TLS: 32 bytes');
      }
      if (code.includes("service: 'user'")) {
        expect(out).to.include('without approval: Quorum approval is required for this operation');
        expect(out).to.include('approved by admin2 and admin3: true');
      }
      if (code.includes('round trip')) {
        expect(out).to.include('round trip: hello');
        expect(out).to.include('Node unwrapped an HMAC key');
        expect(out).to.include('export refused: InvalidAccessError (HSM code KEY_NOT_EXTRACTABLE)');
      }
    }
  });
});
