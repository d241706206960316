/**
 * What a `database.url` names, read without opening anything: the configuration checks it with
 * this (so `check-config` and the start refuse the same URLs), and the store opens what it names.
 */
import type { Dialect } from './schema.js';

/** Why the store cannot open `url`, shown without its passwords; undefined when it can. */
export function databaseUrlProblem(url: string): string | undefined {
  if (databaseUrlTarget(url)) return undefined;
  // Shown without its passwords: the user part's, and the query's (node-postgres reads `password` there too).
  const shown = url.replace(/\/\/[^@]*@/, '//…@').replace(/([?&](?:ssl)?password=)[^&#"]*/gi, '$1…');
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
