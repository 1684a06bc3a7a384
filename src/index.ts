/**
 * Strongroom: an emulated CloudHSM cluster for Node.
 *
 * @module
 */
export { startLocalCluster, LocalCluster, HsmSession, type LocalClusterOptions, type LocalUser, type SessionRequest } from './cluster-client/index.js';
export {
  HsmError,
  HSM_ERROR_CODES,
  verifyAuditChain,
  keyRef,
  type AuditRecord,
  type AuditVerdict,
  type HsmErrorCode,
  type HsmInfo,
  type KeyAttributes,
  type KeyInfo,
  type ProfileName,
  type Template,
  type UserInfo,
  type UserRole,
} from './hsm-core/index.js';
