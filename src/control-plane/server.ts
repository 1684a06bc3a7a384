/**
 * The CloudHSM V2 API over HTTP, as AWS serves it: AWS JSON 1.1 (POST, `Content-Type:
 * application/x-amz-json-1.1`, `X-Amz-Target: BaldrApiService.<Operation>`), SigV4 with the
 * signing name `cloudhsm`, errors as `{"__type": …, "Message": …}` with the `x-amzn-ErrorType`
 * header. Loopback only. A request that is not the protocol is refused before any operation runs.
 * `GET /metrics` gives CloudHSM's CloudWatch metrics of the running clusters for Prometheus.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError } from './errors.js';
import { metricsRegistry } from './metrics.js';
import type { ControlPlane } from './service.js';
import { verifySignature, type Credentials } from './sigv4.js';

export interface ControlPlaneServer {
  /** `http://127.0.0.1:PORT`: AWS_ENDPOINT_URL_CLOUDHSM_V2. */
  readonly url: string;
  close(): Promise<void>;
}

const MAX_BODY = 1024 * 1024;
const TARGET = /^BaldrApiService\.([A-Za-z]+)$/;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new ApiError('SerializationException', `the request body is larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, requestId: string, errorType?: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': requestId,
    ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
  });
  res.end(text);
}

/**
 * Serves `plane` on `listen` (`127.0.0.1:0` for any free port). `credentials` null is the
 * development mode: any well-formed signature is taken.
 */
export async function serveControlPlane(plane: ControlPlane, options: { listen?: string; credentials: readonly Credentials[] | null; log?: (line: string) => void }): Promise<ControlPlaneServer> {
  const [host, port] = (options.listen ?? '127.0.0.1:0').split(/:(?=\d+$)/);
  if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') throw new Error(`--listen: the control plane listens on loopback only (127.0.0.1 or ::1), not ${host}`);
  const metrics = metricsRegistry({ clusters: () => plane.runningClusters() });
  const server: Server = createServer((req, res) => {
    const requestId = randomUUID();
    void (async () => {
      if (req.method === 'GET' && req.url === '/metrics') {
        // CloudHSM's CloudWatch metrics of the running clusters, for Prometheus (loopback, no signature).
        const text = await metrics.metrics();
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(text);
        return;
      }
      try {
        if (req.method !== 'POST' || (req.url ?? '/') !== '/') throw new ApiError('UnknownOperationException', `CloudHSM V2 takes POST / requests, not ${req.method} ${req.url}`);
        const body = await readBody(req);
        const contentType = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
        if (contentType !== 'application/x-amz-json-1.1') throw new ApiError('UnknownOperationException', `Content-Type: application/x-amz-json-1.1, not ${JSON.stringify(contentType)}`);
        const target = TARGET.exec(String(req.headers['x-amz-target'] ?? ''));
        if (!target) throw new ApiError('UnknownOperationException', 'X-Amz-Target: BaldrApiService.<Operation>, e.g. BaldrApiService.DescribeClusters');
        const caller = await verifySignature({ method: 'POST', host: String(req.headers.host ?? ''), path: '/', headers: req.headers, body }, options.credentials);
        let input: unknown;
        try {
          input = body.length ? JSON.parse(body.toString('utf8')) : {};
        } catch {
          throw new ApiError('SerializationException', 'the request body is not JSON');
        }
        if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ApiError('SerializationException', 'the request body is a JSON object of the operation\'s members');
        const result = await plane.call(target[1]!, caller, input as Record<string, unknown>);
        send(res, 200, result, requestId);
      } catch (e) {
        if (e instanceof ApiError) {
          send(res, e.status, { __type: e.type, Message: e.message }, requestId, e.type);
          return;
        }
        options.log?.(`control plane: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        send(res, 500, { __type: 'CloudHsmInternalFailureException', Message: 'the request failed inside the service; it is logged' }, requestId, 'CloudHsmInternalFailureException');
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(port ?? 0), host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    // Every connection goes, idle, mid-request or silent: one that never finished its request
    // would hold close() open until the request timed out (minutes).
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
