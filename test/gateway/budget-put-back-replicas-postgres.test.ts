/**
 * A budget put back in config.yaml mid-period by a rolling deploy over three replicas on one
 * PostgreSQL: the tasks replicas without it created meanwhile are counted once, however many
 * replicas with it create at once, and while those tasks settle on the replicas without it.
 */
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

/** 5 s of kling-v3 pro with audio on kling3api: $0.40. */
const video = { model: 'kling-v3', prompt: 'a rolling deploy', duration: 5, routing: { providers: ['kling3api'] } };
const BUDGET = { tenants: { acme: { budget: { amount: 3, currency: 'USD', period: 'month' } } } };

describe.skipIf(!available)('a budget put back by a rolling deploy over three replicas', () => {
  const replicas = usePostgresReplicas();
  const { replica, withClockRunning } = replicas;

  it('counts once what replicas without it created, while replicas with it create at once and those tasks settle', async () => {
    const first = await replica('with-budget-0', BUDGET);
    expect((await first.create({ ...video, prompt: 'before' })).status).toBe(202);
    const b = await replica('without-b');
    const c = await replica('without-c');
    for (let i = 0; i < 4; i++) expect((await (i % 2 ? b : c).create({ ...video, prompt: `while out ${i}` })).status).toBe(202);

    const d = await replica('with-budget-d', BUDGET);
    const e = await replica('with-budget-e', BUDGET);
    const f = await replica('with-budget-f', BUDGET);
    // $0.40 + $1.60 committed; $3 leaves room for two more.
    const racing = Promise.all(Array.from({ length: 9 }, (_, i) => [d, e, f][i % 3]!.create({ ...video, prompt: `race ${i}` })));
    const settling = (async () => {
      for (let step = 0; step < 3; step++) {
        await replicas.clock.advance(2_000);
        await Promise.all([b.gateway.runOnce(), c.gateway.runOnce()]);
      }
    })();
    const [answers] = await withClockRunning(Promise.all([racing, settling]));
    expect(answers.map((answer) => answer.status).sort()).toEqual([202, 202, 402, 402, 402, 402, 402, 402, 402]);

    for (let step = 0; step < 30; step++) {
      await replicas.clock.advance(2_000);
      await Promise.all([b, c, d, e, f, first].map((gateway) => gateway.gateway.runOnce()));
    }
    for (const gateway of [d, e, f, first]) {
      const budget = (await gateway.request('GET', '/v1/usage')).body.budgets[0];
      expect({ spent: budget.spent, reserved: budget.reserved }).toEqual({ spent: 2.8, reserved: 0 });
    }
    const rows = (await d.request('GET', '/v1/usage?group_by=provider')).body.data;
    expect(rows).toEqual([expect.objectContaining({ provider: 'kling3api', succeeded: 7, currency_amount: 2.8 })]);
  }, 90_000);
});
