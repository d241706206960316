/**
 * The deadline pass and a poll claimed between its read and its write: the pass reads a task past
 * its deadline with no live lease, a poll (here another replica's) then leases it and asks the
 * provider. The pass must not fail the task under that poll: the poll may be about to learn it
 * succeeded (a paid video), and it applies the deadline itself if the task is still running.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { LAST_LOOK_GRACE_MS } from '../../src/core/tasks/polling.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  vi.restoreAllMocks();
  await gw?.close();
});

it('does not fail a task past its deadline that a poll leased after the deadline pass read it', async () => {
  gw = await startTestGateway({ config: { tasks: { deadline_ms: 60_000 }, sandbox: { processing_ms: 600_000 } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a lighthouse at dusk', routing: { providers: ['kling3api'] } });
  expect(created.body.status).toBe('processing');
  const { store, engine, tracker } = gw.gateway;
  // Its next poll was put past the deadline's grace for a last look (a provider's long Retry-After,
  // say): the deadline pass takes it.
  const deadline = (await store.getTask(created.body.id))!.deadline_at;
  await store.updateTask(created.body.id, { next_poll_at: deadline + LAST_LOOK_GRACE_MS + 10_000 });
  await gw.clock.advance(deadline + LAST_LOOK_GRACE_MS + 20_000 - gw.clock.now());

  const now = gw.clock.now();
  const listOverdue = engine.tasks.listOverdue.bind(engine.tasks);
  vi.spyOn(engine.tasks, 'listOverdue').mockImplementationOnce(async (at, limit) => {
    const overdue = await listOverdue(at, limit);
    expect(overdue.map((task) => task.id)).toEqual([created.body.id]);
    // Between the pass's read and its write, another replica's poll leases the task.
    const polled = await engine.tasks.claimDueForTracking(now, 'replica-b', 60_000, 10);
    expect(polled.map((task) => task.id)).toEqual([created.body.id]);
    return overdue;
  });
  await tracker.expireOverdue();

  const row = (await store.getTask(created.body.id))!;
  expect([row.status, row.phase, row.lease_owner]).toEqual(['processing', 'tracking', 'replica-b']);
});
