/**
 * With `failover_on_timeout`, a task can leave two creates in doubt in a row: two providers may
 * each hold (and bill) it. Once the task is tracked at one of them, signed news naming the other's
 * upstream task cannot be adopted (one gateway task tracks one upstream task), and is reported as
 * a paid task nobody tracks — error log, `untracked_upstream_tasks_total{found_by="webhook"}` —
 * with that provider's estimate in `cost.at_risk`, as when a later provider took the task.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { capturedLogs } from '../support/captured-logs.js';
import { postFreepikWebhook } from '../support/freepik-webhook.js';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
let store: Store | undefined;
afterEach(async () => {
  await gw?.close();
  await store?.close();
  gw = undefined;
  store = undefined;
});

const outcomes = (task: { attempts: { provider: string; outcome: string }[] }) => task.attempts.map((attempt) => [attempt.provider, attempt.outcome]);

/**
 * A task whose creates to `first` and `second` were both written and never answered (failed over
 * each time), and which then waits in the gateway's queue: kling3api said "later".
 */
async function twoCreatesInDoubt(first: string, second: string) {
  const logs = capturedLogs();
  store = await openStore(tempDatabaseUrl());
  gw = await startTestGateway({ store, logTo: logs.sink, config: { routing: { failover_on_timeout: true } } });
  gw.simulator(first).injectFault({ on: 'submit', transport: 'drop_after_accept' });
  gw.simulator(second).injectFault({ on: 'submit', transport: 'drop_after_accept' });
  // The legacy create's lookup by external_task_id gets no answer (a 503): it stays in doubt as the task goes on.
  if ([first, second].includes('kling-legacy')) gw.simulator('kling-legacy').injectFault({ on: 'status', kind: 'unavailable' });
  gw.simulator('kling3api').injectFault({ on: 'submit', status: 429, kind: 'rate_limited', headers: { 'retry-after': '60' } });
  const created = (await gw.create({ model: 'kling-v3', prompt: 'a kite over the dunes', duration: 5, routing: { providers: [first, second, 'kling3api'] } })).body;
  expect(created).toMatchObject({ status: 'queued', provider_task_id: null });
  expect(outcomes(created)).toEqual([
    [first, 'ambiguous'],
    [second, 'ambiguous'],
    ['kling3api', 'failed'],
  ]);
  return { gw, logs, created };
}

describe('a task that left creates in doubt at two providers', () => {
  it('adopts the first one signed news names while it waits in the queue; the other stays a possible charge', async () => {
    const { gw, created } = await twoCreatesInDoubt('freepik', 'kling-legacy');
    const freepikTask = gw.simulator('freepik').tasks[0]!.id;
    const answer = await postFreepikWebhook(gw, { task_id: freepikTask, status: 'IN_PROGRESS', generated: [] }, { attemptKey: `${created.id}-1` });
    expect(answer.status).toBe(200);
    // Freepik holds it for sure; the legacy API only may: tracked at Freepik, never sent to a third provider.
    await gw.advance(61_000);
    await gw.advance(1_000);
    const task = (await gw.get(created.id)).body;
    expect(task).toMatchObject({ provider: 'freepik', provider_task_id: freepikTask });
    expect(gw.simulator('kling3api').requests.filter((request) => request.method === 'POST')).toHaveLength(1);
    expect(task.cost.at_risk).toEqual([expect.objectContaining({ provider: 'kling-legacy', estimated: true })]);
  });

  it('reports signed news naming the other create once the task is tracked at one provider: an error, the metric, cost.at_risk', async () => {
    const { gw, logs, created } = await twoCreatesInDoubt('kling-legacy', 'freepik');
    // As the legacy create's task, once found, leaves it: tracked at the legacy API, Freepik's create still in doubt.
    const legacyTask = gw.simulator('kling-legacy').tasks[0]!.id;
    const tasks = new TaskStore(store!);
    await tasks.updateAttempt(created.id, 1, { outcome: 'accepted', provider_task_id: legacyTask, recovered_by: 'webhook' });
    await tasks.updateTask(created.id, { phase: 'tracking', status: 'processing', provider: 'kling-legacy', provider_task_id: legacyTask });

    const freepikTask = gw.simulator('freepik').tasks[0]!.id;
    const answer = await postFreepikWebhook(gw, { task_id: freepikTask, status: 'IN_PROGRESS', generated: [] }, { attemptKey: `${created.id}-2` });
    expect(answer).toMatchObject({ status: 200, body: { received: true, matched: false } });
    const task = (await gw.get(created.id)).body;
    expect(task).toMatchObject({ provider: 'kling-legacy', provider_task_id: legacyTask });
    expect(task.cost.at_risk).toEqual([expect.objectContaining({ provider: 'freepik', estimated: true })]);
    const said = logs
      .text()
      .split('\n')
      .filter((line) => line.includes(freepikTask) && line.includes('"level":"error"'))
      .map((line) => JSON.parse(line));
    expect(said).toEqual([
      expect.objectContaining({
        task_id: created.id,
        provider: 'freepik',
        provider_task_id: freepikTask,
        msg: "freepik made a task for a create the gateway left in doubt, after another provider took the task: it may bill, and no task tracks it (cancel or keep it in freepik's own dashboard)",
      }),
    ]);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('kling_gateway_untracked_upstream_tasks_total{provider="freepik",found_by="webhook"} 1');
    expect(metrics).toContain('kling_gateway_inbound_webhooks_total{provider="freepik",outcome="ruled_out"} 1');
  });
});
