/**
 * The WebCrypto door's own conformance tests, bundled for the browser (see
 * test/relay/conformance.test.ts): the same files the door runs in Node. (keys.test.ts and
 * clients.test.ts are about Node topologies and tools; differential.test.ts compares with
 * node:crypto and @peculiar/webcrypto, which a page does not have.)
 */
import { Buffer } from 'buffer';

(globalThis as unknown as { Buffer: typeof Buffer }).Buffer = Buffer;
await import('../subtle/crypto.test.js');
await import('../subtle/errors.test.js');
await import('../subtle/wycheproof.test.js');
