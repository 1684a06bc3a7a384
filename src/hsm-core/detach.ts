/**
 * Byte arrays with memory of their own, for whatever leaves a member's hands: an answer to its
 * caller (member.ts), a job to another thread (mechanisms/rsa-threads.ts).
 *
 * @module
 */

/**
 * Gives every byte array of a value memory of its own. Node hands out small Buffers as views
 * into a shared 8 KiB pool; whoever is given such a view (a caller, or another thread, to which a
 * view travels with all of its buffer) could read the rest of the pool through `.buffer`,
 * including bytes the member used a moment earlier (key material on its way into a wrap, say). A
 * view is copied into an exactly-sized buffer; an array that already owns all of its buffer is
 * passed as it is.
 */
export function detachBytes<T>(value: T): T {
  if (value instanceof Uint8Array) {
    return (value.byteOffset === 0 && value.byteLength === value.buffer.byteLength ? value : new Uint8Array(value)) as T;
  }
  if (Array.isArray(value)) return value.map(detachBytes) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    // Own enumerable fields, as Object.entries gives them, without its array of pairs.
    for (const k in value) if (Object.hasOwn(value, k)) out[k] = detachBytes((value as Record<string, unknown>)[k]);
    return out as T;
  }
  return value;
}
