/**
 * A graceful stop (`close()`, what SIGTERM runs) stops taking work first: a dispatch pass running
 * at the signal finishes the creates already on the wire, and sends no queued task it had not
 * started. Those stay queued, durably, for the next start (or another replica) to send.
 */
import { afterEach, expect, it } from 'vitest';
import { openStore } from '../../src/store/database.js';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
afterEach(async () => {
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

  // The pause ends; a healthy but slow upstream takes a second to answer each create.
  kling3api.injectFault({ on: 'submit', delayMs: 1_000, times: 100 });
  await gw.clock.advance(11_000);
  const pass = gw.gateway.runOnce().catch(() => undefined);
  for (let i = 0; i < 400 && creates() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  // The pass's first batch reaches the upstream (each answer takes a second).
  await new Promise((resolve) => setTimeout(resolve, 300));
  const onTheWire = creates() - 1;
  expect(onTheWire).toBeGreaterThan(0);
  expect(onTheWire).toBeLessThan(24);

  // SIGTERM.
  await gw.gateway.close();
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
