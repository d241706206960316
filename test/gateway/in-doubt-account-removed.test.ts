/**
 * The gateway stopped while a legacy Kling-API create was in flight, and restarts with the
 * account that create went through no longer configured (its key moved into `accounts` under
 * another id). Nothing can ask about the create until that account is back, as the start's own
 * warning tells the operator ("restore that account"): the task waits in doubt until its deadline
 * rather than failing at once, as though the provider documented no way to find it, while it may
 * be rendering (and billing) the video. With the account restored, the create is looked up by
 * the external_task_id it carried and the task is adopted. kling3api gives no way to find a
 * create, with the account back or not: its task fails at once, as before — unless the create's
 * answer named its task beside a server error: that one waits for the account too, and is adopted
 * once its status shows the task. A provider left without a key at the restart is the same: its
 * create waits for the key, and its deadline error says the provider has no key.
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

/** A gateway that created `body` and died mid-create (the attempt still `sending`, its lease run out), and what it ran on. */
async function diedMidCreate(body: Record<string, unknown>, provider: string) {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const database = tempDatabaseUrl();
  const options = { clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config: { database: { url: database } } };
  const first = await startTestGateway(options);
  const created = (await first.create({ ...body, routing: { providers: [provider] } })).body;
  expect(created.provider).toBe(provider);
  await first.close();
  const store = await openStore(database);
  const tasks = new TaskStore(store);
  await tasks.updateTask(created.id, { phase: 'submitting', status: 'queued', provider_task_id: null, lease_owner: 'dead-replica', lease_until: clock.now() - 1 });
  await tasks.updateAttempt(created.id, 1, { outcome: 'sending', latency_ms: null, provider_task_id: null, tracking_json: null, message: null, error_code: null, recovered_by: null });
  await store.close();
  return { created, sandbox, options };
}

/** The account of `provider`'s single key, moved under `accounts` with another id. */
function movedAccount(sandbox: Awaited<ReturnType<typeof startSandbox>>, provider: string) {
  const endpoint = sandbox.endpoints.get(provider)!;
  return { id: 'main', apiKey: endpoint.apiKey, ...(endpoint.accessKey ? { accessKey: endpoint.accessKey } : {}), ...(endpoint.secretKey ? { secretKey: endpoint.secretKey } : {}) };
}

it('a kling3api create in doubt on an account removed at restart fails at once: nothing could find it with the account back either', async () => {
  const { created, sandbox, options } = await diedMidCreate({ model: 'kling-v3', prompt: 'a kite', duration: 5 }, 'kling3api');
  const renamed = await startTestGateway({ ...options, endpointOverrides: { kling3api: { accounts: [movedAccount(sandbox, 'kling3api')] } } });
  open.push(renamed);
  await renamed.gateway.runOnce();
  await renamed.advance(1_000);
  const failed = (await renamed.get(created.id)).body;
  expect(failed).toMatchObject({ status: 'failed', provider: 'kling3api', provider_task_id: null, error: { code: 'provider_error' } });
  expect(failed.error.message).toMatch(/kling3api documents no way to find a task by anything the gateway sent/);
  expect(sandbox.simulators.get('kling3api')!.tasks).toHaveLength(1);
});

it('a create in doubt on an account removed at restart waits for it, and is adopted once the account is back', async () => {
  const { created, sandbox, options } = await diedMidCreate(legacyVideo, 'kling-legacy');
  const renamed = await startTestGateway({ ...options, endpointOverrides: { 'kling-legacy': { accounts: [movedAccount(sandbox, 'kling-legacy')] } } });
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

it('a kling3api create answered with a server error naming a task, on an account removed at restart, waits for it, and is adopted once the account is back', async () => {
  const { created, sandbox, options } = await diedMidCreate({ model: 'kling-v3', prompt: 'a kite over dunes', duration: 5 }, 'kling3api');
  // Its answer was a server error beside the task it made (kept on the attempt, not yet asked about).
  const made = sandbox.simulators.get('kling3api')!.tasks[0]!.id;
  const store = await openStore(options.config.database.url);
  await new TaskStore(store).updateAttempt(created.id, 1, { outcome: 'ambiguous', error_code: 'provider_error', provider_code: 'INTERNAL_ERROR', http_status: 500, named_task_id: made });
  await store.close();
  const renamed = await startTestGateway({ ...options, endpointOverrides: { kling3api: { accounts: [movedAccount(sandbox, 'kling3api')] } } });
  open.push(renamed);
  await renamed.gateway.runOnce();
  await renamed.advance(60_000);
  // Before: failed at once, although the id of the task the provider may be making was known.
  expect((await renamed.get(created.id)).body).toMatchObject({ status: 'queued', provider_task_id: null });
  await renamed.close();
  open.splice(0);

  const restored = await startTestGateway(options);
  open.push(restored);
  const adopted = await restored.finish(created.id);
  expect(adopted).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: made });
  expect(adopted.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: 'answer' })]);
  expect(sandbox.simulators.get('kling3api')!.tasks).toHaveLength(1);
});

it('a create in doubt on a provider left without a key at restart waits for its key, and says so when its deadline ends it', async () => {
  const { created, options } = await diedMidCreate(legacyVideo, 'kling-legacy');
  // What a live start gives a provider left without a key.
  const keyless = { baseUrl: 'http://disabled.invalid', apiKey: '', accessKey: undefined, secretKey: undefined, simulated: false, disabledReason: 'no access_key and secret_key configured' };
  const without = await startTestGateway({ ...options, endpointOverrides: { 'kling-legacy': keyless } });
  open.push(without);
  await without.gateway.runOnce();
  await without.advance(60_000);
  expect((await without.get(created.id)).body).toMatchObject({ status: 'queued', provider_task_id: null });
  for (let step = 0; step < 31; step++) await without.advance(60_000);
  const ended = (await without.get(created.id)).body;
  expect(ended.status).toBe('failed');
  expect(ended.error.message).toContain("kling-legacy has no key in this gateway's configuration, so nothing could ask about it");
  expect(ended.error.message).not.toContain('no longer configured');
});
