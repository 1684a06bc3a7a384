/**
 * hsm-core's browser-safe face: `HsmError` and its codes, the protocol's types,
 * {@link perTurn}, with which both ends of a link batch their messages, and {@link withField}. It holds no member, no
 * store and no `node:` import, so what runs in a page (the WebCrypto door, the relay client, the
 * session) imports this and the browser bundle comes straight from the import graph.
 *
 * @module
 */
export { HsmError, HSM_ERROR_CODES, keyRef, withArticle, type HsmErrorCode, type WireError } from './errors.js';
export { USAGE_ATTRIBUTE, type KeyOp } from './usages.js';
export type { AttributeFilter, KeyAttributes, Template } from './attributes.js';
export type {
  CipherMechanism,
  DeriveMechanism,
  HashName,
  HsmInfo,
  Jwk,
  KeyFormat,
  KeyInfo,
  Op,
  Request,
  RequestOf,
  Response,
  ResultOf,
  Results,
  SignMechanism,
  UserInfo,
  UserRole,
  WrapMechanism,
} from './protocol.js';

/**
 * Collects the items given within one turn and hands them to `flush` together when it ends, so
 * that many requests (or answers) in flight cost one message rather than one each: a worker's
 * port, a WebSocket. `later` schedules the end of the turn (default: `process.nextTick`, after
 * this tick's promise jobs); it is called once per batch, never while one is waiting. With `max`,
 * a batch leaves as soon as it holds that many items (the rest of the turn's go in the next), so
 * that the other end starts on the first while this one makes the rest.
 */
export function perTurn<T>(flush: (items: T[]) => void, later: (end: () => void) => void = (end) => process.nextTick(end), max = Infinity): (item: T) => void {
  let items: T[] | null = null;
  let waiting = false;
  const end = () => {
    waiting = false;
    const batch = items;
    items = null;
    if (batch) flush(batch);
  };
  return (item) => {
    if (items) items.push(item);
    else items = [item];
    if (items.length >= max) {
      const batch = items;
      items = null;
      flush(batch);
    }
    if (!waiting) {
      waiting = true;
      later(end);
    }
  };
}

/**
 * A copy of `object` with `key` set to `value`, whatever `object` holds under `key` (a field of the
 * caller's own never wins): a request with its session's token, a message or a job with its id.
 * The field goes in first and is then set again. In Node 20's V8, a spread followed by a field the
 * spread object lacks (`{ ...object, key: value }`) gives every such object a hidden class of its
 * own, about 320 bytes, and whoever reads them (a member reading requests) then finds each field
 * the slow way. Raw SHA-256 of 32 bytes, 64 in flight, one in-process member, alternating builds:
 * 9.9-11.3 µs of CPU a request with the spread, 4.8-6.8 µs this way.
 */
export function withField<T extends object, K extends string, V>(object: T, key: K, value: V): T & Record<K, V> {
  const out = { [key]: value, ...object } as Record<string, unknown>;
  out[key] = value;
  return out as T & Record<K, V>;
}
