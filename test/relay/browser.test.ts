/**
 * The demo pages in Debian's Chromium (headless, driven by playwright-core) through the relay:
 * each page's main flow by clicks, with assertions on what the page shows and a screenshot kept
 * in test/.artifacts/. Without Chromium the suite is skipped, unless STRONGROOM_REQUIRE_BROWSER
 * is set (CI sets it), when it fails.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { IssuingCa } from '../../src/keystore/index.js';
import { demoSite, startRelay, type Relay } from '../../src/relay/index.js';
import { CHROMIUM, CHROMIUM_ARGS, requireChromium } from '../helpers/chromium.js';
import { markedBlock } from '../helpers/docs.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The page's document, as the functions evaluated in the page see it (this module has no DOM types; the pages' CSP forbids string evaluation). */
declare const document: {
  getElementById(id: string): { textContent: string | null; value?: string } | null;
  querySelectorAll(selector: string): { length: number };
};
const ARTIFACTS = join(ROOT, 'test', '.artifacts');
describe('relay: the demo pages in Chromium', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let relay: Relay;
  let browser: Browser;
  let page: Page;
  let ca: IssuingCa;

  before(async function () {
    requireChromium(this);
    mkdirSync(ARTIFACTS, { recursive: true });
    cluster = await startLocalCluster({
      adminPassword: 'admin-password',
      passwordCost: 10,
      users: [
        { username: 'app', password: 'app-password', role: 'crypto-user' },
        { username: 'demo_ca', password: 'demo-ca-password', role: 'crypto-user' },
        { username: 'readme', password: 'strongroom-app', role: 'crypto-user' },
      ],
    });
    const caSession = await cluster.login('demo_ca', 'demo-ca-password');
    ca = await IssuingCa.createRoot(caSession, { subject: 'CN=Strongroom Demo CA', alias: 'demo-ca', algorithm: 'ECDSA-P256' });
    // The documented page example (docs/relay.md), served as a file (the pages' CSP allows no inline script).
    const example = markedBlock('browser-example', 'js').replace("username: 'app'", "username: 'readme'");
    mkdirSync(join(ROOT, 'test', '.tmp'), { recursive: true });
    writeFileSync(join(ROOT, 'test', '.tmp', 'readme-browser-example.js'), example);
    const site = demoSite();
    relay = await startRelay({ cluster, port: 0, ca, ...site, files: { ...site.files, '/readme-example.js': join(ROOT, 'test', '.tmp', 'readme-browser-example.js') } });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  });
  after(async () => {
    await browser?.close();
    await relay?.close();
    await cluster?.close();
  });

  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `relay-${name}.png`), fullPage: true });

  it('login: a wrong password is shown to the person; the right one opens the app', async () => {
    await page.goto(relay.url);
    await page.fill('#password', 'not-the-password');
    await page.click('#login');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).to.match(/^wrong password for app/);
    // Nothing but the login form before login, whatever the address says.
    await page.goto(`${relay.url}#/keys`);
    expect(await page.isHidden('#view-keys')).to.equal(true);
    expect(await page.isVisible('#view-login')).to.equal(true);
    expect(await page.isHidden('#nav')).to.equal(true);
    // The page names its icon (no request for a missing /favicon.ico).
    expect(await page.getAttribute('link[rel=icon]', 'href')).to.match(/^data:image\/svg\+xml,/);
    await page.fill('#password', 'app-password');
    await page.click('#login');
    await page.waitForSelector('#nav:not([hidden])');
    expect(await page.textContent('#who-name')).to.equal('app · crypto-user');
    expect(await page.isHidden('#error')).to.equal(true);
    await shot('login');
  });

  it('sign and verify: a non-extractable HSM key signs; an edited text fails verification', async () => {
    await page.click('a[data-view=sign]');
    await page.click('#sign-generate');
    await page.waitForFunction(() => document.getElementById('sign-key')!.textContent!.includes('extractable: false'));
    await page.click('#sign-sign');
    await page.waitForFunction(() => document.getElementById('sign-signature')!.value!.length > 0);
    await page.click('#sign-verify');
    await page.waitForSelector('#sign-result:not([hidden])');
    expect(await page.textContent('#sign-result')).to.contain('✓ The signature is valid');
    await shot('sign');
    await page.fill('#sign-text', 'Pay 900 EUR to Mallory');
    await page.click('#sign-verify');
    await page.waitForSelector('#sign-result.bad');
    expect(await page.textContent('#sign-result')).to.contain('does not match');
  });

  it('files: encrypts a chosen file with an HSM AES-GCM key and decrypts it back', async () => {
    await page.click('a[data-view=files]');
    await page.click('#files-generate');
    await page.setInputFiles('#files-input', { name: 'secret.txt', mimeType: 'text/plain', buffer: Buffer.from('the launch codes are 0000\n'.repeat(40)) });
    await page.click('#files-encrypt');
    await page.waitForSelector('#files-result:not([hidden])');
    expect(await page.textContent('#files-result')).to.contain('secret.txt (1040 bytes)');
    expect(await page.textContent('#files-result')).to.contain('1056 bytes (16-byte tag)');
    await page.click('#files-decrypt');
    await page.waitForFunction(() => document.getElementById('files-result')!.textContent!.includes('Matches the file'));
    expect(await page.textContent('#files-result')).to.contain('yes ✓');
    expect(await page.textContent('#files-result')).to.contain('the launch codes are 0000');
    await shot('files');
  });

  it('certificate: a CSR made in the page for an HSM key, issued by the HSM-held CA', async () => {
    await page.click('a[data-view=certificate]');
    await page.fill('#cert-cn', 'browser.example');
    await page.click('#cert-csr');
    await page.waitForFunction(() => document.getElementById('cert-csr-pem')!.value!.startsWith('-----BEGIN CERTIFICATE REQUEST-----'));
    await page.click('#cert-issue');
    await page.waitForSelector('#cert-facts:not([hidden])');
    const shown = await page.textContent('#cert-facts');
    expect(shown).to.contain('CN=browser.example');
    expect(shown).to.contain('CN=Strongroom Demo CA');
    expect(shown).to.contain('Signed by the CAyes ✓');
    const pem = await page.inputValue('#cert-pem');
    const cert = new x509.X509Certificate(pem);
    expect(await cert.verify({ publicKey: ca.certificate.publicKey })).to.equal(true);
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.items.map((n) => n.value)).to.deep.equal(['browser.example']);
    await shot('certificate');
  });

  it('keys: lists the keys made in this session with their attributes', async () => {
    await page.click('a[data-view=keys]');
    await page.waitForFunction(() => document.querySelectorAll('#keys-table tbody tr').length >= 5);
    const text = await page.textContent('#keys-table');
    expect(text).to.contain('private-key');
    expect(text).to.contain('secret-key');
    expect(text).to.match(/0x[0-9a-f]{16}/);
    await shot('keys');
  });

  it("the documented page example (docs/relay.md) runs in a page served by the relay", async () => {
    const readmePage = await browser.newPage();
    const logged = new Promise<string>((resolve) => readmePage.on('console', (m) => m.text().startsWith('signature of') && resolve(m.text())));
    await readmePage.goto(relay.url);
    await readmePage.addScriptTag({ url: '/readme-example.js', type: 'module' });
    expect(await logged).to.equal('signature of 64 bytes, valid: true');
    await readmePage.close();
  });

  it('audit: an admin sees the audit log live; a crypto user has no audit view', async () => {
    expect(await page.isHidden('a[data-view=audit]')).to.equal(true);
    await page.goto(`${relay.url}#/audit`);
    await page.waitForSelector('#view-sign:not([hidden])');
    expect(await page.isHidden('#view-audit')).to.equal(true);
    const admin = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await admin.goto(relay.url);
    await admin.fill('#username', 'admin');
    await admin.fill('#password', 'admin-password');
    await admin.selectOption('#role', 'admin');
    await admin.click('#login');
    await admin.waitForFunction(() => document.querySelectorAll('#audit-table tbody tr').length > 5);
    const before = await admin.$$eval('#audit-table tbody tr', (rows) => rows.length);
    expect(await admin.isHidden('a[data-view=sign]')).to.equal(true);
    expect(await admin.textContent('#audit-table')).to.contain('CN_LOGIN');
    // A new event shows up without reloading.
    const s = await cluster.login('app', 'app-password');
    await s.logout();
    await admin.waitForFunction((n) => document.querySelectorAll('#audit-table tbody tr').length > n, before, { timeout: 10_000 });
    await admin.screenshot({ path: join(ARTIFACTS, 'relay-audit.png'), fullPage: true });
    await admin.close();
  });
});
