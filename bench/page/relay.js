// The relay benchmark's page (bench/run.ts loads it in Chromium through the relay): the same two
// operations as the Node client's, through strongroom/browser and through the page's own WebCrypto.
import { connectRelay } from '/strongroom-browser.js';

const kib = crypto.getRandomValues(new Uint8Array(1024));
const iv = crypto.getRandomValues(new Uint8Array(12));
const ops = {};
let hsm = null;

async function cases(subtle) {
  const ec = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const aes = await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt']);
  return {
    'ECDSA P-256 sign': () => subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, kib),
    'AES-256-GCM encrypt 1 KiB': () => subtle.encrypt({ name: 'AES-GCM', iv }, aes, kib),
  };
}

/** Logs in through the relay and makes the keys. */
window.benchSetUp = async (username, password) => {
  hsm = await connectRelay(`ws://${location.host}/ws`, { username, password });
  ops.relay = await cases(hsm.crypto.subtle);
  ops.native = await cases(crypto.subtle);
};

/** Calls of one operation a second with `inFlight` callers, over `seconds`, after 2 one by one (as bench/measure.ts). */
window.benchRate = async (impl, name, seconds, inFlight) => {
  const op = ops[impl][name];
  for (let i = 0; i < 2; i++) await op();
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let count = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        await op();
        count += 1;
      }
    }),
  );
  return count / ((performance.now() - start) / 1000);
};

window.benchLogout = () => hsm.logout();
window.benchReady = true;
