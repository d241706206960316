/**
 * One budget, two gateway replicas on one PostgreSQL schema, creates racing on both: the money
 * committed (spent + reserved) never passes the budget, and no refused create reaches a provider.
 */
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

/** $5 a month; 5 s of kling-v3 pro with audio costs $0.40 on kling3api (400 credits × $0.001), $0.56 on Freepik. */
const BUDGET = { tenants: { acme: { budget: { amount: 5, currency: 'USD', period: 'month' } } } };
const video = { model: 'kling-v3', prompt: 'racing replicas', duration: 5 };

describe.skipIf(!available)('a budget shared by two replicas on PostgreSQL', () => {
  const replicas = usePostgresReplicas(BUDGET);
  const { replica, withClockRunning } = replicas;

  const upstreamTasks = () => [...replicas.simulators.values()].reduce((sum, simulator) => sum + simulator.tasks.length, 0);

  it('never commits more than the budget when both replicas create at once', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const pinned = { ...video, routing: { providers: ['kling3api'] } };
    const answers = await withClockRunning(
      Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).create({ ...pinned, prompt: `race ${i}` }))),
    );
    const accepted = answers.filter((answer) => answer.status === 202);
    const refused = answers.filter((answer) => answer.status === 402);
    // 12 × $0.40 = $4.80 fits in $5; a 13th would not.
    expect(accepted).toHaveLength(12);
    expect(refused).toHaveLength(18);
    for (const answer of refused) expect(answer.body.reserved + answer.body.spent + answer.body.requested).toBeGreaterThan(5);

    // Some accepted tasks waited in line behind older ones; both replicas' workers send them.
    for (const [index, answer] of accepted.entries()) expect((await (index % 2 ? a : b).finish(answer.body.id)).status).toBe('succeeded');
    expect(upstreamTasks()).toBe(12);
    const budget = (await b.request('GET', '/v1/usage')).body.budgets[0];
    expect(budget).toMatchObject({ spent: 4.8, reserved: 0, remaining: 0.2 });
    const usage = (await a.request('GET', '/v1/usage?group_by=provider')).body.data;
    expect(usage).toEqual([expect.objectContaining({ provider: 'kling3api', succeeded: 12, currency_amount: 4.8 })]);
  }, 60_000);

  it('holds while tasks fail over, settle and new creates race on both replicas', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    // Some creates lose Freepik and fail over to kling3api: each reserved the larger $0.56.
    replicas.simulators.get('freepik')!.injectFault({ kind: 'server_error', status: 500, times: 2 });
    const committed = async () => {
      const budget = (await a.request('GET', '/v1/usage')).body.budgets[0];
      return Math.round((budget.spent + budget.reserved) * 1e6) / 1e6;
    };
    let accepted = 0;
    for (let round = 0; round < 4; round++) {
      const answers = await withClockRunning(
        Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).create({ ...video, prompt: `round ${round} task ${i}` }))),
      );
      accepted += answers.filter((answer) => answer.status === 202).length;
      expect(answers.every((answer) => answer.status === 202 || answer.status === 402)).toBe(true);
      expect(await committed()).toBeLessThanOrEqual(5);
      // Let some finish and settle before the next round.
      await replicas.clock.advance(6_000);
      await Promise.all([a.gateway.runOnce(), b.gateway.runOnce()]);
      expect(await committed()).toBeLessThanOrEqual(5);
    }
    expect(accepted).toBeGreaterThan(0);
    await replicas.clock.advance(60_000);
    await Promise.all([a.gateway.runOnce(), b.gateway.runOnce()]);
    const budget = (await a.request('GET', '/v1/usage')).body.budgets[0];
    expect(budget.reserved).toBe(0);
    expect(budget.spent).toBeLessThanOrEqual(5);
    const rows = (await b.request('GET', '/v1/usage?group_by=provider')).body.data;
    const total = rows.reduce((sum: number, row: { currency_amount: number }) => sum + row.currency_amount, 0);
    expect(Math.round(total * 1e6) / 1e6).toBe(budget.spent);
  }, 60_000);
});
