/**
 * Unguessable tokens (task ids, callback tokens) cut from random bytes drawn 4 KiB at a time:
 * one call into the system's random source per couple of hundred tokens, where `randomBytes`
 * per token made two per create (about 50 µs each on a busy virtual machine). The bytes are the
 * same cryptographically secure ones; each is handed out once. Node's `randomUUID` pools alike.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

/** `bytes` random bytes (at most 4 KiB) as base64url text. */
export function randomToken(bytes: number): string {
  if (!Number.isInteger(bytes) || bytes <= 0 || bytes > POOL_BYTES) throw new RangeError(`a token is 1 to ${POOL_BYTES} bytes, not ${bytes}`);
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const token = pool.toString('base64url', offset, offset + bytes);
  // Spent bytes are overwritten so that nothing later in the process can read them back.
  pool.fill(0, offset, offset + bytes);
  offset += bytes;
  return token;
}
