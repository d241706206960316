/**
 * What a `database.url` names, read without opening anything: the configuration checks it with
 * this (so `check-config` and the start refuse the same URLs), and the store opens what it names.
 */
import type { Dialect } from './schema.js';

/** Query parameters node-postgres takes as a password (their names decoded as it decodes them). */
const PASSWORD_PARAMETERS = new Set(['password', 'sslpassword']);

function isPasswordName(raw: string): boolean {
  let name = raw.replace(/\+/g, ' ');
  try {
    name = decodeURIComponent(name);
  } catch {
    // A stray `%` stays as written.
  }
  return PASSWORD_PARAMETERS.has(name.trim().toLowerCase());
}

/**
 * The query's passwords hidden: node-postgres takes every query parameter as a connection setting,
 * `password` and `sslpassword` included, by their decoded names (`pass%77ord` too). A value runs to
 * the next `&`: a `#` in it is the password's too.
 */
function withoutQueryPasswords(url: string): string {
  return url.replace(/([?&])([^=&#]*)=([^&]*)/g, (pair, separator: string, name: string) => (isPasswordName(name) ? `${separator}${name}=…` : pair));
}

/**
 * A database URL as it may be shown: the password of its user part hidden, and those of its
 * query. The password runs from the first `:` after the user name to the last `@`: it may hold an
 * unescaped `@` (`postgres://gw:p@ss@db` is the password `p@ss`), and a generated one often holds
 * an unescaped `/`, `?` or `#`, which ends the user part for URL parsers (that URL does not open)
 * but is the password's still. A URL with no user part and an `@` further on (in its query) may
 * so show less than it could; never the password.
 */
export function describeDatabaseUrl(url: string): string {
  // The query's passwords first: one may hold an `@`, which the user part's hiding would take for
  // its end. Then the user part: the user name runs to its first `:` and may hold an `@` itself
  // (`gate@way:secret@db`), and the user may be left out (`postgres://:secret@host`: the system
  // user's name).
  return withoutQueryPasswords(url).replace(/\/\/([^:]*):[\s\S]*@/, '//$1:…@');
}

/** Why the store cannot open `url`, shown without its user part or passwords; undefined when it can. */
export function databaseUrlProblem(url: string): string | undefined {
  if (databaseUrlTarget(url)) return undefined;
  // Not a database URL: what its user part holds is not known to be a name, so none of it is shown.
  const shown = withoutQueryPasswords(url.replace(/\/\/[\s\S]*@/, '//…@'));
  return `must start with sqlite: or postgres:// (got "${shown}")`;
}

function databaseUrlTarget(url: string): { dialect: Dialect; location: string } | undefined {
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { dialect: 'postgres', location: url };
  if (url.startsWith('sqlite:')) return { dialect: 'sqlite', location: url.slice('sqlite:'.length) || ':memory:' };
  if (url.endsWith('.db') || url.endsWith('.sqlite')) return { dialect: 'sqlite', location: url };
  return undefined;
}

/** `sqlite:<path>`, `sqlite::memory:`, `postgres://…` / `postgresql://…`. */
export function parseDatabaseUrl(url: string): { dialect: Dialect; location: string } {
  const target = databaseUrlTarget(url);
  if (!target) throw new Error(`database.url ${databaseUrlProblem(url)}`);
  return target;
}
