/**
 * A number in config.yaml: a YAML number, or text that spells one (what `${VAR}` expansion
 * gives). Anything else — a key left blank (`port:`), text of blanks (`${VAR}` set to a space),
 * `true`, a word — is refused with what was found. `z.coerce.number()` would read the first ones
 * as 0: a random port, or a credit worth nothing (a provider that always looks cheapest).
 */
import { z } from 'zod';

const NUMERIC_TEXT = /^[-+]?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$/i;

/** True when `text` spells a decimal number as config.yaml takes one (no hex, binary or octal: `Number` reads `0x10` as 16). */
export function isNumericText(text: string): boolean {
  return NUMERIC_TEXT.test(text.trim());
}

/** `schema` (a `z.number()` with its checks), also taking the number as text. */
export function configNumber<T extends z.ZodNumber>(schema: T) {
  return z.preprocess((value, ctx) => {
    if (typeof value === 'number') return value;
    if (typeof value === 'string' && isNumericText(value)) return Number(value.trim());
    ctx.addIssue({ code: 'custom', message: `expected a number, got ${value === null || value === undefined ? 'nothing' : JSON.stringify(value)}` });
    return z.NEVER;
  }, schema);
}
