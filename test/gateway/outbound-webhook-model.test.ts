/**
 * Outbound webhook delivery under random orders of events (fast-check model-based test, SPEC §4,
 * README *Outbound webhooks*): tasks of two tenants with a `webhook_url` at one local receiver go
 * through their lives on the kling3api simulator (succeeding or failing), while the receiver
 * answers each POST by a drawn script — `2xx`, `307`, `4xx`, `5xx`, `410`, `429`/`503` with a
 * `Retry-After` in seconds or as an HTTP date (some over an hour), a `200` whose body never ends,
 * an answer slower than `webhooks.timeout_ms`, a connection reset, a connection closed without an
 * answer — and the clock moves by random amounts, workers run, and the gateway restarts on the
 * same SQLite file: gracefully (`close`, between worker passes or while the receiver holds a
 * pass's POSTs, which the stop waits for; some restarts rotate a tenant's secret to
 * `[new, current]`), or abruptly (the process dies while the receiver holds its POSTs: the
 * instance gets no stop (its listener and store are closed at once), nothing after the POST is
 * recorded, and the next gateway, which on SQLite takes over every lease at its start, sends them
 * again). After every step, and
 * once every task has ended and every retry horizon has passed, it checks, from what the
 * receiver saw and what `GET /v1/videos/{id}/webhooks` records:
 *
 * - every request's `webhook-signature` verifies with `standardwebhooks` and each secret the
 *   task's tenant has (at the gateway's clock), never with another tenant's or a retired one; its
 *   `webhook-timestamp` is the try's time on that clock; its body is `{type, timestamp, data}`
 *   with `data.id` the task and `data.status` the type's; no redirect is followed;
 * - a `webhook-id` names one event of one task (same body on every try), and each event has one;
 * - no event of a type the task never reached (a succeeded task gets no `video.failed`);
 * - no retry sooner than the back-off (5 s, 10 s, 20 s …) after a recorded try, or than the
 *   `Retry-After` a 429/503 asked (at most an hour); a try the dead process never recorded may be
 *   repeated at once (on SQLite the next start takes over every lease: README *Configuration*);
 * - an event whose `2xx` was recorded is never sent again (after a graceful restart too); only one
 *   whose answer the dead process never recorded may be (README: at least once, same id);
 * - after a recorded `410` nothing more of that task goes to its URL in a later worker pass;
 * - the record matches what the receiver saw: tries (those the dead process never recorded
 *   aside), last HTTP status, `next_attempt_at` (the back-off or the `Retry-After`),
 *   `delivered_at`, `delivered` exactly after a 2xx, `failed` only after a 410 (or "not sent"
 *   naming the 410'd event) or `webhooks.max_attempts` tries;
 * - at the end, every event a task went through (`video.processing`, then `video.succeeded` or
 *   `video.failed`) is recorded and delivered with a 2xx, or `failed` for one of those reasons.
 *
 * The default run also asserts that it reached every case above (a model that stopped reaching
 * one would pass without checking it). Fixed seed, 15 runs of up to 20 steps (about 17 s).
 * The world, steps and checks live in `test/support/outbound-webhook-model.ts`, shared with the
 * two-replica variant on PostgreSQL (`outbound-webhook-model-replicas-postgres.test.ts`).
 * Deeper: `OUTBOUND_MODEL_RUNS=100 OUTBOUND_MODEL_SEED=<n>`; `OUTBOUND_MODEL_LOG=1` prints each
 * run's steps and the cases reached.
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { expect, it } from 'vitest';
import { tempDatabaseUrl } from '../support/harness.js';
import { coverage, MAX_ATTEMPTS, runOutboundWebhookModel } from '../support/outbound-webhook-model.js';

const RUNS = Number(process.env.OUTBOUND_MODEL_RUNS ?? 15);
const SEED = Number(process.env.OUTBOUND_MODEL_SEED ?? 20261205);

it('delivers every event a task went through (signed, backed off, recorded as the receiver saw it) or records why not, across restarts', async () => {
  await runOutboundWebhookModel({
    replicas: 1,
    database: async () => {
      const url = tempDatabaseUrl();
      // The next start on the file takes over every lease at once: a try the dead process made may be repeated at once.
      return { url, takeoverMs: 0, remove: () => rm(dirname(url.slice('sqlite:'.length)), { recursive: true, force: true }) };
    },
    seed: 20261205,
    runs: 15,
  });
  // The default runs reach every case the model is for (a longer or other run may shrink to fewer).
  if (RUNS === 15 && SEED === 20261205) {
    const cases = [
      'delivered after a failed try',
      'delivered by a 200 whose body never ended',
      'a Retry-After longer than the back-off',
      'a Retry-After over an hour, held to one',
      'retried after a redirect',
      'retried after slow',
      'retried after reset',
      'retried after close',
      'ended by its 410',
      'not sent after a 410',
      `failed after ${MAX_ATTEMPTS} tries`,
      'an unrecorded 2xx sent again',
      'an unrecorded try sent again',
      'a graceful stop with POSTs on their way',
      'a secret rotated between tries',
    ];
    for (const one of cases) expect(coverage.get(one) ?? 0, `${one}: ${JSON.stringify([...coverage])}`).toBeGreaterThan(0);
  }
}, RUNS * 6_000);
