/**
 * The task-life model (`task-life-model.test.ts`) on two gateway replicas sharing one PostgreSQL
 * schema, the same simulators and the same manual clock: every create, repeat by key, cancel,
 * webhook or callback and worker pass goes through one replica or the other as fast-check draws
 * it (a worker pass sometimes on both at once), and a restart stops one replica (gracefully, with
 * its drain cut short, or dying after an unrecorded accept) while the other keeps working. The
 * same invariants, read through both replicas' APIs after every step and past every deadline.
 * The simulators call back the replica that sent the create (each replica's public URL is its
 * own address; there is no balancer in front).
 *
 * Fixed seed, 8 runs (20–26 s here). Deeper: `TASK_MODEL_RUNS=<n> TASK_MODEL_SEED=<n>`;
 * `TASK_MODEL_LOG=1` prints each run's steps and how its tasks ended. Skipped when PostgreSQL
 * does not answer (outside CI).
 */
import { it } from 'vitest';
import { dropSchema, newSchemaName, postgresAvailable, POSTGRES_URL } from '../support/postgres.js';
import { runTaskLifeModel } from '../support/task-life-model.js';

const available = await postgresAvailable();
const RUNS = Number(process.env.TASK_MODEL_RUNS ?? 8);

it.skipIf(!available)('two replicas on one PostgreSQL schema: no order of events creates a task twice upstream, abandons or loses one, or moves a status backwards', async () => {
  await runTaskLifeModel({
    replicas: 2,
    database: async () => {
      const schema = newSchemaName();
      const url = new URL(POSTGRES_URL);
      url.searchParams.set('schema', schema);
      return { url: url.toString(), remove: () => dropSchema(schema) };
    },
    seed: 20261205,
    runs: 8,
  });
}, RUNS * 8_000);
