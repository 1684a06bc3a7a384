/**
 * The WebCrypto door's conformance tests (test/subtle/crypto.test.ts, errors.test.ts and
 * wycheproof.test.ts, the files the door runs in Node) run in Chromium through the relay:
 * bundled with mocha for the browser, with a fixture that connects to two relays (the unlimited
 * and the cloudhsm profile), the browser's own WebCrypto as the reference, and the vector files
 * loaded by the page first (every 6th Wycheproof vector of each file: all of them run in Node).
 * Every test must pass there too.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { startRelay, type Relay } from '../../src/relay/index.js';
import { CHROMIUM, CHROMIUM_ARGS, requireChromium } from '../helpers/chromium.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = join(ROOT, 'test', '.tmp', 'browser-conformance');

/** The door's fixture (the relay instead of a local cluster) and the shims for reading the test vectors replace what only the Node tests have; the source under test is bundled as it is. */
const browserSafe = {
  name: 'browser-safe',
  setup(b: import('esbuild').PluginBuild) {
    b.onResolve({ filter: /helpers\/door\.js$/ }, () => ({ path: join(ROOT, 'test/browser/door.ts') }));
    b.onResolve({ filter: /^node:(fs|path|url)$/ }, () => ({ path: join(ROOT, 'test/browser/node-shims.ts') }));
    b.onResolve({ filter: /^node:/ }, (a) => ({ errors: [{ text: `${a.path} (imported by ${a.importer}) has no place in the browser` }] }));
  },
};

/** The full titles of the tests those files define in Node (mocha's dry run), sorted: which pass and which are skipped. */
function nodeTests(): { passes: string[]; pending: string[] } {
  const files = ['crypto', 'errors', 'wycheproof'].map((n) => join(ROOT, 'test', 'subtle', `${n}.test.ts`));
  const json = execFileSync(process.execPath, [join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--dry-run', '--no-parallel', '--reporter', 'json', ...files], { cwd: ROOT, encoding: 'utf8' });
  const report = JSON.parse(json) as { passes: { fullTitle: string }[]; pending: { fullTitle: string }[] };
  return { passes: report.passes.map((t) => t.fullTitle).sort(), pending: report.pending.map((t) => t.fullTitle).sort() };
}

/** The page's window, as the functions evaluated in the page see it. */
declare const window: { __result?: BrowserResult };

interface BrowserResult {
  error?: string;
  passes: string[];
  failures: string[];
  pending: string[];
}

describe('relay: the WebCrypto conformance tests in Chromium', function () {
  this.timeout(240_000);
  const clusters: LocalCluster[] = [];
  const relays: Relay[] = [];
  let browser: Browser;

  before(async function () {
    requireChromium(this);
    mkdirSync(OUT, { recursive: true });
    await build({
      entryPoints: [join(ROOT, 'test/browser/conformance.ts')],
      outfile: join(OUT, 'conformance.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      plugins: [browserSafe],
      logLevel: 'warning',
    });
    for (const profile of ['unlimited', 'cloudhsm'] as const) {
      clusters.push(await startLocalCluster({
        adminPassword: 'admin-password',
        passwordCost: 10,
        profile,
        users: [
          { username: 'app', password: 'app-password', role: 'crypto-user' },
          { username: 'other', password: 'other-password', role: 'crypto-user' },
        ],
      }));
    }
    // The page comes from the first relay (its files are read when asked for, so they are written
    // once both addresses are known); the second relay allows that origin.
    relays.push(await startRelay({
      cluster: clusters[0]!,
      port: 0,
      maxInFlight: 4096,
      maxMessageBytes: 8 << 20,
      folders: { '/vectors/wycheproof/': join(ROOT, 'test', 'vectors', 'wycheproof') },
      files: {
        '/vectors/index.json': join(OUT, 'vectors.json'),
        '/': join(OUT, 'index.html'),
        '/setup.js': join(OUT, 'setup.js'),
        '/run.js': join(OUT, 'run.js'),
        '/conformance.js': join(OUT, 'conformance.js'),
        '/mocha.js': join(ROOT, 'node_modules', 'mocha', 'mocha.js'),
      },
    }));
    relays.push(await startRelay({ cluster: clusters[1]!, port: 0, maxInFlight: 4096, maxMessageBytes: 8 << 20, allowedOrigins: [relays[0]!.url] }));
    const ws = (r: Relay) => `${r.url.replace('http', 'ws')}/ws`;
    writeFileSync(join(OUT, 'vectors.json'), JSON.stringify(readdirSync(join(ROOT, 'test', 'vectors', 'wycheproof')).filter((n) => n.endsWith('.json'))));
    writeFileSync(join(OUT, 'index.html'), '<!doctype html><meta charset="utf-8"><title>conformance</title><div id="mocha"></div><script src="/mocha.js"></script><script src="/setup.js"></script><script type="module" src="/run.js"></script>\n');
    // Wycheproof takes every 6th vector of each file in the page (all of them run on one member in Node).
    writeFileSync(join(OUT, 'setup.js'), `mocha.setup({ ui: 'bdd', timeout: 60000 });\nglobalThis.__STRONGROOM_RELAYS__ = ${JSON.stringify({ unlimited: ws(relays[0]!), cloudhsm: ws(relays[1]!) })};\nglobalThis.__STRONGROOM_WYCHEPROOF_STRIDE__ = 6;\n`);
    writeFileSync(join(OUT, 'run.js'), `
const result = { passes: [], failures: [], pending: [] };
try {
  // The vector files the Wycheproof test reads, loaded before it runs (see test/browser/node-shims.ts).
  const names = await (await fetch('/vectors/index.json')).json();
  globalThis.__STRONGROOM_FILES__ = Object.fromEntries(await Promise.all(names.map(async (n) => ['/vectors/wycheproof/' + n, await (await fetch('/vectors/wycheproof/' + n)).text()])));
  await import('/conformance.js');
  const runner = mocha.run();
  runner.on('pass', (t) => result.passes.push(t.fullTitle()));
  runner.on('fail', (t, err) => result.failures.push(t.fullTitle() + ': ' + (err && err.message)));
  runner.on('pending', (t) => result.pending.push(t.fullTitle()));
  runner.on('end', () => { window.__result = result; });
} catch (e) {
  window.__result = { ...result, error: String((e && e.stack) || e) };
}
`);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    for (const r of relays) await r.close();
    for (const c of clusters) await c.close();
  });

  it('crypto.test.ts, errors.test.ts and wycheproof.test.ts pass in the browser as in Node', async () => {
    const page = await browser.newPage();
    const console: string[] = [];
    page.on('console', (m) => console.push(m.text()));
    page.on('pageerror', (e) => console.push(`page error: ${e.message}`));
    await page.goto(relays[0]!.url);
    await page.waitForFunction(() => window.__result !== undefined, undefined, { timeout: 200_000 });
    const result = (await page.evaluate(() => window.__result)) as BrowserResult;
    expect(result.error, console.join('\n')).to.equal(undefined);
    expect(result.failures, console.join('\n')).to.deep.equal([]);
    // Exactly the tests that Node runs from the same files: each passed, the same ones skipped.
    const inNode = nodeTests();
    expect([...result.passes].sort()).to.deep.equal(inNode.passes);
    expect([...result.pending].sort()).to.deep.equal(inNode.pending);
    expect(result.passes.some((t) => t.startsWith('subtle: errors'))).to.equal(true);
    expect(result.passes.some((t) => t.startsWith('subtle: Crypto'))).to.equal(true);
    // Every Wycheproof file (Ed448 and X448 included) runs in the page too.
    expect(result.passes.filter((t) => t.includes('_test.json')).length).to.equal(readdirSync(join(ROOT, 'test', 'vectors', 'wycheproof')).filter((n) => n.endsWith('.json')).length);
  });
});
