/**
 * The follow model (test/http/follow-model.test.ts) on two PostgreSQL replicas: every client
 * (event streams, `?wait=`, reads) is on replica A, while creates, cancels and the worker passes
 * that record the tasks' changes go through replica B; A hears of them through `LISTEN/NOTIFY`
 * (README *Event streams and reconnects*: a task can move on faster than a replica reads it, and
 * the stream still sends the `processing` it went through). A restart stops and starts both.
 * Each run has a schema of its own (pools of 3), dropped after it. Skipped without PostgreSQL.
 * `FOLLOW_MODEL_RUNS` (default 5), `FOLLOW_MODEL_SEED`.
 */
import { it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { startTestGateway } from '../support/harness.js';
import { runFollowModel } from '../support/follow-model.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const available = await postgresAvailable();
const RUNS = Number(process.env.FOLLOW_MODEL_RUNS ?? 5);
const SEED = Number(process.env.FOLLOW_MODEL_SEED ?? 20261205);

it.skipIf(!available)('follows tasks on one replica while the other records their changes', async () => {
  await runFollowModel({
    runs: RUNS,
    seed: SEED,
    assertReached: false,
    run: async ({ clock, endpoints, simulators, config }) => {
      const schema = newSchemaName();
      const stores: Store[] = [];
      const replica = async (owner: string) => {
        const store = await openPostgresStore(schema, { maxConnections: 3 });
        stores.push(store);
        return startTestGateway({ clock, endpoints, simulators, store, owner, config });
      };
      return {
        async start() {
          const gw = await replica('replica-a');
          const writer = await replica('replica-b');
          return {
            gw,
            writer,
            close: async () => {
              await Promise.all([gw.close(), writer.close()]);
              for (const store of stores.splice(0)) await store.close();
            },
          };
        },
        remove: async () => {
          for (const store of stores.splice(0)) await store.close().catch(() => undefined);
          await dropSchema(schema);
        },
      };
    },
  });
}, 180_000);
