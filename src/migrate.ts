/**
 * `npm run migrate`: brings the database of `config.yaml` (`DATABASE_URL`) up to the latest
 * schema, then exits. A deployment runs it once before its replicas start; a gateway also
 * migrates at start, which is then a no-op. Exit code 0 on success.
 */
import { resolve } from 'node:path';
import { ConfigError, loadConfigFile } from './config/config.js';
import { PROVIDER_IDS } from './providers/registry.js';
import { migrateDatabase } from './store/database.js';

/** Migrates the database named in the configuration file; returns the migrations applied. */
export async function migrateConfiguredDatabase(configPath: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const config = loadConfigFile(configPath, env, PROVIDER_IDS);
  return migrateDatabase(config.database.url);
}

const isEntryPoint = process.argv[1] !== undefined && resolve(process.argv[1]).replace(/\.[jt]s$/, '') === new URL(import.meta.url).pathname.replace(/\.[jt]s$/, '');

if (isEntryPoint) {
  migrateConfiguredDatabase(resolve(process.env.CONFIG_FILE ?? 'config.yaml'), process.env)
    .then((applied) => {
      console.log(applied.length > 0 ? `migrated: ${applied.join(', ')}` : 'database already up to date');
    })
    .catch((error) => {
      console.error(`kling-gateway migrate: ${error instanceof ConfigError ? error.message : error instanceof Error ? error.message : error}`);
      process.exit(1);
    });
}
