/**
 * "Done" with nothing to download is confirmed by one more poll a moment later; only the same
 * word again then fails the task. A poll whose answer says it while the same word arrives as
 * news (a webhook, applied at once) is no such later look: both saw the upstream at the same
 * moment, and the result may still land.
 */
import { afterEach, expect, it, vi } from 'vitest';
import type { StatusReport } from '../../src/core/upstream/provider.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  vi.restoreAllMocks();
  await gw?.close();
});

it('keeps a task in progress, to be looked at again, when a poll and news say "done, nothing to download" at once', async () => {
  gw = await startTestGateway({ config: { sandbox: { processing_ms: 600_000 } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a lighthouse at dusk', routing: { providers: ['kling3api'] } });
  expect(created.body.status).toBe('processing');
  const { store, engine, tracker } = gw.gateway;
  const runtime = engine.runtimes.get('kling3api')!;
  const doneWithNothing: StatusReport = { status: 'succeeded', providerStatus: 'SUCCESS', outputs: [] };
  vi.spyOn(runtime.provider, 'getStatus').mockImplementationOnce(async () => {
    // While this poll's answer is on its way, the same word arrives as news and is applied.
    const task = (await engine.tasks.get(created.body.id))!;
    await tracker.onWebhook(task, doneWithNothing);
    return doneWithNothing;
  });
  await store.updateTask(created.body.id, { next_poll_at: gw.clock.now() });
  await tracker.tick();

  const read = await gw.get(created.body.id);
  expect([read.body.status, read.body.error]).toEqual(['processing', null]);
  const row = (await store.getTask(created.body.id))!;
  expect([row.phase, row.provider_status, row.lease_owner]).toEqual(['tracking', 'SUCCESS', null]);
  expect(row.next_poll_at).toBeGreaterThan(gw.clock.now());
});
