/**
 * AWS Signature Version 4 on incoming requests: the signature is computed again from the request
 * as received (its signed headers, path and body) with the secret of the access key it names, by
 * @smithy/signature-v4 (the signer the AWS SDKs use), and compared in constant time.
 *
 * @module
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignatureV4 } from '@smithy/signature-v4';
import { writeFileDurably } from '../hsm-core/client.js';
import { ApiError } from './errors.js';

const bytesOf = (d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array =>
  typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** SHA-256 and HMAC-SHA-256 as the signer asks for them (node:crypto). */
export class Sha256 {
  readonly #hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytesOf(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytesOf(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
}

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  /**
   * The actions this key may call, as IAM writes them (`cloudhsm:DescribeClusters`,
   * `cloudhsm:Describe*`, `cloudhsm:*`); absent: every action. Others are CloudHsmAccessDeniedException.
   */
  actions?: readonly string[];
}

/** What a verified request says of itself: its key, its region and what the key may call. */
export interface Caller {
  accessKeyId: string;
  region: string;
  actions?: readonly string[];
}

/** Whether an IAM action pattern (`*` and `?` wildcards, any case) covers `action`. */
export function actionMatches(pattern: string, action: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`, 'i');
  return re.test(action);
}

const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;
const MAX_SKEW_MS = 15 * 60 * 1000;

/**
 * Checks a request's SigV4 signature for the service `cloudhsm`. With `credentials` null (the
 * documented development mode) any well-formed signature is taken, whatever its key.
 */
export async function verifySignature(
  request: { method: string; host: string; path: string; headers: Record<string, string | string[] | undefined>; body: Buffer },
  credentials: readonly Credentials[] | null,
  now: Date = new Date(),
): Promise<Caller> {
  const header = request.headers.authorization;
  if (typeof header !== 'string') throw new ApiError('MissingAuthenticationTokenException', 'the request is not signed: sign it with AWS Signature Version 4 (the AWS SDKs and CLI do)');
  const m = AUTH.exec(header);
  if (!m) throw new ApiError('InvalidSignatureException', 'the Authorization header is not an AWS4-HMAC-SHA256 signature');
  const [, accessKeyId, day, region, service, signedList, signature] = m as unknown as [string, string, string, string, string, string, string];
  if (service !== 'cloudhsm') throw new ApiError('InvalidSignatureException', `the request is signed for the service ${service}, not cloudhsm`);
  const amzDate = request.headers['x-amz-date'];
  if (typeof amzDate !== 'string' || !/^\d{8}T\d{6}Z$/.test(amzDate) || !amzDate.startsWith(day)) throw new ApiError('InvalidSignatureException', 'X-Amz-Date is missing or does not match the credential scope');
  const signingDate = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  if (Math.abs(now.getTime() - signingDate.getTime()) > MAX_SKEW_MS) throw new ApiError('InvalidSignatureException', `the signature was made at ${signingDate.toISOString()}, more than 15 minutes from the server's time`);
  if (credentials === null) return { accessKeyId, region };
  const known = credentials.find((c) => c.accessKeyId === accessKeyId);
  if (!known) throw new ApiError('UnrecognizedClientException', `the access key ${accessKeyId} is not one this endpoint knows`);
  const signed = signedList.split(';');
  if (!signed.includes('host')) throw new ApiError('InvalidSignatureException', 'the signature does not cover the Host header');
  const headers: Record<string, string> = {};
  for (const name of signed) {
    const value = request.headers[name];
    if (value === undefined) throw new ApiError('InvalidSignatureException', `the signed header ${name} is not in the request`);
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const [hostname, port] = request.host.split(/:(?=\d+$)/);
  const signer = new SignatureV4({ service: 'cloudhsm', region, credentials: { accessKeyId, secretAccessKey: known.secretAccessKey, ...(typeof request.headers['x-amz-security-token'] === 'string' ? { sessionToken: request.headers['x-amz-security-token'] } : {}) }, sha256: Sha256, applyChecksum: false });
  const expected = await signer.sign(
    { method: request.method, protocol: 'http:', hostname: hostname!, ...(port ? { port: Number(port) } : {}), path: request.path, query: {}, headers, body: request.body },
    { signingDate, signableHeaders: new Set(signed), unsignableHeaders: new Set() },
  );
  const ours = /Signature=([0-9a-f]{64})/.exec(String(expected.headers.authorization))?.[1] ?? '';
  const theirs = Buffer.from(signature, 'hex');
  if (ours.length !== 64 || !timingSafeEqual(Buffer.from(ours, 'hex'), theirs)) {
    throw new ApiError('InvalidSignatureException', 'the request signature does not match the one computed with the secret key of its access key');
  }
  return { accessKeyId, region, ...(known.actions ? { actions: known.actions } : {}) };
}

/**
 * The development credentials of a data folder (`credentials.json`, 0600, made at the first
 * start): the access key and secret `strongroom up` prints for the AWS CLI and SDKs.
 */
export function developmentCredentials(dir: string): Credentials {
  return folderCredentials(dir)[0]!;
}

/**
 * Every key of a data folder's `credentials.json`: one object, or a list of them, each
 * `{accessKeyId, secretAccessKey, actions?}` (see {@link Credentials.actions}); the first is the one
 * `strongroom up` prints. Made with one full-access key at the first start.
 */
export function folderCredentials(dir: string): Credentials[] {
  const file = join(dir, 'credentials.json');
  if (existsSync(file)) {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    const list = (Array.isArray(parsed) ? parsed : [parsed]) as Credentials[];
    list.forEach((c, i) => {
      const ok = typeof c?.accessKeyId === 'string' && typeof c.secretAccessKey === 'string' && (c.actions === undefined || (Array.isArray(c.actions) && c.actions.every((a) => typeof a === 'string')));
      if (!ok) throw new Error(`${file}: entry ${i} is not {"accessKeyId": string, "secretAccessKey": string, "actions"?: [string, …]}`);
    });
    if (list.length) return list;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const made = { accessKeyId: `AKIASTRONGROOM${randomBytes(3).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(30).toString('base64url') };
  writeFileDurably(file, JSON.stringify(made, null, 2) + '\n', 0o600);
  return [made];
}
