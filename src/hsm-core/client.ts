/**
 * hsm-core's face for a Node process that talks to members (the CLI, the cluster client over
 * TLS): the browser-safe face (face.ts), plus the wire's framing, the operations table, the audit
 * chain check, the profiles' names, the protocol's fixed lists and durable file writes. Like the face, it holds no
 * member and no store, and it does not load the protocol's schemas: a process that only sends
 * requests does not pay to load what checks them.
 *
 * @module
 */
export * from './face.js';
export { FrameReader, encodeFrame, tickBatched, BATCH_LIMIT, MAX_FRAME_BYTES, type Frame } from './wire.js';
export { OPERATIONS, handlesOf, type OperationFacts, type ClusterRule, type HandleField } from './operations.js';
export { verifyAuditChain, GENESIS_HASH, type AuditVerdict } from './audit.js';
export { PROFILE_NAMES, type ProfileName } from './profiles.js';
export { writeFileDurably } from './durable.js';
export { ADMIN_SERVICES, EC_CURVES, HASHES, QUORUM_SERVICES } from './names.js';
export type { AdminService, QuorumService } from './protocol.js';
