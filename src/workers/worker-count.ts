/**
 * `WORKERS`: how many gateway processes serve (`workers/primary.ts`). Unset or `1`: one process,
 * no primary. `auto`: one per core the machine offers.
 */
import { availableParallelism } from 'node:os';
import { ConfigError } from '../config/config.js';
import { parseDatabaseUrl } from '../store/database-url.js';

/** More would only add processes fighting over the same cores and store. */
export const MAX_WORKERS = 64;

export function workerCount(value: string | undefined, databaseUrl: string, cores: () => number = availableParallelism): number {
  const text = value?.trim() ?? '';
  let count: number;
  if (text === '') count = 1;
  else if (text === 'auto') count = Math.max(1, Math.min(cores(), MAX_WORKERS));
  else if (/^[0-9]+$/.test(text) && Number(text) >= 1 && Number(text) <= MAX_WORKERS) count = Number(text);
  else throw new ConfigError('WORKERS', [`WORKERS must be a whole number from 1 to ${MAX_WORKERS}, or auto (got "${text}")`]);
  if (count > 1 && parseDatabaseUrl(databaseUrl).location === ':memory:') {
    throw new ConfigError('WORKERS', [`WORKERS=${count} needs a database the workers can share: database.url is an in-memory SQLite database`]);
  }
  return count;
}
