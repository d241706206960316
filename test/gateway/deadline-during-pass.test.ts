/**
 * A dispatch pass reads its page of queued tasks once and sends them eight at a time. A task whose
 * deadline passes while the batch ahead of it is still waiting for its creates' answers must not
 * be sent when its turn comes: it is failed with `timeout`, never created (and billed) upstream.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { heldCall } from '../support/held-call.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const request = { model: 'kling-v3', prompt: 'a deadline during the pass', duration: 5, routing: { providers: ['kling3api'] } };

it('does not send a queued task whose deadline passed while the batch ahead of it in the same pass was on its way', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const { endpoints, simulators } = sandbox;
  const kling3api = simulators.get('kling3api')!;
  const database = tempDatabaseUrl();
  const tasks = { deadline_ms: 60_000 };

  // One slot: the first task takes it, nine more wait in the queue.
  const first = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database }, tasks, providers: { kling3api: { max_in_flight: 1 } } } });
  const running = await first.create(request);
  expect(running.body.status).toBe('processing');
  const queued: string[] = [];
  for (let i = 0; i < 9; i++) {
    const created = await first.create(request);
    expect(created.body.status).toBe('queued');
    queued.push(created.body.id);
  }
  await first.close();
  expect(kling3api.tasks).toHaveLength(1);

  // Restarted with room for all of them: the next pass sends the nine, eight at a time. The first
  // create of that pass is held upstream while the deadline of every queued task passes.
  const held = heldCall();
  kling3api.injectFault({ on: 'submit', hold: held.hold });
  const second = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database }, tasks, providers: { kling3api: { max_in_flight: 20 } } } });
  open.push(second);
  const pass = second.gateway.runOnce();
  await held.reached;
  await clock.advance(61_000);
  held.release();
  await pass;
  await second.advance(1_000);

  // The first batch of eight was on its way before the deadline; the ninth (the pass's order among
  // tasks created at one moment is by id) was not sent.
  expect(kling3api.tasks).toHaveLength(1 + 8);
  const shown = await Promise.all(queued.map(async (id) => (await second.get(id)).body));
  const unsent = shown.filter((task) => task.attempts.length === 0);
  expect(unsent).toHaveLength(1);
  expect(unsent[0].status).toBe('failed');
  expect(unsent[0].error.code).toBe('timeout');
});
