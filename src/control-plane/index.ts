/**
 * The AWS management plane: the CloudHSM V2 API (service `cloudhsmv2`, 2017-04-28) over clusters
 * of real members.
 *
 * @module
 */
export { ControlPlane, type ControlPlaneOptions } from './service.js';
export { serveControlPlane, type ControlPlaneServer } from './server.js';
export { ApiError, type ApiErrorType } from './errors.js';
export type { Credentials } from './sigv4.js';
