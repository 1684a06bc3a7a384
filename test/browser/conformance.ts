/**
 * The WebCrypto door's own conformance tests, bundled for the browser (see
 * test/relay/conformance.test.ts): the same files the door runs in Node.
 */
import { Buffer } from 'buffer';

(globalThis as unknown as { Buffer: typeof Buffer }).Buffer = Buffer;
await import('../subtle/crypto.test.js');
await import('../subtle/errors.test.js');
