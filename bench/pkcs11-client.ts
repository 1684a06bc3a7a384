/**
 * The PKCS #11 table's client: the RPC protocol p11-kit-client.so speaks, over one connection with
 * its sessions' requests pipelined, signing in a loop. It runs in a worker thread of its own (this
 * module is the worker's script), as an application is a process of its own: the server measured,
 * Strongroom's door in the bench's process or `p11-kit server` in another, does not share a thread
 * with the load.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { callById } from '../src/pkcs11/calls.js';
import { CKA, CKM, CKO } from '../src/pkcs11/constants.js';
import { FrameReader, encodeFrame, readMessage, writeMessage, type Attribute, type Value } from '../src/pkcs11/codec.js';

/** A minimal RPC client: calls by name, answered out of order by code. */
class RpcClient {
  #code = 0x10;
  readonly #waiting = new Map<number, (body: Buffer) => void>();
  private constructor(private readonly socket: Socket) {
    const reader = new FrameReader();
    let first = true;
    socket.on('data', (d: Buffer) => {
      for (const f of reader.push(first ? d.subarray(1) : d)) this.#waiting.get(f.code)?.(f.body);
      first = false;
    });
  }

  static async open(path: string): Promise<RpcClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(path, () => resolve(s));
      s.once('error', reject);
    });
    socket.write(Buffer.from([0]));
    const client = new RpcClient(socket);
    await client.call(1, [{ data: Buffer.from('PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1'), length: 41 }, 0, { data: Buffer.from([0]), length: 1 }]);
    return client;
  }

  async call(id: number, args: Value[]): Promise<Value[]> {
    const call = callById(id)!;
    const code = this.#code++;
    const body = await new Promise<Buffer>((resolve) => {
      this.#waiting.set(code, resolve);
      this.socket.write(encodeFrame(code, writeMessage(id, call.request, args)));
    });
    this.#waiting.delete(code);
    const message = readMessage(body, (n) => (n === 0 ? 'u' : callById(n)?.response), 'p11-kit-0.24');
    if (message.call === 0) throw new Error(`${call.name}: CKR 0x${(message.args[0] as bigint).toString(16)}`);
    return message.args;
  }

  close(): void {
    this.socket.destroy();
  }
}

const bytesAttr = (type: number, b: Buffer): Attribute => ({ type, value: { bytes: b }, length: b.length });
const ulongAttr = (type: number, v: number): Attribute => ({ type, value: { ulong: BigInt(v) }, length: 8 });

/** Opens `sessions` sessions on one connection, logs in, finds the private key labelled `label`. */
async function prepare(path: string, pin: string, label: string, sessions: number): Promise<{ client: RpcClient; handles: bigint[]; key: bigint; slot: bigint }> {
  const client = await RpcClient.open(path);
  const [slots] = (await client.call(4, [1, 8])) as unknown as [{ values: bigint[] }];
  const slot = slots.values[0]!;
  const handles: bigint[] = [];
  for (let i = 0; i < sessions; i++) handles.push((await client.call(10, [slot, 6n]))[0] as bigint);
  await client.call(18, [handles[0]!, 1n, { data: Buffer.from(pin), length: pin.length }]);
  await client.call(26, [handles[0]!, [ulongAttr(CKA.CLASS, CKO.PRIVATE_KEY), bytesAttr(CKA.LABEL, Buffer.from(label))]]);
  const [found] = (await client.call(27, [handles[0]!, 4])) as unknown as [{ values: bigint[] }];
  await client.call(28, [handles[0]!]);
  if (!found.values.length) throw new Error(`no private key labelled ${label}`);
  return { client, handles, key: found.values[0]!, slot };
}

export const DIGEST = createHash('sha256').update('bench').digest();
export const DIGEST_INFO = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), DIGEST]);

/** Signatures per second on one connection with `inFlight` sessions signing at once, in this thread. */
async function rate(path: string, pin: string, label: string, mechanism: number, inFlight: number, seconds: number): Promise<number> {
  const { client, handles, key } = await prepare(path, pin, label, inFlight);
  const data = mechanism === CKM.ECDSA ? DIGEST : DIGEST_INFO;
  const sign = async (session: bigint) => {
    await client.call(42, [session, { type: mechanism, param: null }, key]);
    await client.call(43, [session, { data, length: data.length }, 512]);
  };
  for (const h of handles) await sign(h);
  let count = 0;
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  await Promise.all(
    handles.map(async (h) => {
      while (performance.now() < deadline) {
        await sign(h);
        count++;
      }
    }),
  );
  const perSecond = count / ((performance.now() - start) / 1000);
  client.close();
  return perSecond;
}


export interface RateJob {
  path: string;
  pin: string;
  label: string;
  mechanism: number;
  inFlight: number;
  seconds: number;
}

/** {@link rate} in a worker thread of its own: signatures per second. */
export function rateInWorker(job: RateJob): Promise<number> {
  return new Promise((resolve, reject) => {
    // The bench runs under tsx: the worker registers it (its ESM API) before loading this module.
    const tsx = import.meta.resolve('tsx/esm/api');
    const source = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const worker = new Worker(source, { eval: true, workerData: job });
    worker.once('message', (perSecond: number) => resolve(perSecond));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the PKCS #11 bench client exited (code ${code}) without a result`)));
  });
}

if (!isMainThread && parentPort && (workerData as RateJob | undefined)?.path) {
  const job = workerData as RateJob;
  parentPort.postMessage(await rate(job.path, job.pin, job.label, job.mechanism, job.inFlight, job.seconds));
}
