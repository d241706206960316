/**
 * `GET /v1/videos` against a model, on SQLite: see test/support/list-model.ts for the drawn worlds
 * and what is checked. Fixed seed; `LIST_MODEL_RUNS` / `LIST_MODEL_SEED` go deeper.
 */
import fc from 'fast-check';
import { afterEach, it } from 'vitest';
import type { TestGateway } from '../support/harness.js';
import { checkListWorld, listModelParameters, listWorld } from '../support/list-model.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

it('pages the list as the tasks own reads say, newest first, with filters, cursors, changes between pages and bad parameters', { timeout: 120_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(listWorld, async (world) => {
      try {
        await checkListWorld(world, { opened: (opened) => (gw = opened) });
      } finally {
        await gw?.close();
        gw = undefined;
      }
    }),
    listModelParameters(12),
  );
});
