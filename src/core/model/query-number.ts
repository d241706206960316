/**
 * A number in a URL's query: decimal digits (a sign and a fraction are read, so that the range
 * and whole-number checks name what is wrong). Anything else — an empty or blank value, `0x3`,
 * `1e1`, `Infinity` — is refused with what was given: `z.coerce.number()` read the first ones as
 * 0 (`?wait=` answered at once, `?index=` served the first output) and the others as numbers no
 * client meant. Digits past 15 are refused too (a double would round them: `1.0000000000000000001`
 * read as 1), saying so.
 */
import { z } from 'zod';

const DECIMAL = /^-?\d{1,15}(\.\d{1,15})?$/;
/** Decimal digits past what `DECIMAL` reads exactly (a double holds 15 digits; more are rounded away). */
const LONG_DECIMAL = /^-?\d+(\.\d+)?$/;

/** `schema` (a `z.number()` with its checks), taking the number as the query's text. */
export function queryNumber<T extends z.ZodNumber>(schema: T) {
  return z.preprocess((value, ctx) => {
    if (typeof value === 'string' && DECIMAL.test(value)) return Number(value);
    // Too many digits is not "not decimal digits": say what is wrong with it.
    const message =
      typeof value === 'string' && LONG_DECIMAL.test(value)
        ? `must be a number of at most 15 digits (before and after the point), got ${JSON.stringify(value)}`
        : `expected a whole number in decimal digits, got ${JSON.stringify(value)}`;
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  }, schema);
}
