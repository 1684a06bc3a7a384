/**
 * The CloudHSM V2 API's errors: the service's exception types (and the AWS protocol's own, for
 * requests that never reach an operation), each with a one-line message naming what was wrong.
 *
 * @module
 */

export type ApiErrorType =
  | 'CloudHsmInvalidRequestException'
  | 'CloudHsmResourceNotFoundException'
  | 'CloudHsmAccessDeniedException'
  | 'CloudHsmInternalFailureException'
  | 'CloudHsmServiceException'
  | 'CloudHsmTagException'
  | 'CloudHsmResourceLimitExceededException'
  | 'UnknownOperationException'
  | 'SerializationException'
  | 'MissingAuthenticationTokenException'
  | 'UnrecognizedClientException'
  | 'InvalidSignatureException';

const STATUS: Partial<Record<ApiErrorType, number>> = {
  CloudHsmInternalFailureException: 500,
  MissingAuthenticationTokenException: 403,
  UnrecognizedClientException: 403,
  InvalidSignatureException: 403,
};

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly type: ApiErrorType,
    message: string,
  ) {
    super(message);
    this.status = STATUS[type] ?? 400;
  }
}

/** A request field the service refuses. */
export const invalid = (message: string): ApiError => new ApiError('CloudHsmInvalidRequestException', message);
export const notFound = (message: string): ApiError => new ApiError('CloudHsmResourceNotFoundException', message);
