/**
 * A task's life under random orders of events (fast-check model-based test): tasks are created
 * across the three providers (with and without an Idempotency-Key, some repeated), then time
 * moves, workers run, providers fail once (500, 429 with Retry-After, a reset before the create
 * was read, a create accepted whose answer is dropped, a slow status poll, a task that fails or is
 * refused for content), creates are held on their way upstream while other steps run, provider
 * webhooks and callbacks arrive again, late, out of order or as duplicates (unsigned legacy
 * callbacks also claiming a stage not reached), tasks are canceled, creates are repeated by key,
 * and the gateway restarts on the same database (a graceful stop; one whose drain gives up on a
 * create still on its way, which the provider then answers; or a process that died after an
 * upstream accepted a create but before it recorded the answer) — in whatever order fast-check
 * draws. After every step and at the end (past every deadline, workers run until quiet), what
 * must never happen is checked through the API and the simulators' own records:
 *
 * - a gateway task is never accepted upstream twice (across providers), counted from the
 *   simulators' task lists by a marker only that task's prompt carries;
 * - an accepted upstream task is tracked by its gateway task (the task names it as its
 *   `provider_task_id`, or an accepted attempt does), except kling3api's after a lost create
 *   answer, which README *Lost create answers* documents as unfindable;
 * - a task's status read through the API never goes backwards (queued → processing → terminal)
 *   and never changes once terminal;
 * - no create of a task is accepted upstream after a cancel of it was answered;
 * - an Idempotency-Key always answers the one task it made;
 * - every task is terminal once its deadline has passed;
 * - `cost.estimated` is false only when the provider reported a charge (kling3api, legacy), or
 *   the task certainly cost nothing (credits 0); a task canceled before any create is free;
 * - a task succeeds only once its upstream task did, charged the provider's reported figure
 *   (kling3api, legacy) or Freepik's estimate;
 * - a create whose client got no answer (the stop came first) is in the task list, or was sent nowhere;
 * - at the end, the task list holds exactly the tasks the model made.
 * - at the end, `/v1/usage` on every replica adds up, per currency, exactly the tasks' own outcomes,
 *   charges and money at risk, and the tenant's budget has spent that and holds nothing back.
 *
 * The world, the steps and the invariants are in `test/support/task-life-model.ts`, shared with
 * the replicas variant (`task-life-model-replicas-postgres.test.ts`). Fixed seed, 20 runs of up
 * to 24 steps (about 20 s). Deeper: `TASK_MODEL_RUNS=200
 * TASK_MODEL_SEED=<n>`; `TASK_MODEL_LOG=1` prints each run's steps and how its tasks ended.
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { it } from 'vitest';
import { tempDatabaseUrl } from '../support/harness.js';
import { runTaskLifeModel } from '../support/task-life-model.js';

const RUNS = Number(process.env.TASK_MODEL_RUNS ?? 20);

it('no order of events creates a task twice upstream, abandons or loses one, or moves a status backwards', async () => {
  await runTaskLifeModel({
    replicas: 1,
    database: async () => {
      const url = tempDatabaseUrl();
      return { url, remove: () => rm(dirname(url.slice('sqlite:'.length)), { recursive: true, force: true }) };
    },
    seed: 20261205,
    runs: 20,
  });
}, RUNS * 4_000);
