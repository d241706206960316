/**
 * The spend ledger as the lifecycle uses it: any transition that ends a task settles its
 * reservation, including ones this round has not built yet (cancel). Run on a real store through
 * a test gateway, with the transition written the way the lifecycle writes every change.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SpendLedger, chargeOf, deliveredSeconds } from '../../../src/core/tasks/spend-ledger.js';
import { newOutput, taskFromRow, type OutputRecord, type TaskChange, type TaskRecord } from '../../../src/core/tasks/task-records.js';
import { deliveredSecondsOfColumns } from '../../../src/store/migrations.js';
import type { TaskRow } from '../../../src/store/task-store.js';
import { taskRow } from '../../support/task-rows.js';
import { startTestGateway, type TestGateway } from '../../support/harness.js';
import { taskRecord } from '../../support/task-records.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const pinned = { model: 'kling-v3', prompt: 'waiting in line', duration: 5, routing: { providers: ['kling3api'] } };

describe('SpendLedger.follow', () => {
  it('releases the reservation of a queued task that is canceled, whatever estimate its cost still shows', async () => {
    gw = await startTestGateway({
      config: {
        tenants: { acme: { budget: { amount: 10, currency: 'USD', period: 'month' } } },
        providers: { kling3api: { max_in_flight: 1 } },
      },
    });
    await gw.create(pinned);
    const waiting = await gw.create(pinned);
    expect(waiting.body.status).toBe('queued');
    const { engine } = gw.gateway;
    const before = (await engine.tasks.get(waiting.body.id))!;
    expect(before.cost).toMatchObject({ currency_amount: 0.4, estimated: true });
    expect((await gw.request('GET', '/v1/usage')).body.budgets[0]).toMatchObject({ reserved: 0.8 });

    // What a cancel does: one terminal change of a task still in dispatch, through the ledger.
    const change: TaskChange = { phase: 'done', status: 'canceled', completedAt: engine.clock.now(), updatedAt: engine.clock.now() };
    const alongside = new SpendLedger(engine).follow(before, change)!;
    const updated = await engine.tasks.update(before.id, change, { phases: ['dispatch'] }, { alongside });
    expect(updated?.status).toBe('canceled');
    expect((await gw.request('GET', '/v1/usage')).body.budgets[0]).toMatchObject({ reserved: 0.4, spent: 0 });
    expect(await engine.tasks.usage(before.id)).toMatchObject({ status: 'canceled', amountMicros: 0, reservedMicros: 0, settled: true });
    const usage = (await gw.request('GET', '/v1/usage')).body.data[0];
    expect(usage).toMatchObject({ tasks: 2, canceled: 1, in_progress: 1, currency_amount: 0 });
  });

  it('settles once: a second terminal write finds the line settled and moves no money', async () => {
    gw = await startTestGateway({ config: { tenants: { acme: { budget: { amount: 10, currency: 'USD', period: 'month' } } } } });
    const created = await gw.create(pinned);
    await gw.finish(created.body.id);
    const { engine } = gw.gateway;
    const done = (await engine.tasks.get(created.body.id))!;
    const again: TaskChange = { phase: 'done', status: 'failed' };
    const follow = new SpendLedger(engine).follow({ ...done, phase: 'tracking' }, again)!;
    await engine.tasks.update(done.id, {}, {}, { alongside: follow });
    expect((await gw.request('GET', '/v1/usage')).body.budgets[0]).toMatchObject({ spent: 0.4, reserved: 0 });
  });

  it('asks for no write when a change moves neither money, status nor provider', async () => {
    gw = await startTestGateway();
    const ledger = new SpendLedger(gw.gateway.engine);
    const task = taskRecord('t_1');
    expect(ledger.follow(task, { nextPollAt: 5 })).toBeUndefined();
    expect(ledger.follow(task, { status: task.status, cost: { ...task.cost } })).toBeUndefined();
    expect(ledger.follow(task, { status: 'processing' })).toBeTypeOf('function');
  });
});

/** An output as a provider reported it (passthrough: nothing stored). */
function output(type: 'video' | 'image', duration: number | null): OutputRecord {
  return newOutput({ type, duration, url: `https://cdn.example.com/result.${type === 'video' ? 'mp4' : 'png'}` }, 0, undefined, false);
}

describe('chargeOf and deliveredSeconds', () => {
  const succeeded = (overrides: Partial<TaskRecord> = {}): TaskRecord =>
    taskRecord('t_1', { status: 'succeeded', phase: 'done', provider: 'kling-legacy', providerTaskId: 'up-1', ...overrides });

  it('is the provider\'s figure when it reported one, else the estimate', () => {
    expect(chargeOf(succeeded({ cost: { credits: 3.5, estimated: false, currency_amount: 0.49, currency: 'USD' } }))).toEqual({
      credits: 3.5,
      amountMicros: 490_000,
      currency: 'USD',
      reported: true,
      reportedCredits: 3.5,
    });
    expect(chargeOf(succeeded())).toMatchObject({ credits: 56, amountMicros: 560_000, reported: false, reportedCredits: null });
  });

  it('is nothing for a finished task no provider accepted', () => {
    const unbilled = { credits: 0, estimated: false, currency_amount: 0, currency: 'USD' };
    expect(chargeOf(succeeded({ status: 'canceled', providerTaskId: null, cost: unbilled }))).toEqual({
      credits: 0,
      amountMicros: 0,
      currency: 'USD',
      reported: false,
      reportedCredits: null,
    });
    // Whatever estimate a task nobody took still carries.
    expect(chargeOf(succeeded({ status: 'failed', provider: null, providerTaskId: null }))).toMatchObject({ credits: 0, amountMicros: 0 });
  });

  it('is the estimate for a queued task canceled after a create that may exist upstream (failed over from)', () => {
    const inDoubt = succeeded({ status: 'canceled', providerTaskId: null });
    expect(inDoubt.cost.estimated).toBe(true);
    expect(chargeOf(inDoubt)).toMatchObject({ credits: 56, amountMicros: 560_000, reported: false, reportedCredits: null });
  });

  it('is the estimate for a failed task whose create may have been accepted (sent, never answered)', () => {
    const inDoubt = succeeded({ status: 'failed', providerTaskId: null });
    expect(inDoubt.cost.estimated).toBe(true);
    expect(chargeOf(inDoubt)).toMatchObject({ credits: 56, amountMicros: 560_000, reported: false, reportedCredits: null });
    const refused = succeeded({ status: 'failed', providerTaskId: null, cost: { credits: 0, estimated: false, currency_amount: 0, currency: 'USD' } });
    expect(chargeOf(refused)).toMatchObject({ credits: 0, amountMicros: 0 });
  });

  it('counts the durations the provider reports, else the seconds asked for, and nothing for images or failures', () => {
    const request = { model: 'kling-v3', quality: 'pro', operation: 'text-to-video', duration: 10 } as TaskRecord['request'];
    expect(deliveredSeconds(succeeded({ request, outputs: [output('video', 10.04)] }))).toBe(10.04);
    expect(deliveredSeconds(succeeded({ request, outputs: [output('video', null)] }))).toBe(10);
    expect(deliveredSeconds(succeeded({ request, outputs: [output('image', null)] }))).toBe(0);
    expect(deliveredSeconds(succeeded({ request, status: 'failed', outputs: [] }))).toBe(0);
  });

  it("counts what migration 0017 counts from a succeeded task's columns as stored, for the lines of tasks finished before usage lines", () => {
    const stored = (...outputs: OutputRecord[]) => JSON.stringify(outputs);
    const request = (fields: Record<string, unknown>) => JSON.stringify({ model: 'kling-v3', quality: 'pro', operation: 'text-to-video', ...fields });
    const cases: [outputs: string, request: string][] = [
      [stored(output('video', 5.1), output('video', 4.9)), request({ duration: 10 })],
      [stored(output('video', null)), request({ duration: 10 })],
      [stored(output('video', 5), output('video', null)), request({ duration: 10 })],
      [stored(output('video', null)), request({ multi_shot: [{ prompt: 'a', duration: 3 }, { prompt: 'b', duration: 4 }] })],
      [stored(output('video', null)), request({ multi_shot: [{ prompt: 'a', duration: 3 }, { prompt: 'b' }] })],
      [stored(output('video', null)), request({})],
      [stored(output('image', null)), request({ duration: 10 })],
      [stored(output('image', null), output('video', 5)), request({ duration: 10 })],
      ['[]', request({ duration: 10 })],
      // Outputs finished before result custody (`{type, url, duration}`), and columns that do not parse.
      [JSON.stringify([{ type: 'video', url: 'https://cdn.example.com/v.mp4', duration: 5 }]), request({ duration: 10 })],
      [JSON.stringify([{ url: 'https://cdn.example.com/v.mp4' }]), request({ duration: 10 })],
      [JSON.stringify([{ type: 'image', url: 'https://cdn.example.com/i.png' }]), request({ duration: 10 })],
      ['[{"type":', request({ duration: 10 })],
      [stored(output('video', null)), '{"duration":'],
    ];
    for (const [outputs, requestJson] of cases) {
      const task = taskFromRow(taskRow('t_1', { status: 'succeeded', phase: 'done', outputs_json: outputs, request_json: requestJson }) as TaskRow);
      expect(deliveredSecondsOfColumns(outputs, requestJson), `${outputs} ${requestJson}`).toBe(deliveredSeconds(task));
    }
  });
});
