/**
 * With `failover_on_timeout`, a task went on from Freepik (its create's answer lost) to kling3api,
 * which took it; the replica holding the submission wrote kling3api's acceptance on its attempt
 * and stopped before the task itself was moved to tracking. Freepik's signed webhook for the
 * first create then names its upstream task while that replica's lease still runs. Adopting it
 * would track the task at Freepik and leave kling3api's task, which bills, tracked by nobody: the
 * webhook changes nothing, and recovery tracks the task at kling3api once the lease ends.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { openStore } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => undefined);
});

it('a webhook naming the create a task went on from is not adopted once the next provider\'s acceptance is on its attempt', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const database = tempDatabaseUrl();
  const options = { clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config: { database: { url: database }, routing: { failover_on_timeout: true } } };
  const first = await startTestGateway(options);
  sandbox.simulators.get('freepik')!.injectFault({ transport: 'drop_after_accept' });
  const created = (await first.create({ model: 'kling-v3', prompt: 'a kite over the dunes', duration: 5, routing: { providers: ['freepik', 'kling3api'] } })).body;
  expect(created).toMatchObject({ status: 'processing', provider: 'kling3api' });
  const kling3apiTask = created.provider_task_id as string;
  await first.close();
  // As the holder leaves it when it stopped after writing kling3api's acceptance on the attempt alone.
  const store = await openStore(database);
  await new TaskStore(store).updateTask(created.id, { phase: 'submitting', status: 'queued', provider_task_id: null, lease_owner: 'stopped-replica', lease_until: clock.now() + 30_000 });
  await store.close();

  const second = await startTestGateway(options);
  open.push(second);
  const freepikTask = sandbox.simulators.get('freepik')!.tasks[0]!.id;
  const body = JSON.stringify({ task_id: freepikTask, status: 'IN_PROGRESS', generated: [] });
  const timestamp = String(Math.floor(clock.now() / 1000));
  const answer = await fetch(`${second.url}/v1/webhooks/freepik/${created.id}-1`, {
    method: 'POST',
    headers: {
      'webhook-id': 'msg_went_on_from',
      'webhook-timestamp': timestamp,
      'webhook-signature': signFreepikWebhook(sandbox.endpoints.get('freepik')!.webhookSecret!, 'msg_went_on_from', timestamp, body),
      'content-type': 'application/json',
    },
    body,
  });
  expect(answer.status).toBe(200);
  expect((await second.get(created.id)).body.provider_task_id).not.toBe(freepikTask);
  await second.advance(31_000);
  const tracked = (await second.get(created.id)).body;
  expect(tracked).toMatchObject({ provider: 'kling3api', provider_task_id: kling3apiTask });
  expect(tracked.attempts.map((attempt: { provider: string; outcome: string }) => [attempt.provider, attempt.outcome])).toEqual([
    ['freepik', 'ambiguous'],
    ['kling3api', 'accepted'],
  ]);
});
