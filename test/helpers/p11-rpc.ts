/**
 * A p11-kit RPC client for tests: speaks to the PKCS #11 door as p11-kit-client.so does, in
 * either dialect (0.24, as Debian 12; 0.25 and later, whose mechanism parameters Debian 12's client
 * never sends). Each call answers its values or rejects with {@link RpcRefusal} carrying the CK_RV.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { servePkcs11, type Pkcs11Door, type Pkcs11ServeOptions } from '../../src/pkcs11/index.js';
import { CALLS, ERROR_CALL, callById, type CallName } from '../../src/pkcs11/calls.js';
import { FrameReader, encodeFrame, readMessage, writeMessage, type Attribute, type Dialect, type Value } from '../../src/pkcs11/codec.js';
import { CKA } from '../../src/pkcs11/constants.js';

export class RpcRefusal extends Error {
  constructor(readonly rv: number, call: string) {
    super(`${call}: CKR 0x${rv.toString(16)}`);
  }
}

export class RpcClient {
  readonly #socket: Socket;
  readonly #reader = new FrameReader();
  readonly #waiting = new Map<number, { resolve: (body: Buffer) => void; reject: (e: Error) => void }>();
  #nextCode = 1;
  #versionSeen = false;

  private constructor(socket: Socket, readonly dialect: Dialect) {
    this.#socket = socket;
    socket.on('data', (d: Buffer) => {
      const data = this.#versionSeen ? d : d.subarray(1);
      this.#versionSeen = true;
      for (const frame of this.#reader.push(data)) this.#waiting.get(frame.code)?.resolve(frame.body);
    });
    socket.on('close', () => {
      for (const w of this.#waiting.values()) w.reject(new Error('the door closed the connection'));
    });
  }

  /** Connects and sends the version byte (1 for a 0.25 client, which then speaks version 0 with its own parameter encodings). */
  static connect(path: string, dialect: Dialect): Promise<RpcClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path, () => {
        socket.write(Buffer.from([dialect === 'p11-kit-0.25' ? 1 : 0]));
        resolve(new RpcClient(socket, dialect));
      });
      socket.once('error', reject);
    });
  }

  async call(name: CallName, args: Value[]): Promise<Value[]> {
    const [id, request, response] = CALLS[name];
    const code = this.#nextCode++;
    const body = await new Promise<Buffer>((resolve, reject) => {
      this.#waiting.set(code, { resolve, reject });
      this.#socket.write(encodeFrame(code, writeMessage(id, request, args, this.dialect)));
    });
    this.#waiting.delete(code);
    const message = readMessage(body, (call) => (call === ERROR_CALL ? 'u' : call === id ? response : callById(call)?.response), this.dialect);
    if (message.call === ERROR_CALL) throw new RpcRefusal(Number(message.args[0] as bigint), name);
    return message.args;
  }

  /** The CK_RV a call is refused with (fails when it is answered). */
  async refusal(name: CallName, args: Value[]): Promise<number> {
    try {
      await this.call(name, args);
    } catch (e) {
      if (e instanceof RpcRefusal) return e.rv;
      throw e;
    }
    throw new Error(`${name} was answered; a refusal was expected`);
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** Template attributes, as an application writes them. */
export const attr = {
  bool: (type: number, value: boolean): Attribute => ({ type, value: { byte: value ? 1 : 0 }, length: 1 }),
  ulong: (type: number, value: number): Attribute => ({ type, value: { ulong: BigInt(value) }, length: 8 }),
  bytes: (type: number, value: Buffer): Attribute => ({ type, value: { bytes: value }, length: value.length }),
  label: (text: string): Attribute => attr.bytes(CKA.LABEL, Buffer.from(text)),
};

/** A PKCS #11 door over a one-member cluster with the crypto user cu1 (PIN `cu1:cu1-password`), in a folder of its own. */
export interface TestDoor {
  dir: string;
  cluster: LocalCluster;
  door: Pkcs11Door;
  close(): Promise<void>;
}

/** Opens a {@link TestDoor}; `options` (limits, a log) go to servePkcs11. */
export async function openTestDoor(prefix: string, options: Omit<Pkcs11ServeOptions, 'cluster' | 'socket'> = {}): Promise<TestDoor> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cluster = await startLocalCluster({ adminPassword: 'admin-password', passwordCost: 10, users: [{ username: 'cu1', password: 'cu1-password', role: 'crypto-user' }] });
  const door = await servePkcs11({ cluster, socket: join(dir, 'run', 'pkcs11.sock'), ...options });
  return {
    dir,
    cluster,
    door,
    async close() {
      await door.close();
      await cluster.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
