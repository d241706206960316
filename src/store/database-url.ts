/**
 * What a `database.url` names, read without opening anything: the configuration checks it with
 * this (so `check-config` and the start refuse the same URLs), and the store opens what it names.
 */
import type { Dialect } from './schema.js';

/** The query's passwords hidden: node-postgres takes every query parameter as a connection setting, `password` and `sslpassword` included. */
function withoutQueryPasswords(url: string): string {
  return url.replace(/([?&](?:ssl)?password=)[^&#]*/gi, '$1…');
}

/**
 * A database URL as it may be shown: the password of its user part hidden, and those of its
 * query. The user part runs to the last `@` before the path, as URL parsers read it: a password
 * may hold an unescaped `@` (`postgres://gw:p@ss@db` is the password `p@ss`).
 */
export function describeDatabaseUrl(url: string): string {
  // The user may be left out (`postgres://:secret@host`: the system user's name).
  return withoutQueryPasswords(url.replace(/\/\/([^:/?#]*):[^/?#]*@/, '//$1:…@'));
}

/** Why the store cannot open `url`, shown without its user part or passwords; undefined when it can. */
export function databaseUrlProblem(url: string): string | undefined {
  if (databaseUrlTarget(url)) return undefined;
  // Not a database URL: what its user part holds is not known to be a name, so none of it is shown.
  const shown = withoutQueryPasswords(url.replace(/\/\/[^/?#]*@/, '//…@'));
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
