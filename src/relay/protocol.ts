/**
 * The relay's wire protocol, shared by the server (Node) and the browser client: binary
 * WebSocket messages, each one MessagePack map with a request id. Byte strings travel as bytes
 * (no base64). Only handles and public data cross it, and key bytes only when the HSM itself
 * allows an export.
 *
 * Page → relay: `{ id, type: 'hello', versions: number[] }` first; then `{ id, type: 'login',
 * username, password, role? }`; then `{ id, type: 'request', request: { op, … } }` (a member
 * request without its session, which the relay adds), `{ id, type: 'capabilities' }`,
 * `{ id, type: 'listKeys', request? }`, `{ id, type: 'issueCertificate', csr }` (when the relay
 * has a CA) and `{ id, type: 'logout' }`.
 *
 * Relay → page: `{ id, ok: true, result }` or `{ id, ok: false, error: { code, message } }`.
 * A message that cannot be read closes the connection with a close reason that says why.
 *
 * Version 2 adds batches: once hello has agreed on version 2, a WebSocket message may also be a
 * MessagePack array of such maps — the page sends the requests it made in one turn of its event
 * loop together, and the relay the answers it finished in one turn of its own — so that many
 * requests in flight cost one frame and one system call each way rather than one per request.
 * Each element is handled exactly as the same map sent alone; an empty batch, or one with an
 * element that is not a map with a positive integer id, closes the connection before any of its
 * elements is handled. A version 1 page never receives a batch.
 *
 * This module imports nothing with side effects, so the browser bundle can include it.
 *
 * @module
 */

/** Protocol versions this build speaks, newest last. */
export const RELAY_PROTOCOL_VERSIONS = [1, 2] as const;

/** The first version in which messages may be batches (arrays of messages). */
export const RELAY_BATCH_VERSION = 2;

/**
 * The most messages either end puts in one batch: a turn's further messages leave in further
 * batches, so that the other end starts on the first while this one makes the rest. With 64 in
 * flight from a Chromium page, one batch of 64 made page and relay work in turns: AES-GCM of 1 KiB
 * went from 11-20 to 19-30 thousand calls a second with 32, and 16 gave less than 32 (ECDSA moved
 * within its noise). Not part of the protocol: a batch may hold more.
 */
export const RELAY_BATCH_MAX = 32;

export interface RelayCapabilities {
  protocolVersion: number;
  /** WebCrypto algorithm names the HSM door implements. */
  algorithms: string[];
  /** Member operations the relay forwards. */
  operations: string[];
  limits: { maxMessageBytes: number; maxInFlight: number; idleTimeoutMs: number };
}

export type RelayMessage =
  | { id: number; type: 'hello'; versions: number[] }
  | { id: number; type: 'login'; username: string; password: string; role?: 'crypto-user' | 'admin' }
  | { id: number; type: 'capabilities' }
  | { id: number; type: 'request'; request: Record<string, unknown> & { op: string } }
  | { id: number; type: 'listKeys'; request?: Record<string, unknown> }
  | { id: number; type: 'issueCertificate'; csr: Uint8Array | string }
  | { id: number; type: 'logout' };

export type RelayAnswer = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: { code: string; message: string } };

/** WebSocket close codes the relay uses. */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  invalidPayload: 1007,
  policy: 1008,
  tooBig: 1009,
  tryAgainLater: 1013,
} as const;
