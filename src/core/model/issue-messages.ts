/**
 * The words of a 400's `errors[].message` where a schema wrote none: "must be at most 15", "is
 * required", "must be one of 16:9, 9:16, 1:1, auto", rather than zod's own "Too big: expected
 * number to be <=15". Passed as the `error` of a parse of the API's input (body and query), zod
 * asks it only for the checks that carry no message of their own, so a schema's words ("must be
 * an http(s) URL") stay as written and the schemas stay the one place the rules are.
 */
import type { z } from 'zod';

/** What a sized value is counted in, by zod's `origin`. */
const UNITS: Record<string, [one: string, many: string]> = {
  string: ['character', 'characters'],
  array: ['item', 'items'],
  set: ['item', 'items'],
  map: ['entry', 'entries'],
  file: ['byte', 'bytes'],
};

/** zod's `expected` type names as a sentence says them. */
const TYPES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  bigint: 'an integer',
  boolean: 'true or false',
  object: 'an object',
  array: 'an array',
  record: 'an object',
  tuple: 'an array',
  null: 'null',
  date: 'a date',
};

/** Format names (zod's `format`) as what the value must be. */
const FORMATS: Record<string, string> = {
  url: 'a URL',
  email: 'an email address',
  uuid: 'a UUID',
  guid: 'a GUID',
  datetime: 'an ISO 8601 date-time',
  date: 'a date (YYYY-MM-DD)',
  time: 'a time (HH:MM:SS)',
  duration: 'an ISO 8601 duration',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  base64: 'base64',
  base64url: 'base64url',
  json_string: 'a JSON string',
};

/** The kind of a JSON value given, for "(got a string)". */
function kindOf(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'an array';
  if (typeof input === 'object') return 'an object';
  if (typeof input === 'boolean') return input ? 'true' : 'false';
  if (typeof input === 'string' || typeof input === 'number') return `a ${typeof input}`;
  return typeof input;
}

function plural(count: number | bigint, [one, many]: [string, string]): string {
  return `${count} ${Number(count) === 1 ? one : many}`;
}

/** A bound's words: "must be at least 1", "must be at most 2500 characters", "must have exactly 2 items". */
function bound(side: 'least' | 'most', limit: number | bigint, inclusive: boolean | undefined, exact: boolean | undefined, origin: string): string {
  const unit = UNITS[origin];
  if (origin === 'string' && side === 'least' && Number(limit) === 1 && inclusive !== false && !exact) return 'must not be empty';
  const amount = unit ? plural(limit, unit) : String(limit);
  // "must be at most 2500 characters", but "must have at most 4 items".
  const verb = unit && origin !== 'string' ? 'must have' : 'must be';
  if (exact) return `${verb} exactly ${amount}`;
  if (inclusive !== false) return `${verb} at ${side} ${amount}`;
  if (unit) return `${verb} ${side === 'least' ? 'more' : 'fewer'} than ${amount}`;
  return `${verb} ${side === 'least' ? 'greater' : 'less'} than ${amount}`;
}

/** An allowed value as written in a message: strings bare, anything else as JSON. */
function shown(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'bigint' ? String(value) : JSON.stringify(value) ?? String(value);
}

/** The message for an issue its schema wrote none for. */
export function issueMessage(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      if (issue.expected === 'int' && typeof issue.input === 'number') return 'must be an integer';
      // YAML's `.nan` (JSON has none).
      if (Number.isNaN(issue.input)) return 'must be a number (got .nan, not a number)';
      // JSON has no infinity: a number past a double's range (1e309) is what JSON.parse reads as one.
      if (typeof issue.input === 'number' && !Number.isFinite(issue.input)) return 'must be a finite number (got one too large to read)';
      return `must be ${TYPES[issue.expected] ?? issue.expected} (got ${kindOf(issue.input)})`;
    case 'too_small':
      return bound('least', issue.minimum, issue.inclusive, issue.exact, issue.origin);
    case 'too_big':
      return bound('most', issue.maximum, issue.inclusive, issue.exact, issue.origin);
    case 'invalid_value':
      if (issue.input === undefined) return issue.values.length > 1 ? `is required (one of ${issue.values.map(shown).join(', ')})` : 'is required';
      return issue.values.length === 1 ? `must be ${shown(issue.values[0])}` : `must be one of ${issue.values.map(shown).join(', ')}`;
    case 'invalid_format':
      if (issue.format === 'starts_with') return `must start with "${String(issue.prefix)}"`;
      if (issue.format === 'ends_with') return `must end with "${String(issue.suffix)}"`;
      if (issue.format === 'includes') return `must contain "${String(issue.includes)}"`;
      if (issue.format === 'regex') return `must match the pattern ${String(issue.pattern)}`;
      return `must be ${FORMATS[issue.format] ?? `a valid ${issue.format}`}`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}`;
    case 'unrecognized_keys':
      return issue.keys.length === 1 ? 'unknown field' : `unknown fields: ${issue.keys.join(', ')}`;
    case 'invalid_key':
      return 'is not a valid key';
    case 'invalid_element':
      return 'holds a value that is not valid';
    case 'invalid_union':
      return Array.isArray(issue.options) && issue.options.length > 0 ? `must be one of ${issue.options.map(shown).join(', ')}` : 'matches none of the accepted forms';
    default:
      return 'is not valid';
  }
}
