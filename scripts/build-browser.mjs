// Builds strongroom/browser: one ES module for pages (dist/browser/strongroom-browser.js), with no
// Node built-ins, and @peculiar/x509 for the demo pages (dist/browser/x509.js). The WebCrypto door is the same source as in Node; two imports are swapped for
// the browser: the hsm-core index (which holds the member) for its error module alone, and
// node:crypto for the page's CSPRNG (src/browser/node-crypto.ts).
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const browserSafe = {
  name: 'browser-safe',
  setup(b) {
    b.onResolve({ filter: /hsm-core\/index\.js$/ }, () => ({ path: join(root, 'src/hsm-core/errors.ts') }));
    b.onResolve({ filter: /^node:crypto$/ }, () => ({ path: join(root, 'src/browser/node-crypto.ts') }));
    b.onResolve({ filter: /^node:/ }, (args) => ({ errors: [{ text: `${args.path} in the browser bundle (imported by ${args.importer})` }] }));
  },
};

for (const [entry, out] of [['src/browser/index.ts', 'strongroom-browser.js'], ['src/browser/x509.ts', 'x509.js']]) {
  await build({
    entryPoints: [join(root, entry)],
    outfile: join(root, 'dist/browser', out),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    minify: false,
    legalComments: 'none',
    plugins: [browserSafe],
    logLevel: 'warning',
  });
}
