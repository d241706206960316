/**
 * A number in a URL's query: decimal digits (a sign and a fraction are read, so that the range
 * and whole-number checks name what is wrong). Anything else — an empty or blank value, `0x3`,
 * `1e1`, `Infinity` — is refused with what was given: `z.coerce.number()` read the first ones as
 * 0 (`?wait=` answered at once, `?index=` served the first output) and the others as numbers no
 * client meant.
 */
import { z } from 'zod';

const DECIMAL = /^-?\d{1,15}(\.\d{1,15})?$/;

/** `schema` (a `z.number()` with its checks), taking the number as the query's text. */
export function queryNumber<T extends z.ZodNumber>(schema: T) {
  return z.preprocess((value, ctx) => {
    if (typeof value === 'string' && DECIMAL.test(value)) return Number(value);
    ctx.addIssue({ code: 'custom', message: `expected a whole number in decimal digits, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }, schema);
}
