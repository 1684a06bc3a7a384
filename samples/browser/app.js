// The relay demo: one page, a view per task. Everything it does with keys goes through
// strongroom/browser to the HSM; the page holds CryptoKey handles only.
import { connectRelay } from '/strongroom-browser.js';
import * as x509 from '/x509.js';

const $ = (id) => document.getElementById(id);
const enc = new TextEncoder();
const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
const unb64 = (text) => Uint8Array.from(atob(text.trim()), (c) => c.charCodeAt(0));

let hsm = null;
const state = { signKey: null, fileKey: null, ciphertext: null, iv: null, plain: null, csr: null, certKeys: null, auditTimer: null, auditNext: 0 };

/** Shows an error to the person (and keeps it in the console too): the message, which says what was wrong; WebCrypto's error names (OperationError…) stay in front, a class name such as HsmError does not. */
function showError(e) {
  console.error(e);
  const box = $('error');
  box.textContent = `${e instanceof DOMException ? `${e.name}: ` : ''}${e?.message ?? String(e)}`;
  box.hidden = false;
}

/** Runs a click handler, clearing old errors and showing new ones. */
function action(id, fn) {
  $(id).addEventListener('click', async (event) => {
    event.preventDefault();
    $('error').hidden = true;
    const button = $(id);
    button.disabled = true;
    try {
      await fn();
    } catch (e) {
      showError(e);
    } finally {
      button.disabled = false;
      refreshButtons();
    }
  });
}

function refreshButtons() {
  $('sign-sign').disabled = !state.signKey;
  $('sign-verify').disabled = !state.signKey || !$('sign-signature').value;
  $('files-encrypt').disabled = !state.fileKey || !$('files-input').files?.length;
  $('files-decrypt').disabled = !state.fileKey || !state.ciphertext;
  $('cert-issue').disabled = !state.csr;
}

function facts(dl, entries) {
  dl.replaceChildren(...entries.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
  dl.hidden = false;
}

// ---- navigation ---------------------------------------------------------------------------------

const VIEWS = ['login', 'sign', 'files', 'certificate', 'keys', 'audit'];
/** The views a user has: none before login; an admin reads the audit log and never uses keys (CloudHSM's rule); a crypto user uses keys and has no audit log. */
const viewsOf = (role) => (role === 'admin' ? ['audit'] : ['sign', 'files', 'certificate', 'keys']);
function show() {
  const wanted = location.hash.replace('#/', '');
  const mine = hsm ? viewsOf(hsm.role) : ['login'];
  const view = mine.includes(wanted) ? wanted : mine[0];
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === view);
  if (view === 'keys') void listKeys().catch(showError);
  if (view === 'audit') startAudit();
  else stopAudit();
}
window.addEventListener('hashchange', show);

// ---- login --------------------------------------------------------------------------------------

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('error').hidden = true;
  $('login').disabled = true;
  try {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    hsm = await connectRelay(url, { username: $('username').value, password: $('password').value }, { role: $('role').value });
    $('who-name').textContent = `${hsm.username} · ${hsm.role}`;
    $('who').hidden = false;
    $('nav').hidden = false;
    $('protocol').textContent = `protocol ${hsm.protocolVersion} · ${hsm.capabilities.algorithms.length} algorithms`;
    x509.cryptoProvider.set(hsm.crypto);
    for (const a of document.querySelectorAll('nav a')) a.hidden = !viewsOf(hsm.role).includes(a.dataset.view);
    show();
  } catch (e) {
    showError(e);
  } finally {
    $('login').disabled = false;
  }
});

action('logout', async () => {
  stopAudit();
  await hsm?.logout();
  hsm = null;
  $('who').hidden = true;
  $('nav').hidden = true;
  show();
});

// ---- sign and verify ----------------------------------------------------------------------------

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256' };
action('sign-generate', async () => {
  state.signKey = await hsm.crypto.subtle.generateKey(ECDSA, false, ['sign', 'verify']);
  $('sign-key').textContent = `ECDSA P-256 · private key extractable: ${state.signKey.privateKey.extractable}`;
  $('sign-key').classList.remove('muted');
  $('sign-signature').value = '';
  $('sign-result').hidden = true;
});
action('sign-sign', async () => {
  const signature = await hsm.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, state.signKey.privateKey, enc.encode($('sign-text').value));
  $('sign-signature').value = b64(signature);
  $('sign-result').hidden = true;
});
action('sign-verify', async () => {
  const ok = await hsm.crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, state.signKey.publicKey, unb64($('sign-signature').value), enc.encode($('sign-text').value));
  const box = $('sign-result');
  box.textContent = ok ? '✓ The signature is valid for this text.' : '✗ The signature does not match this text.';
  box.className = `verdict ${ok ? 'good' : 'bad'}`;
  box.hidden = false;
});
$('sign-text').addEventListener('input', () => ($('sign-result').hidden = true));

// ---- files --------------------------------------------------------------------------------------

action('files-generate', async () => {
  state.fileKey = await hsm.crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  $('files-key').textContent = 'AES-256-GCM · not extractable';
  $('files-key').classList.remove('muted');
  state.ciphertext = null;
});
$('files-input').addEventListener('change', refreshButtons);
action('files-encrypt', async () => {
  const file = $('files-input').files[0];
  state.plain = new Uint8Array(await file.arrayBuffer());
  state.iv = crypto.getRandomValues(new Uint8Array(12));
  state.ciphertext = await hsm.crypto.subtle.encrypt({ name: 'AES-GCM', iv: state.iv }, state.fileKey, state.plain);
  const link = $('files-download');
  link.href = URL.createObjectURL(new Blob([state.iv, state.ciphertext]));
  link.download = `${file.name}.enc`;
  link.hidden = false;
  facts($('files-result'), [
    ['File', `${file.name} (${state.plain.length} bytes)`],
    ['Ciphertext', `${state.ciphertext.byteLength} bytes (${state.ciphertext.byteLength - state.plain.length}-byte tag)`],
    ['IV', b64(state.iv)],
  ]);
});
action('files-decrypt', async () => {
  const plain = new Uint8Array(await hsm.crypto.subtle.decrypt({ name: 'AES-GCM', iv: state.iv }, state.fileKey, state.ciphertext));
  const same = plain.length === state.plain.length && plain.every((b, i) => b === state.plain[i]);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(plain.slice(0, 200));
  facts($('files-result'), [
    ['Decrypted', `${plain.length} bytes`],
    ['Matches the file', same ? 'yes ✓' : 'no ✗'],
    ['Starts with', text],
  ]);
});

// ---- certificate --------------------------------------------------------------------------------

action('cert-csr', async () => {
  const cn = $('cert-cn').value.trim();
  if (!/^[A-Za-z0-9.\-]{1,64}$/.test(cn)) throw new Error('Common name: letters, digits, dots and dashes (e.g. page.example)');
  state.certKeys = await hsm.crypto.subtle.generateKey(ECDSA, false, ['sign', 'verify']);
  state.csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${cn}`,
    keys: state.certKeys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: cn }])],
  }, hsm.crypto);
  $('cert-csr-pem').value = state.csr.toString('pem');
  $('cert-pem').value = '';
  $('cert-facts').hidden = true;
});
action('cert-issue', async () => {
  const { certificate, chain } = await hsm.issueCertificate(state.csr.toString('pem'));
  const cert = new x509.X509Certificate(certificate);
  const issuer = new x509.X509Certificate(chain[0]);
  const valid = await cert.verify({ publicKey: issuer.publicKey }, hsm.crypto);
  facts($('cert-facts'), [
    ['Subject', cert.subject],
    ['Issuer', cert.issuer],
    ['Serial', cert.serialNumber],
    ['Valid', `${cert.notBefore.toISOString().slice(0, 10)} → ${cert.notAfter.toISOString().slice(0, 10)}`],
    ['Signature', `${cert.signatureAlgorithm.name} ${cert.signatureAlgorithm.hash?.name ?? ''}`.trim()],
    ['Signed by the CA', valid ? 'yes ✓' : 'no ✗'],
    ['Public key', `${cert.publicKey.algorithm.name} ${cert.publicKey.algorithm.namedCurve ?? ''}`.trim()],
  ]);
  $('cert-pem').value = certificate;
});

// ---- keys ---------------------------------------------------------------------------------------

async function listKeys() {
  const { keys } = await hsm.listKeys({ maxItems: 500 });
  const rows = keys.map((k) => {
    const a = k.attributes;
    const usages = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'].filter((u) => a[u]).join(' ');
    const tr = document.createElement('tr');
    for (const v of [k.keyReference, a.label || '—', a.class, a['key-type'], String(a.token), String(a.extractable), usages || '—', k.clusterCoverage]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    return tr;
  });
  $('keys-table').tBodies[0].replaceChildren(...rows);
  $('keys-count').textContent = `${keys.length} key${keys.length === 1 ? '' : 's'}`;
}
action('keys-refresh', listKeys);

// ---- audit log ----------------------------------------------------------------------------------

async function pollAudit() {
  const { records } = await hsm.send({ op: 'getAuditLog', fromSequence: state.auditNext, maxItems: 200 });
  const body = $('audit-table').tBodies[0];
  for (const r of records) {
    const tr = document.createElement('tr');
    for (const v of [r.sequence, r.time.replace('T', ' ').slice(0, 19), r.opcode, r.user ?? '—', r.response]) {
      const td = document.createElement('td');
      td.textContent = String(v);
      tr.append(td);
    }
    body.prepend(tr);
    state.auditNext = r.sequence + 1;
  }
  $('audit-status').textContent = `live · ${state.auditNext} records`;
}
function startAudit() {
  if (state.auditTimer || !hsm) return;
  const tick = () => pollAudit().catch((e) => {
    stopAudit();
    showError(e);
  });
  void tick();
  state.auditTimer = setInterval(tick, 1000);
}
function stopAudit() {
  clearInterval(state.auditTimer);
  state.auditTimer = null;
}

show();
