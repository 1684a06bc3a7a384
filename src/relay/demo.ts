/**
 * The demo pages (samples/browser) and the browser bundles (dist/browser), as the relay serves
 * them: `/` the page, `/demo/…` its script and style, `/strongroom-browser.js` and `/x509.js`.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HsmError } from '../hsm-core/index.js';

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
