// Builds strongroom/browser: one ES module for pages (dist/browser/strongroom-browser.js), and
// @peculiar/x509 for the demo pages (dist/browser/x509.js). The WebCrypto door is the same source
// as in Node, bundled from the import graph as it is (it reaches hsm-core only through its
// browser-safe face, hsm-core/face.ts); a Node built-in in that graph fails the build.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const browserSafe = {
  name: 'browser-safe',
  setup(b) {
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
