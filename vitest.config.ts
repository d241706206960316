import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * Test files run side by side. Most of a file's time is spent waiting (on real sockets, child
 * processes, PostgreSQL, the browser), not computing, so on a 2-core machine (CI) two files at
 * a time finish far sooner than vitest's default of one (cores − 1); larger machines keep that
 * default.
 */
const workers = Math.max(2, availableParallelism() - 1);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds console/dist once, before any file runs (the Chromium and /console tests read it).
    globalSetup: ['test/global-setup.ts'],
    // Each file in its own process: nock interceptors and native SQLite handles never leak
    // between files.
    pool: 'forks',
    maxWorkers: workers,
    minWorkers: workers,
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
