/**
 * A legacy Kling-API callback is unsigned: whoever holds a task's callback URL (the aggregator,
 * or anyone it leaked to) may post to it as often as they like, and each callback that claims the
 * task finished (or any while it waits in the queue) makes the gateway ask the provider. Each
 * such callback used to cost one status call on the account, so a storm of them used up the
 * account's rate windows that every tenant's creates and polls share. Now a task's callbacks ask
 * the provider at most once per `tracking.poll_min_interval_ms`; one that comes sooner is
 * confirmed when that interval has passed, not dropped. Callbacks naming another upstream task
 * than the token's task tracks (news of a create left in doubt) are bounded likewise.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
beforeEach(async () => {
  gw = await startTestGateway();
});
afterEach(() => gw.close());

const statusCalls = () => gw.simulator('kling-legacy').requests.filter((r) => r.method === 'GET').length;

async function legacyTask() {
  const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk' });
  expect(created.body.provider).toBe('kling-legacy');
  const task = await gw.gateway.store.getTask(created.body.id);
  return { id: created.body.id as string, providerTaskId: created.body.provider_task_id as string, path: `/v1/webhooks/kling-legacy/${task!.callback_token}` };
}

async function callback(path: string, body: unknown) {
  const answer = await gw.request('POST', path, JSON.stringify(body), {}, null);
  expect(answer.status).toBe(200);
  await gw.gateway.runOnce();
}

it('asks the provider once for a storm of "succeed" callbacks on one task, not once per callback', async () => {
  const task = await legacyTask();
  const before = statusCalls();
  for (let i = 0; i < 20; i++) await callback(task.path, { task_id: task.providerTaskId, task_status: 'succeed' });
  expect(statusCalls() - before).toBe(1);
});

it('asks the provider once for a storm of progress callbacks while the task waits in the queue', async () => {
  const task = await legacyTask();
  const before = statusCalls();
  for (let i = 0; i < 20; i++) await callback(task.path, { task_id: task.providerTaskId, task_status: 'submitted' });
  expect(statusCalls() - before).toBe(1);
});

it('confirms a "succeed" that came right behind a confirmed callback once the interval has passed, not at the safety poll', async () => {
  const task = await legacyTask();
  const minIntervalMs = gw.config.tracking.poll_min_interval_ms;
  // The simulator finishes a task 5 s after its create; just before, a callback is confirmed: still running.
  await gw.clock.advance(4_900);
  await callback(task.path, { task_id: task.providerTaskId, task_status: 'succeed' });
  expect((await gw.get(task.id)).body.status).toBe('processing');
  // The task finishes upstream, and its "succeed" comes within the interval of the last confirmation.
  await gw.clock.advance(200);
  const before = statusCalls();
  await callback(task.path, { task_id: task.providerTaskId, task_status: 'succeed' });
  expect(statusCalls()).toBe(before);
  // Confirmed once the interval has passed (the safety poll is a minute away).
  await gw.advance(minIntervalMs);
  expect((await gw.get(task.id)).body.status).toBe('succeeded');
});

describe('callbacks naming tasks on the token of a task with a legacy create left in doubt', () => {
  // The legacy create's answer is lost and its lookup gets no answer: the task goes on to
  // kling3api, its legacy attempt left in doubt. A callback on its token naming an upstream task
  // is then news of a video nobody tracks, believed only once the provider shows it: one status
  // call per callback, whatever it named, also long after the task ended.
  async function taskWithLegacyCreateLeftBehind() {
    await gw.close();
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true } } });
    // The simulator's own callbacks (as its task runs) go nowhere: the test sends each one.
    gw.gateway.setPublicUrl('http://127.0.0.1:9');
    const legacy = gw.simulator('kling-legacy');
    legacy.injectFault({ on: 'submit', transport: 'drop_after_accept' });
    legacy.injectFault({ on: 'status', kind: 'unavailable' });
    const created = (await gw.create({ model: 'kling-v3', prompt: 'a kite', duration: 5, routing: { providers: ['kling-legacy', 'kling3api'] } })).body;
    expect(created.attempts.map((attempt: { provider: string; outcome: string }) => [attempt.provider, attempt.outcome])).toEqual([
      ['kling-legacy', 'ambiguous'],
      ['kling3api', 'accepted'],
    ]);
    const token = (await gw.gateway.store.getTask(created.id))!.callback_token;
    return { id: created.id as string, path: `/v1/webhooks/kling-legacy/${token}`, upstreamId: legacy.tasks[0]!.id };
  }
  const untrackedReported = async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    return Number(/untracked_upstream_tasks_total\{provider="kling-legacy",found_by="webhook"\} (\d+)/.exec(text)?.[1] ?? 0);
  };

  it('asks the provider a few times for a storm of callbacks naming made-up tasks, not once per callback, also after the task ended', async () => {
    const task = await taskWithLegacyCreateLeftBehind();
    let before = statusCalls();
    for (let i = 0; i < 20; i++) {
      const answer = await gw.request('POST', task.path, JSON.stringify({ task_id: `80000000000000${i}`, task_status: 'succeed' }), {}, null);
      expect(answer.status).toBe(404);
    }
    // Three at once, then one per tracking.poll_min_interval_ms.
    expect(statusCalls() - before).toBe(3);

    expect((await gw.finish(task.id)).status).toBe('succeeded');
    await gw.clock.advance(3 * gw.config.tracking.poll_min_interval_ms);
    before = statusCalls();
    for (let i = 0; i < 20; i++) await gw.request('POST', task.path, JSON.stringify({ task_id: `90000000000000${i}`, task_status: 'succeed' }), {}, null);
    expect(statusCalls() - before).toBe(3);
  });

  it('still reports the task the provider made for the create left in doubt, named after a storm once the interval has passed', async () => {
    const task = await taskWithLegacyCreateLeftBehind();
    for (let i = 0; i < 5; i++) await gw.request('POST', task.path, JSON.stringify({ task_id: `80000000000000${i}`, task_status: 'succeed' }), {}, null);
    await gw.clock.advance(gw.config.tracking.poll_min_interval_ms);
    const answer = await gw.request('POST', task.path, JSON.stringify({ task_id: task.upstreamId, task_status: 'succeed' }), {}, null);
    expect(answer.body).toEqual({ received: true, matched: false });
    expect(await untrackedReported()).toBe(1);
  });
});
