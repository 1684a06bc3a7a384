/**
 * The AWS management plane: the CloudHSM V2 API (service `cloudhsmv2`, 2017-04-28) over clusters
 * of real members.
 *
 * @module
 */
export { ControlPlane, type ControlPlaneOptions } from './service.js';
export { serveControlPlane, type ControlPlaneServer } from './server.js';
export { ApiError, type ApiErrorType } from './errors.js';
export { developmentCredentials, folderCredentials, type Credentials } from './sigv4.js';

/** The lines an application needs: the endpoint, region and credentials, as environment variables. */
export function endpointLines(url: string, credentials: { accessKeyId: string; secretAccessKey: string } | null, region = 'us-east-1'): string[] {
  return [
    `AWS_ENDPOINT_URL_CLOUDHSM_V2=${url}`,
    `AWS_REGION=${region}`,
    ...(credentials ? [`AWS_ACCESS_KEY_ID=${credentials.accessKeyId}`, `AWS_SECRET_ACCESS_KEY=${credentials.secretAccessKey}`] : ['(development mode: any AWS credentials are accepted)']),
  ];
}
