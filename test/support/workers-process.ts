/**
 * The gateway run from its sources with `WORKERS=2` on a SQLite file of its own, with a module
 * imported first in every process it starts (the primary and each worker): how the `WORKERS`
 * tests make one worker crash, refuse or hold back at the moment they need.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface WorkersGatewayOptions {
  /** `GATEWAY_API_KEYS` (default one tenant, `acme`). */
  apiKeys?: string;
  /** The primary's standard error: shown with the test's (default) or read by the test. */
  stderr?: 'inherit' | 'pipe';
  /**
   * Run the compiled build (`node dist/src/main.js`, as `npm start` does) instead of the sources
   * through tsx, which every worker start compiles again: the caller makes sure the build is fresh
   * (`compiledBuild`).
   */
  compiled?: boolean;
}

/** Starts it in `folder` (its database and outputs) with `preload` imported before the gateway; its log lines come on stdout. */
export function spawnWorkersGateway(folder: string, preload: string, options: WorkersGatewayOptions = {}): ChildProcessByStdio<null, Readable, Readable | null> {
  const entry = options.compiled ? ['--import', preload, join(REPO, 'dist/src/main.js')] : ['--import', 'tsx', '--import', preload, join(REPO, 'src/main.ts')];
  return spawn(process.execPath, entry, {
    cwd: REPO,
    env: {
      PATH: process.env.PATH ?? '',
      WORKERS: '2',
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: `sqlite:${join(folder, 'gateway.db')}`,
      STORAGE_PATH: join(folder, 'outputs'),
      GATEWAY_API_KEYS: options.apiKeys ?? 'acme:acme-key-123456',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', options.stderr ?? 'inherit'],
  }) as ChildProcessByStdio<null, Readable, Readable | null>;
}
