/**
 * Following a task (fast-check model-based test, SPEC §1 and §4, README *Event streams and
 * reconnects*): a few tasks on the kling3api simulator (one slot, so some wait `queued`; each
 * drawn to succeed or fail upstream; the sandbox moves them on the gateway's clock, which the
 * model advances by drawn amounts, polls then seeing the change; a queued one may be canceled, or
 * time out at the deadline) while drawn clients follow them: event streams opened fresh, with a
 * `Last-Event-ID` that is `0`, not a number, or ahead of the task, dropped by the client and
 * resumed with the last id it read (as an EventSource does); `?wait=N` reads with drawn N; the
 * other tenant's reads; bad `wait` values. The gateway restarts gracefully on the same SQLite
 * file between steps: every stream must end cleanly and resume on the new instance with its last
 * id, every pending wait answers. Checked after every step:
 *
 * - a stream's events (across its reconnects) have increasing ids, statuses in the order a task
 *   goes (`queued`, `processing`, then one terminal), none repeated; its first event is the
 *   task's status as `GET` says (none, for a resume that already has it), and after each step it
 *   has caught up with `GET`; a `processing` the task went through is not skipped; it ends right
 *   after the terminal event, whose data is the task as `GET` says; a resume after the terminal
 *   event is `204`;
 * - a `?wait=N` answers as soon as the task is terminal (on the gateway's clock: the step that
 *   finished it), or once N seconds of that clock passed, with a status the task had; not before;
 * - no upstream call while only reads happen;
 * - the other tenant: 404 for both; `wait` 61, -1, 1.5, `abc`: 400;
 * - at the end (every task terminal, every client gone): no task listener, no watch, nothing on
 *   the stop signal.
 *
 * Fixed seed, `FOLLOW_MODEL_RUNS` (default 12, about 12 s) runs of up to 30 steps; `FOLLOW_MODEL_SEED` for
 * another seed; `FOLLOW_MODEL_NO_SHRINK=1` reports the first failure as drawn; `FOLLOW_MODEL_LOG=1`
 * prints each run's steps and the cases reached (the default run asserts it reached each).
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { it } from 'vitest';
import { startTestGateway, tempDatabaseUrl } from '../support/harness.js';
import { runFollowModel } from '../support/follow-model.js';

const RUNS = Number(process.env.FOLLOW_MODEL_RUNS ?? 12);
const SEED = Number(process.env.FOLLOW_MODEL_SEED ?? 20261205);

it('follows tasks through events and ?wait= as GET tells them, across reconnects and restarts', async () => {
  await runFollowModel({
    runs: RUNS,
    seed: SEED,
    assertReached: !process.env.FOLLOW_MODEL_RUNS && !process.env.FOLLOW_MODEL_SEED,
    run: async ({ clock, endpoints, simulators, config }) => {
      const database = { url: tempDatabaseUrl() };
      return {
        async start() {
          const gw = await startTestGateway({ clock, endpoints, simulators, config: { ...config, database } });
          return { gw, writer: gw, close: () => gw.close() };
        },
        remove: () => rm(dirname(database.url.slice('sqlite:'.length)), { recursive: true, force: true }),
      };
    },
  });
}, 120_000);
