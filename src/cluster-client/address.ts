/**
 * A member's address, `host:port` or `[v6]:port`: checked where it is given (connect, configure)
 * before anything connects.
 *
 * @module
 */
import { HsmError } from '../hsm-core/face.js';

export function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[([0-9A-Fa-f:]+)\]:(\d{1,5})$/.exec(address) ?? /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new HsmError('BAD_REQUEST', `member address: expected host:port, got ${JSON.stringify(address)}`);
  return { host: m[1]!, port };
}
