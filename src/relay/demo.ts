/**
 * The demo pages (samples/browser) and the browser bundles (dist/browser), as the relay serves
 * them: `/` the page, `/demo/…` its script and style, `/strongroom-browser.js` and `/x509.js`.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadX509 } from '../certificates/index.js';
import { HsmError, writeFileDurably } from '../hsm-core/index.js';
import type { HsmSession } from '../app/index.js';
import { IssuingCa } from '../keystore/index.js';

/** The folder of Strongroom's package.json, from here (source or built). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'strongroom') return dir;
    const up = dirname(dir);
    if (up === dir) throw new HsmError('INTERNAL_ERROR', 'cannot find the strongroom package folder');
    dir = up;
  }
}

export function demoSite(root = packageRoot()): { files: Record<string, string>; folders: Record<string, string> } {
  const bundle = join(root, 'dist', 'browser');
  if (!existsSync(join(bundle, 'strongroom-browser.js'))) {
    throw new HsmError('BAD_REQUEST', `the browser bundle is missing (${bundle}); run npm run build`);
  }
  return {
    files: {
      '/': join(root, 'samples', 'browser', 'index.html'),
      '/index.html': join(root, 'samples', 'browser', 'index.html'),
      '/strongroom-browser.js': join(bundle, 'strongroom-browser.js'),
      '/strongroom-browser.js.map': join(bundle, 'strongroom-browser.js.map'),
      '/x509.js': join(bundle, 'x509.js'),
      '/x509.js.map': join(bundle, 'x509.js.map'),
    },
    folders: { '/demo/': join(root, 'samples', 'browser') },
  };
}

const DEMO_CA = { subject: 'CN=Strongroom Demo CA, O=Strongroom (development only)', alias: 'strongroom-demo-ca' } as const;

/**
 * The demo's issuing CA, its key in the HSM (a token key of `session`'s user) and its
 * certificate in `certFile`: opened if both are there, made (and the certificate written) if not.
 */
export async function openDemoCa(session: HsmSession, certFile: string): Promise<IssuingCa> {
  if (existsSync(certFile)) {
    const { X509Certificate } = await loadX509();
    try {
      return await IssuingCa.open(session, DEMO_CA.alias, [new X509Certificate(readFileSync(certFile, 'utf8'))]);
    } catch (e) {
      if (!(e instanceof HsmError && e.code === 'KEY_NOT_FOUND')) throw e;
      // The certificate outlived its key (a new cluster in the same folder): make a new CA.
    }
  }
  const ca = await IssuingCa.createRoot(session, { ...DEMO_CA, algorithm: 'ECDSA-P256', days: 3650 });
  writeFileDurably(certFile, ca.certificate.toString('pem') + '\n', 0o644);
  return ca;
}
