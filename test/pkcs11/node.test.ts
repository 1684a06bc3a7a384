/**
 * The PKCS #11 door from a Node application using graphene-pk11 (pkcs11js) and Debian's
 * p11-kit-client.so (test/pkcs11/fixtures/graphene-sign.mjs, its own process): a session key pair
 * made in the HSM signs, and Node's crypto here verifies with the public point it read back.
 * Outside CI a missing p11-kit-client.so skips it with a message; in CI it fails.
 */
import { execFile } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { P11_KIT_CLIENT, type Pkcs11Door } from '../../src/pkcs11/index.js';
import { openTestDoor, type TestDoor } from '../helpers/p11-rpc.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const SCRIPT = join(FIXTURES, 'graphene-sign.mjs');

describe('pkcs11: Node applications (graphene-pk11, node-webcrypto-p11) through p11-kit-client.so', function () {
  this.timeout(30_000);
  let fixture: TestDoor | undefined;
  let door: Pkcs11Door;

  before(async function () {
    if (!existsSync(P11_KIT_CLIENT)) {
      if (process.env.CI) throw new Error(`the PKCS #11 tests need ${P11_KIT_CLIENT} (p11-kit-modules); .ci/run installs it`);
      console.log('      (skipped: install p11-kit-modules to run the graphene-pk11 test)');
      this.skip();
    }
    fixture = await openTestDoor('strongroom-graphene-');
    ({ door } = fixture);
  });
  after(() => fixture?.close());

  it('initialises with CKF_OS_LOCKING_OK, logs in, makes a P-384 pair in the HSM and signs a digest; the signature verifies and the private value stays sensitive', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [SCRIPT, P11_KIT_CLIENT, 'cu1:cu1-password'], { env: { ...process.env, P11_KIT_SERVER_ADDRESS: `unix:path=${door.socket}` } });
    const out = JSON.parse(stdout) as { label: string; signature: string; point: string; refused: string };
    expect(out.label).to.equal('Strongroom');
    expect(out.refused).to.contain('CKR_ATTRIBUTE_SENSITIVE');
    // CKA_EC_POINT is a DER OCTET STRING around the point: the point, behind a P-384 SPKI header.
    const point = Buffer.from(out.point, 'hex');
    const spki = Buffer.concat([Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex'), point.subarray(2)]);
    const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const signature = Buffer.from(out.signature, 'hex');
    expect(signature).to.have.length(96);
    expect(verify('sha384', Buffer.from('the quarterly numbers'), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)).to.equal(true);
  });

  it('node-webcrypto-p11 (WebCrypto over PKCS #11) signs with ECDSA and encrypts and decrypts with RSA-OAEP, the keys made in the HSM; Node verifies the signature', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [join(FIXTURES, 'webcrypto-p11.mjs'), P11_KIT_CLIENT, 'cu1:cu1-password'], { env: { ...process.env, P11_KIT_SERVER_ADDRESS: `unix:path=${door.socket}` } });
    const out = JSON.parse(stdout) as { signature: string; verified: boolean; plaintext: string; spki: string };
    expect(out.verified).to.equal(true);
    expect(out.plaintext).to.equal('the quarterly numbers');
    const publicKey = createPublicKey({ key: Buffer.from(out.spki, 'hex'), format: 'der', type: 'spki' });
    expect(verify('sha256', Buffer.from('the quarterly numbers'), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(out.signature, 'hex'))).to.equal(true);
  });
});
