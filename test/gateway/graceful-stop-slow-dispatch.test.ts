/**
 * A graceful stop waits, within its drain, for a create a worker's dispatch pass has on the wire —
 * not only for those started by requests — however slow the upstream's answer, so an accepted (and
 * billed) create is recorded before the store closes, not left for recovery to find (or fail).
 */
import { afterEach, expect, it } from 'vitest';
import { openStore } from '../../src/store/database.js';
import { heldCall } from '../support/held-call.js';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
const releases: (() => void)[] = [];
afterEach(async () => {
  for (const release of releases.splice(0)) release();
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
});

/** Longer than what the stop waits for work still running after its listener closed (5 s). */
const SLOW_ANSWER_MS = 6_500;

it('records a create a dispatch pass has on the wire at the stop, even when the upstream answers it after several seconds', async () => {
  const database = tempDatabaseUrl();
  const gw = await startTestGateway({
    config: { database: { url: database }, providers: { kling3api: { max_in_flight: 10, rate_limits: [], timeout_ms: 20_000 } } },
  });
  open.push(gw);
  const kling3api = gw.simulator('kling3api');
  // kling3api asks for a pause: the task waits in the queue for a worker's pass.
  kling3api.injectFault({ on: 'submit', status: 429, headers: { 'retry-after': '10' } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'sent by a pass', duration: 5, routing: { providers: ['kling3api'] } });
  expect(created.body.status).toBe('queued');

  // The pause ends; the pass's create reaches a healthy but slow upstream.
  const slow = heldCall();
  releases.push(slow.release);
  kling3api.injectFault({ on: 'submit', hold: slow.hold });
  await gw.clock.advance(11_000);
  const pass = gw.gateway.runOnce().catch(() => undefined);
  await slow.reached;

  // SIGTERM while the create is on the wire; the upstream answers it a while later.
  const closing = gw.gateway.close();
  const answered = setTimeout(slow.release, SLOW_ANSWER_MS);
  await closing;
  clearTimeout(answered);
  slow.release();
  await pass;
  open.splice(0);
  await Promise.all([...gw.simulators.values()].map((simulator) => simulator.close()));

  // The upstream made the task, and the store says so: tracked, with its upstream id.
  expect(kling3api.tasks).toHaveLength(1);
  const store = await openStore(database);
  const row = await store.db.selectFrom('tasks').select(['id', 'phase', 'status', 'provider_task_id']).where('id', '=', created.body.id).executeTakeFirst();
  await store.close();
  expect(row).toMatchObject({ phase: 'tracking', status: 'processing', provider_task_id: kling3api.tasks[0]!.id });
}, 30_000);
