/**
 * Bodies on the wire, both ways: what an adapter sends is exactly the fields it set, and what
 * comes back (an answer, a webhook, a callback) is read as JSON whatever form it arrived in.
 */

/**
 * The body without its `undefined` keys, so the JSON sent upstream is exactly the fields that
 * were set (an absent field and a field set to nothing are not the same to every upstream).
 */
export function compact<T extends object>(body: T): T {
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined)) as T;
}

/**
 * The JSON value of a body that may arrive as bytes (a webhook's raw body), as text, or already
 * parsed (an HTTP client's answer). `undefined` when bytes or text are not JSON.
 */
export function readJsonBody(body: unknown): unknown {
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : body;
  if (typeof text !== 'string') return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
