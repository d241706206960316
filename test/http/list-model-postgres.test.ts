/**
 * `GET /v1/videos` against a model, on PostgreSQL (its row-value comparison, its ordering of
 * ids under the database's collation): see test/support/list-model.ts for the drawn worlds and
 * what is checked. Each run on a fresh schema, dropped after it; skipped when no server answers.
 * Fixed seed; `LIST_MODEL_RUNS` / `LIST_MODEL_SEED` go deeper.
 */
import fc from 'fast-check';
import { it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import type { TestGateway } from '../support/harness.js';
import { checkListWorld, listModelParameters, listWorld, type IdRanks } from '../support/list-model.js';
import { adminQuery, dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const postgres = await postgresAvailable();

/**
 * How the database orders ids: byte order under C or POSIX (the test server's), which the model's
 * own comparison gives for these ASCII ids; under another collation (or with
 * `LIST_MODEL_ASK_ORDER=1`), asked of the server.
 */
async function idRanks(): Promise<IdRanks | undefined> {
  const { rows } = await adminQuery<{ c: string }>('SELECT datcollate AS c FROM pg_database WHERE datname = current_database()');
  if (!process.env.LIST_MODEL_ASK_ORDER && /^(C|POSIX)(\..*)?$/i.test(rows[0]?.c ?? '')) return undefined;
  return async (ids) => {
    const ordered = await adminQuery<{ id: string }>('SELECT id FROM unnest($1::text[]) AS id ORDER BY id', [ids]);
    return new Map(ordered.rows.map((row, index) => [row.id, index]));
  };
}

it.skipIf(!postgres)('pages the list as the tasks own reads say on PostgreSQL too', { timeout: 120_000 }, async () => {
  const ranks = await idRanks();
  await fc.assert(
    fc.asyncProperty(listWorld, async (world) => {
      const schema = newSchemaName();
      let store: Store | undefined;
      let gw: TestGateway | undefined;
      try {
        store = await openPostgresStore(schema, { maxConnections: 3 });
        await checkListWorld(world, { store, ...(ranks ? { idRanks: ranks } : {}), opened: (opened) => (gw = opened) });
      } finally {
        await gw?.close();
        await store?.close();
        await dropSchema(schema);
      }
    }),
    listModelParameters(6),
  );
});
