/**
 * hsm-core's browser-safe face: `HsmError` and its codes, and the protocol's types. It holds no
 * member, no store and no `node:` import, so what runs in a page (the WebCrypto door, the relay
 * client, the session) imports this and the browser bundle comes straight from the import graph.
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
