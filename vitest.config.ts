import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * Test files run side by side. Most of a file's time is spent waiting (on real sockets, child
 * processes, PostgreSQL, the browser), not computing, so on a 2-core machine (CI) three files at
 * a time finish sooner than vitest's default of one (cores − 1): with two, a core still sat idle
 * 40 % of the run (vmstat), and three finished the suite in 572 s against two's 651 s, back to
 * back on the same machine. Machines of four cores or more keep vitest's default.
 */
const workers = Math.max(3, availableParallelism() - 1);

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
    // Limits against a test that hangs, not measures of speed (a test that must be quick says so
    // itself): CI runs every file beside the others on two cores, where a test taking 4 s alone
    // has taken over 20 s (the 101 stored copies of result-custody's retention test; the PostgreSQL
    // fair-queue test takes 12 s in a passing CI run).
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // expect.poll waits for what must come (mostly a page's text in Chromium): 1 s, vitest's
    // default, is short for a page on a loaded machine. A poll passes as soon as what it waits for
    // holds; only a failing one waits the whole time. 4 s stays under the console's 5 s refresh of
    // the task list, so what a page must show at once is still not left to the next refresh.
    expect: { poll: { timeout: 4_000 } },
  },
});
