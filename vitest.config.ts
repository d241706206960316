import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each file in its own process: nock interceptors and native SQLite handles never leak
    // between files.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
