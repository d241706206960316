/**
 * A graceful stop (`close()`, what SIGTERM runs) stops taking work first: a dispatch pass running
 * at the signal finishes the creates already on the wire, and sends no queued task it had not
 * started. Those stay queued, durably, for the next start (or another replica) to send.
 */
import { afterEach, expect, it } from 'vitest';
import { DISPATCH_CONCURRENCY } from '../../src/core/tasks/dispatcher.js';
import { openStore } from '../../src/store/database.js';
import { heldCall } from '../support/held-call.js';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
const releases: (() => void)[] = [];
afterEach(async () => {
  // A case that failed midway left its creates held.
  for (const release of releases.splice(0)) release();
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
});

it('sends no queued task upstream once the stop has begun; the ones not sent stay queued', async () => {
  const database = tempDatabaseUrl();
  const gw = await startTestGateway({
    config: { database: { url: database }, providers: { kling3api: { max_in_flight: 100, rate_limits: [], timeout_ms: 10_000 } } },
  });
  open.push(gw);
  const kling3api = gw.simulator('kling3api');
  const creates = () => kling3api.requests.filter((request) => request.method === 'POST').length;
  // kling3api asks for a pause: every task waits in line for it.
  kling3api.injectFault({ on: 'submit', status: 429, headers: { 'retry-after': '10' } });
  for (let n = 0; n < 24; n++) {
    const created = await gw.create({ model: 'kling-v3', prompt: `queued ${n}`, duration: 5, routing: { providers: ['kling3api'] } });
    expect(created.body.status).toBe('queued');
  }
  expect(creates()).toBe(1);

  // The pause ends; a healthy but slow upstream holds each create until the stop has begun.
  const slow = heldCall();
  releases.push(slow.release);
  let held = 0;
  let batchReached!: () => void;
  const batchOnTheWire = new Promise<void>((resolve) => (batchReached = resolve));
  const reached = () => {
    slow.hold.reached();
    if (++held === DISPATCH_CONCURRENCY) batchReached();
  };
  kling3api.injectFault({ on: 'submit', hold: { until: slow.hold.until, reached }, times: 100 });
  await gw.clock.advance(11_000);
  const pass = gw.gateway.runOnce().catch(() => undefined);
  // The pass's first batch reaches the upstream, which answers none of it yet.
  await batchOnTheWire;
  const onTheWire = creates() - 1;
  expect(onTheWire).toBeGreaterThan(0);
  expect(onTheWire).toBeLessThan(24);

  // SIGTERM; the upstream then answers the creates on the wire.
  const closing = gw.gateway.close();
  slow.release();
  await closing;
  await pass;
  open.splice(0);
  await Promise.all([...gw.simulators.values()].map((simulator) => simulator.close()));

  // Only what was on the wire at the signal went out, and each of those was recorded.
  expect(creates() - 1).toBe(onTheWire);
  expect(kling3api.tasks).toHaveLength(onTheWire);
  const store = await openStore(database);
  const phases = await store.db.selectFrom('tasks').select(['phase', 'status']).execute();
  await store.close();
  expect(phases.filter((task) => task.status === 'processing')).toHaveLength(onTheWire);
  expect(phases.filter((task) => task.phase === 'dispatch' && task.status === 'queued')).toHaveLength(24 - onTheWire);
}, 30_000);
