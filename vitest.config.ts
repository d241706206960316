import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds console/dist once, before any file runs (the Chromium and /console tests read it).
    globalSetup: ['test/global-setup.ts'],
    // Each file in its own process: nock interceptors and native SQLite handles never leak
    // between files.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
