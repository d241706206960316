/**
 * The gateway stopped while a legacy Kling-API create was in flight, and restarts with the
 * account that create went through no longer configured (its key moved into `accounts` under
 * another id). Nothing can ask about the create until that account is back, as the start's own
 * warning tells the operator ("restore that account"): the task waits in doubt until its deadline
 * rather than failing at once, as though the provider documented no way to find it, while it may
 * be rendering (and billing) the video. With the account restored, the create is looked up by
 * the external_task_id it carried and the task is adopted.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { openStore } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const legacyVideo = { model: 'kling-v1', prompt: 'an old film look', duration: 5 };

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => undefined);
});

it('a create in doubt on an account removed at restart waits for it, and is adopted once the account is back', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const database = tempDatabaseUrl();
  const options = { clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config: { database: { url: database } } };
  const first = await startTestGateway(options);
  const created = (await first.create(legacyVideo)).body;
  expect(created.provider).toBe('kling-legacy');
  await first.close();
  // As a replica that died mid-create leaves it: the attempt still `sending`, its lease run out.
  const store = await openStore(database);
  const tasks = new TaskStore(store);
  await tasks.updateTask(created.id, { phase: 'submitting', status: 'queued', provider_task_id: null, lease_owner: 'dead-replica', lease_until: clock.now() - 1 });
  await tasks.updateAttempt(created.id, 1, { outcome: 'sending', latency_ms: null, provider_task_id: null, tracking_json: null, message: null, error_code: null, recovered_by: null });
  await store.close();

  const legacy = sandbox.endpoints.get('kling-legacy')!;
  const moved = { id: 'main', apiKey: legacy.apiKey, ...(legacy.accessKey ? { accessKey: legacy.accessKey } : {}), ...(legacy.secretKey ? { secretKey: legacy.secretKey } : {}) };
  const renamed = await startTestGateway({ ...options, endpointOverrides: { 'kling-legacy': { accounts: [moved] } } });
  open.push(renamed);
  await renamed.gateway.runOnce();
  await renamed.advance(60_000);
  // Before: failed at once, "kling-legacy documents no way to find a task by anything the gateway sent".
  const waiting = (await renamed.get(created.id)).body;
  expect(waiting).toMatchObject({ status: 'queued', provider_task_id: null });
  await renamed.close();
  open.splice(0);

  const restored = await startTestGateway(options);
  open.push(restored);
  const adopted = await restored.finish(created.id);
  expect(adopted).toMatchObject({ status: 'succeeded', provider: 'kling-legacy', provider_task_id: sandbox.simulators.get('kling-legacy')!.tasks[0]!.id });
  expect(adopted.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: 'external_id' })]);
  expect(sandbox.simulators.get('kling-legacy')!.tasks).toHaveLength(1);
});
