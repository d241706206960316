/**
 * What a `database.url` names, read without opening anything: the configuration checks it with
 * this (so `check-config` and the start refuse the same URLs), and the store opens what it names.
 */
import { resolve } from 'node:path';
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
 * The password of a URL's user part as written, read from the URL with its query's passwords
 * hidden (one may hold an `@`, which would be taken for the user part's end). It runs from the
 * first `:` after the user name to the last `@`: the user name may hold an `@` itself
 * (`gate@way:secret@db`) or be left out (`postgres://:secret@host`: the system user's name), and
 * the password may hold an unescaped `@` (`postgres://gw:p@ss@db` is the password `p@ss`), or an
 * unescaped `/`, `?` or `#` as a generated one often does, which ends the user part for URL
 * parsers (that URL does not open) but is the password's still. A URL with no user part and an
 * `@` further on (in its query) may so take more for it than it is; never less.
 */
const USER_PART_PASSWORD = /\/\/([^:]*):([\s\S]*)@/;

/** The password of `url`'s user part as written (see `USER_PART_PASSWORD`), or undefined. */
export function userPartPassword(url: string): string | undefined {
  return USER_PART_PASSWORD.exec(withoutQueryPasswords(url))?.[2];
}

/** A database URL as it may be shown: the password of its user part hidden (as `userPartPassword` reads it), and those of its query. */
export function describeDatabaseUrl(url: string): string {
  return withoutQueryPasswords(url).replace(USER_PART_PASSWORD, '//$1:…@');
}

/** The forms of a database URL the store opens, as a refusal names them. */
const DATABASE_URL_FORMS = 'sqlite:<file> (sqlite:./data/kling-gateway.db, sqlite:/var/lib/kg.db), sqlite::memory: or postgres://…';

/** Why the store cannot open `url`, shown without its user part or passwords; undefined when it can. */
export function databaseUrlProblem(url: string): string | undefined {
  if (url.startsWith('sqlite:')) {
    const location = url.slice('sqlite:'.length);
    // Other tools read `sqlite:///x.db` as relative and `sqlite:////x.db` as absolute; as a path
    // it names a file at the root (`sqlite://x.db` is `/x.db`): never what was meant.
    if (location.startsWith('//')) {
      return `sqlite:// is not a form it takes (read as a path, it names ${resolve(location)}): write ${DATABASE_URL_FORMS} (got "${url}")`;
    }
    // `sqlite::memory` (its last colon left out) would be a file named `:memory`.
    if (location.startsWith(':') && location !== ':memory:') {
      return `a file name starting with ":" is not one SQLite takes: the in-memory database is sqlite::memory:; write ${DATABASE_URL_FORMS} (got "${url}")`;
    }
    return undefined;
  }
  if (databaseUrlTarget(url)) return undefined;
  // Not a database URL: what its user part holds is not known to be a name, so none of it is shown.
  const shown = withoutQueryPasswords(url.replace(/\/\/[\s\S]*@/, '//…@'));
  return `must start with sqlite: or postgres:// (got "${shown}")`;
}

function databaseUrlTarget(url: string): { dialect: Dialect; location: string } | undefined {
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { dialect: 'postgres', location: url };
  if (url.startsWith('sqlite:')) return { dialect: 'sqlite', location: url.slice('sqlite:'.length) || ':memory:' };
  // A bare file path; one starting with a scheme (`file:x.db`, `SQLITE:x.db`) is not a path meant.
  if ((url.endsWith('.db') || url.endsWith('.sqlite')) && !/^[a-z][a-z0-9+.-]+:/i.test(url)) return { dialect: 'sqlite', location: url };
  return undefined;
}

/** `sqlite:<path>`, `sqlite::memory:`, `postgres://…` / `postgresql://…`. */
export function parseDatabaseUrl(url: string): { dialect: Dialect; location: string } {
  const problem = databaseUrlProblem(url);
  const target = databaseUrlTarget(url);
  if (problem || !target) throw new Error(`database.url ${problem}`);
  return target;
}

/** The absolute path of the SQLite file `url` names; undefined for PostgreSQL and `sqlite::memory:`. */
export function sqliteFileOf(url: string): string | undefined {
  const { dialect, location } = parseDatabaseUrl(url);
  return dialect === 'sqlite' && location !== ':memory:' ? resolve(location) : undefined;
}
