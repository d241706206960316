/**
 * A budget seen from three gateway replicas on one PostgreSQL schema, as its tenant sees it: a
 * refused create leaves nothing behind on any replica, the alerts go out once per period (not
 * once per replica), signed, and usage and the budget gauges read the same on every replica.
 */
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BudgetEvent } from '../../src/http/api-schemas.js';
import { TENANT_WEBHOOK_SECRET, type TestGateway } from '../support/harness.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

interface Received {
  headers: Record<string, string>;
  body: string;
}

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A tenant's events endpoint; it answers 500 to its first `failing` requests, then 200. */
async function receiver(failing = 0): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = received.length <= failing ? 500 : 200;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/account-events`, received };
}

/** Standard Webhooks signature check, without the library's check of the timestamp against real time (the replicas run on a manual clock). */
function signedByTenant(delivery: Received): boolean {
  const key = Buffer.from(TENANT_WEBHOOK_SECRET.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${delivery.headers['webhook-id']}.${delivery.headers['webhook-timestamp']}.${delivery.body}`).digest('base64');
  return (delivery.headers['webhook-signature'] ?? '').split(' ').includes(`v1,${expected}`);
}

/** 5 s kling-v3 pro with audio on kling3api: 400 credits × $0.001 = $0.40. */
const onKling3api = { model: 'kling-v3', prompt: 'three replicas, one budget', duration: 5, routing: { providers: ['kling3api'] } };

async function budgetOf(gateway: TestGateway) {
  const usage = await gateway.request('GET', '/v1/usage');
  expect(usage.status).toBe(200);
  return usage.body.budgets[0];
}

async function metricsOf(gateway: TestGateway): Promise<string> {
  return (await gateway.request('GET', '/metrics', undefined, {}, null)).body as string;
}

/** A counter's samples named `name`, added up over the replicas' scrapes (each counts what it did). */
async function summed(gateways: TestGateway[], name: string): Promise<number> {
  let total = 0;
  for (const gateway of gateways) {
    for (const line of (await metricsOf(gateway)).split('\n')) {
      if (line.startsWith(`${name}{`)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return Math.round(total * 1e6) / 1e6;
}

describe.skipIf(!available)('budget alerts and refusals across three replicas on PostgreSQL', () => {
  describe('a monthly budget of $2 with an events URL', () => {
    let target: Awaited<ReturnType<typeof receiver>>;
    const replicas = usePostgresReplicas({ tenants: { acme: { budget: { amount: 2, currency: 'USD', period: 'month' } } } });

    const start = async () => {
      target = await receiver();
      const extra = { tenants: { acme: { budget: { amount: 2, currency: 'USD', period: 'month' }, events_url: target.url } } };
      return [await replicas.replica('replica-a', extra), await replicas.replica('replica-b', extra), await replicas.replica('replica-c', extra)];
    };
    const upstreamTasks = () => [...replicas.simulators.values()].reduce((sum, simulator) => sum + simulator.tasks.length, 0);
    const runAll = async (gateways: TestGateway[], rounds = 10) => {
      for (let i = 0; i < rounds; i++) {
        await replicas.clock.advance(1_000);
        await Promise.all(gateways.map((gateway) => gateway.gateway.runOnce()));
      }
    };

    it('sends budget.warning and budget.exhausted once each, signed, while creates race on three replicas', async () => {
      const gateways = await start();
      // Nine creates at once, three per replica: five fit ($2.00), four are refused.
      const answers = await replicas.withClockRunning(
        Promise.all(Array.from({ length: 9 }, (_, i) => gateways[i % 3]!.create({ ...onKling3api, prompt: `race ${i}` }))),
      );
      expect(answers.filter((answer) => answer.status === 202)).toHaveLength(5);
      expect(answers.filter((answer) => answer.status === 402)).toHaveLength(4);
      await runAll(gateways);
      // More refusals on every replica later in the period: no further alert.
      for (const gateway of gateways) expect((await gateway.create(onKling3api)).status).toBe(402);
      await runAll(gateways);

      const events = target.received.map((delivery) => JSON.parse(delivery.body));
      expect(events.map((event) => event.type).sort()).toEqual(['budget.exhausted', 'budget.warning']);
      for (const delivery of target.received) expect(signedByTenant(delivery)).toBe(true);
      for (const event of events) {
        expect(BudgetEvent.safeParse(event).error).toBeUndefined();
        expect(event.data).toMatchObject({ object: 'budget', tenant: 'acme', amount: 2, currency: 'USD', period: 'month', period_key: '2026-11' });
        // The body the README documents, key for key.
        expect(Object.keys(event).sort()).toEqual(['data', 'timestamp', 'type']);
        expect(Object.keys(event.data).sort()).toEqual(
          ['object', 'threshold_percent', 'trigger', 'tenant', 'amount', 'currency', 'period', 'period_key', 'period_start', 'period_end', 'per_task_limit', 'spent', 'reserved', 'remaining', 'used_ratio', 'warned_at', 'exhausted_at'].sort(),
        );
      }
      const warning = events.find((event) => event.type === 'budget.warning');
      expect(warning.data).toMatchObject({ threshold_percent: 80, trigger: 'reserved' });
      const exhausted = events.find((event) => event.type === 'budget.exhausted');
      expect(exhausted.data.threshold_percent).toBe(100);
      // As in the README's example: the event's timestamp is the moment the threshold was reached.
      expect(warning.timestamp).toBe(warning.data.warned_at);
      expect(exhausted.timestamp).toBe(exhausted.data.exhausted_at);
      expect(warning.data).toMatchObject({ period_start: '2026-11-01T00:00:00.000Z', period_end: '2026-12-01T00:00:00.000Z', per_task_limit: null });
      // Different events, each with its own webhook-id.
      expect(new Set(target.received.map((delivery) => delivery.headers['webhook-id'])).size).toBe(2);
      // Every replica shows the same marks, and the alerts' times.
      for (const gateway of gateways) {
        const budget = await budgetOf(gateway);
        expect(budget.warned_at).toBe(warning.data.warned_at);
        expect(budget.exhausted_at).toBe(exhausted.data.exhausted_at);
      }
      expect(upstreamTasks()).toBe(5);
    }, 60_000);

    it('retries an alert its events URL turned down from one replica, with the same webhook-id, and delivers it once', async () => {
      target = await receiver(1);
      const extra = { tenants: { acme: { budget: { amount: 2, currency: 'USD', period: 'month' }, events_url: target.url } } };
      const gateways = [await replicas.replica('replica-a', extra), await replicas.replica('replica-b', extra), await replicas.replica('replica-c', extra)];
      for (let i = 0; i < 4; i++) expect((await gateways[i % 3]!.create({ ...onKling3api, prompt: `warn ${i}` })).status).toBe(202);
      for (let i = 0; i < 120 && target.received.length < 2; i++) {
        await replicas.clock.advance(5_000);
        await Promise.all(gateways.map((gateway) => gateway.gateway.runOnce()));
      }
      await runAll(gateways, 20);
      expect(target.received.map((delivery) => JSON.parse(delivery.body).type)).toEqual(['budget.warning', 'budget.warning']);
      const [first, second] = target.received;
      expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
      expect(second!.body).toBe(first!.body);
      for (const delivery of target.received) expect(signedByTenant(delivery)).toBe(true);
    }, 60_000);

    it('leaves nothing behind for a refused create on any replica: no task, no upstream call, no usage, no Idempotency-Key', async () => {
      const gateways = await start();
      const [a, b, c] = gateways as [TestGateway, TestGateway, TestGateway];
      for (let i = 0; i < 5; i++) expect((await gateways[i % 3]!.create({ ...onKling3api, prompt: `fill ${i}` })).status).toBe(202);
      const before = upstreamTasks();
      const refused = await b.create({ ...onKling3api, prompt: 'one too many' }, { 'idempotency-key': 'over' });
      expect(refused.status).toBe(402);
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(refused.body).toMatchObject({
        type: 'https://kling-gateway.dev/problems/budget-exceeded',
        status: 402,
        budget: { tenant: 'acme', amount: 2, currency: 'USD', period: 'month', period_start: '2026-11-01T00:00:00.000Z', period_end: '2026-12-01T00:00:00.000Z' },
        spent: 0,
        reserved: 2,
        requested: 0.4,
      });
      await runAll(gateways, 3);
      expect(upstreamTasks()).toBe(before);
      for (const gateway of gateways) {
        expect((await gateway.request('GET', '/v1/videos')).body.data).toHaveLength(5);
        const usage = (await gateway.request('GET', '/v1/usage')).body.data;
        expect(usage).toEqual([expect.objectContaining({ tasks: 5 })]);
      }
      // The same key on another replica, with another body, is no 409: it was not kept.
      const again = await c.create({ ...onKling3api, prompt: 'something else' }, { 'idempotency-key': 'over' });
      expect(again.status).toBe(402);
      // The refusals are counted by the replica that refused them.
      expect(await metricsOf(b)).toMatch(/kling_gateway_budget_refusals_total\{tenant="acme"\} 1\b/);
      expect(await metricsOf(c)).toMatch(/kling_gateway_budget_refusals_total\{tenant="acme"\} 1\b/);
      expect(await metricsOf(a)).not.toMatch(/kling_gateway_budget_refusals_total\{tenant="acme"\} [1-9]/);
    }, 60_000);

    it('shows the same budget in usage and in the gauges of every replica, agreeing with the tasks', async () => {
      const gateways = await start();
      const ids: { id: string; on: TestGateway }[] = [];
      for (let i = 0; i < 3; i++) {
        const created = await gateways[i]!.create({ ...onKling3api, prompt: `task ${i}` });
        expect(created.status).toBe(202);
        ids.push({ id: created.body.id, on: gateways[i]! });
      }
      // One ends while the others still run: $0.40 spent, $0.80 reserved.
      const first = await ids[0]!.on.finish(ids[0]!.id);
      expect(first.status).toBe('succeeded');
      const budgets = await Promise.all(gateways.map(budgetOf));
      for (const budget of budgets) expect(budget).toEqual(budgets[0]);
      const reservedNow = budgets[0].reserved;
      const spentNow = budgets[0].spent;
      for (const gateway of gateways) {
        const metrics = await metricsOf(gateway);
        expect(metrics).toMatch(/kling_gateway_budget_amount\{[^}]*tenant="acme"[^}]*\} 2\b/);
        expect(metrics).toMatch(new RegExp(`kling_gateway_budget_spent\\{[^}]*tenant="acme"[^}]*\\} ${spentNow}\\b`));
        expect(metrics).toMatch(new RegExp(`kling_gateway_budget_reserved\\{[^}]*tenant="acme"[^}]*\\} ${reservedNow}\\b`));
      }
      for (const { id, on } of ids.slice(1)) expect((await on.finish(id)).status).toBe('succeeded');
      const tasks = await Promise.all(ids.map(({ id }) => gateways[2]!.get(id)));
      const charged = tasks.reduce((sum, task) => sum + task.body.cost.currency_amount, 0);
      for (const gateway of gateways) {
        expect(await budgetOf(gateway)).toMatchObject({ spent: Math.round(charged * 1e6) / 1e6, reserved: 0 });
        const usage = (await gateway.request('GET', '/v1/usage')).body.data;
        expect(usage).toEqual([expect.objectContaining({ tasks: 3, succeeded: 3, currency_amount: Math.round(charged * 1e6) / 1e6 })]);
        const metrics = await metricsOf(gateway);
        expect(metrics).toMatch(/kling_gateway_budget_reserved\{[^}]*tenant="acme"[^}]*\} 0\b/);
      }
      // The spend counters, added up over the replicas, agree with usage and the budget.
      expect(await summed(gateways, 'kling_gateway_currency_spent_total')).toBe(Math.round(charged * 1e6) / 1e6);
    }, 60_000);
  });

  describe('a daily budget', () => {
    const replicas = usePostgresReplicas({ tenants: { acme: { budget: { amount: 0.8, currency: 'USD', period: 'day' } } } });

    it('starts a new day at 00:00 UTC on every replica, leaving the old day its tasks', async () => {
      // The replicas' clock starts at 12:00 UTC; move it to 23:59 before they start.
      await replicas.clock.advance(Date.UTC(2026, 10, 22, 23, 59) - replicas.clock.now());
      const a = await replicas.replica('replica-a');
      const b = await replicas.replica('replica-b');
      const late = [await a.create(onKling3api), await b.create(onKling3api)];
      for (const answer of late) expect(answer.status).toBe(202);
      const refused = await b.create(onKling3api);
      expect(refused.status).toBe(402);
      expect(refused.body.detail).toMatch(/daily budget of 0\.8 USD/);
      await replicas.clock.advance(60_000);
      // 00:00 UTC on the 23rd: both replicas take creates against the new day.
      expect((await b.create(onKling3api)).status).toBe(202);
      expect((await a.create(onKling3api)).status).toBe(202);
      expect((await a.create(onKling3api)).status).toBe(402);
      for (const gateway of [a, b]) expect(await budgetOf(gateway)).toMatchObject({ period_key: '2026-11-23', spent: 0, reserved: 0.8 });
      for (const answer of late) await a.finish(answer.body.id);
      // Yesterday's tasks settled to yesterday: today's counters did not move.
      for (const gateway of [a, b]) expect(await budgetOf(gateway)).toMatchObject({ period_key: '2026-11-23', reserved: 0.8, spent: 0 });
      for (const gateway of [a, b]) {
        const metrics = await metricsOf(gateway);
        expect(metrics).toMatch(/kling_gateway_budget_reserved\{[^}]*tenant="acme"[^}]*\} 0\.8\b/);
        expect(metrics).toMatch(/kling_gateway_budget_spent\{[^}]*tenant="acme"[^}]*\} 0\b/);
      }
      // November 22nd's usage holds the two late tasks, settled at $0.40 each.
      const yesterday = (await b.request('GET', '/v1/usage?from=2026-11-22&to=2026-11-23')).body.data;
      expect(yesterday).toEqual([expect.objectContaining({ tasks: 2, succeeded: 2, currency_amount: 0.8 })]);
    }, 60_000);
  });

  describe('settling across replicas', () => {
    const replicas = usePostgresReplicas({ tenants: { acme: { budget: { amount: 10, currency: 'USD', period: 'month' } } } });

    it("settles a legacy task created on one replica and finished by another to the provider's figure", async () => {
      const a = await replicas.replica('replica-a');
      const b = await replicas.replica('replica-b');
      // Estimate 0.8 units/s × 5 s × $0.14 = $0.56; the simulator reports 3.5 units ($0.49).
      const created = await a.create({ ...onKling3api, routing: { providers: ['kling-legacy'] } });
      expect(created.status).toBe(202);
      expect(await budgetOf(b)).toMatchObject({ spent: 0, reserved: 0.56 });
      const done = await b.finish(created.body.id);
      expect(done.cost).toEqual({ credits: 3.5, estimated: false, currency_amount: 0.49, currency: 'USD' });
      for (const gateway of [a, b]) expect(await budgetOf(gateway)).toMatchObject({ spent: 0.49, reserved: 0, remaining: 9.51 });
    }, 60_000);

    it('releases the reservation of a queued task canceled on another replica, and of a task that failed before any provider took it', async () => {
      const a = await replicas.replica('replica-a', { providers: { kling3api: { max_in_flight: 1 } } });
      const b = await replicas.replica('replica-b', { providers: { kling3api: { max_in_flight: 1 } } });
      const running = await a.create(onKling3api);
      const waiting = await a.create(onKling3api);
      expect(waiting.body.status).toBe('queued');
      expect(await budgetOf(b)).toMatchObject({ reserved: 0.8 });
      expect((await b.request('POST', `/v1/videos/${waiting.body.id}/cancel`)).status).toBe(200);
      expect(await budgetOf(a)).toMatchObject({ spent: 0, reserved: 0.4 });
      await a.finish(running.body.id);
      replicas.simulators.get('kling3api')!.injectFault({ kind: 'server_error', status: 500 });
      const refusedUpstream = await b.create(onKling3api);
      expect(refusedUpstream.body.status).toBe('failed');
      for (const gateway of [a, b]) expect(await budgetOf(gateway)).toMatchObject({ spent: 0.4, reserved: 0 });
      const usage = (await b.request('GET', '/v1/usage')).body.data;
      expect(usage).toEqual([expect.objectContaining({ tasks: 3, succeeded: 1, canceled: 1, failed: 1, currency_amount: 0.4 })]);
    }, 60_000);

    it('settles at its deadline on another replica a task whose replica went away, to the charge kling3api reported at create', async () => {
      const slow = { tasks: { deadline_ms: 60_000 } };
      const a = await replicas.replica('replica-a', slow);
      const b = await replicas.replica('replica-b', slow);
      const created = await a.create(onKling3api);
      expect(created.status).toBe(202);
      // kling3api says it is still running, past the task's deadline.
      const simulator = replicas.simulators.get('kling3api')!;
      const running = { task_id: simulator.tasks[0]!.id, status: 'IN_PROGRESS' };
      simulator.injectFault({ on: 'status', status: 200, times: 1_000, body: { code: 200, message: 'success', data: running } });
      await a.close();
      await b.advanceUntil(async () => (await b.get(created.body.id)).body.status === "failed", 1_000, 120);
      expect((await b.get(created.body.id)).body).toMatchObject({ error: { code: 'timeout' }, cost: { credits: 400, currency_amount: 0.4 } });
      expect(await budgetOf(b)).toMatchObject({ spent: 0.4, reserved: 0 });
      const usage = (await b.request('GET', '/v1/usage')).body.data;
      expect(usage).toEqual([expect.objectContaining({ tasks: 1, failed: 1, currency_amount: 0.4 })]);
    }, 60_000);

    it('with failover_on_timeout, spends the at-risk estimate of a provider left unanswered besides the charge of the one that took the task', async () => {
      const failover = { routing: { failover_on_timeout: true } };
      const a = await replicas.replica('replica-a', failover);
      const b = await replicas.replica('replica-b', failover);
      // kling3api takes (and bills) the create, its answer is lost; Freepik then takes the task.
      replicas.simulators.get('kling3api')!.injectFault({ transport: 'drop_after_accept' });
      const created = await replicas.withClockRunning(a.create({ ...onKling3api, routing: { providers: ['kling3api', 'freepik'] } }));
      expect(created.status).toBe(202);
      const done = await b.finish(created.body.id);
      expect(done.status).toBe('succeeded');
      expect(done.provider).toBe('freepik');
      expect(done.cost.at_risk).toEqual([expect.objectContaining({ provider: 'kling3api', currency_amount: 0.4, estimated: true })]);
      // Freepik's $0.56 plus kling3api's possible $0.40.
      for (const gateway of [a, b]) expect(await budgetOf(gateway)).toMatchObject({ spent: 0.96, reserved: 0 });
      const usage = (await a.request('GET', '/v1/usage?group_by=provider')).body.data;
      const byProvider = Object.fromEntries(usage.map((row: { provider: string }) => [row.provider, row]));
      expect(byProvider.freepik).toMatchObject({ currency_amount: 0.56 });
      expect(byProvider.kling3api).toMatchObject({ currency_amount_at_risk: 0.4 });
      expect(await summed([a, b], 'kling_gateway_currency_spent_total')).toBe(0.56);
      expect(await summed([a, b], 'kling_gateway_currency_at_risk_total')).toBe(0.4);
    }, 60_000);
  });

  describe('failover_on_timeout with no provider taking the task', () => {
    const replicas = usePostgresReplicas({ tenants: { acme: { budget: { amount: 1, currency: 'USD', period: 'month' } } }, routing: { failover_on_timeout: true } });

    it('spends the estimate of the provider left unanswered, under that provider, and releases the rest', async () => {
      const a = await replicas.replica('replica-a');
      const b = await replicas.replica('replica-b');
      replicas.simulators.get('kling3api')!.injectFault({ transport: 'drop_after_accept' });
      replicas.simulators.get('freepik')!.injectFault({ kind: 'server_error', status: 500, times: 20 });
      const pair = { ...onKling3api, routing: { providers: ['kling3api', 'freepik'] } };
      // Reserves $0.40 + $0.56: each may be left unanswered and bill.
      const created = await replicas.withClockRunning(a.create(pair));
      expect(created.status).toBe(202);
      await b.advanceUntil(async () => (await b.get(created.body.id)).body.status === 'failed', 1_000, 120);
      const done = (await a.get(created.body.id)).body;
      expect(done.cost).toMatchObject({ currency_amount: 0.4, estimated: true });
      for (const gateway of [a, b]) expect(await budgetOf(gateway)).toMatchObject({ spent: 0.4, reserved: 0 });
      const usage = (await b.request('GET', '/v1/usage?group_by=provider')).body.data;
      expect(usage).toEqual([expect.objectContaining({ provider: 'kling3api', failed: 1, currency_amount: 0.4 })]);
      expect(await summed([a, b], 'kling_gateway_currency_spent_total')).toBe(0.4);
    }, 60_000);
  });

  describe("a kling3api charge above the estimate", () => {
    const replicas = usePostgresReplicas({ tenants: { acme: { budget: { amount: 1, currency: 'USD', period: 'month' } } } });

    /** kling3api's status answer for `taskId`: done, having consumed `credits`. */
    const succeededWith = (taskId: string, credits: number) => ({
      on: 'status' as const,
      status: 200,
      body: {
        code: 200,
        message: 'success',
        data: { task_id: taskId, status: 'SUCCESS', consumed_credits: credits, response: ['https://cdn.example.com/video.mp4'], error_message: null, type: 'text-to-video' },
      },
    });

    it("settles to consumed_credits, alerts budget.exhausted once (trigger settled) and refuses further creates on every replica", async () => {
      const target = await receiver();
      const extra = { tenants: { acme: { budget: { amount: 1, currency: 'USD', period: 'month' }, events_url: target.url } } };
      const a = await replicas.replica('replica-a', extra);
      const b = await replicas.replica('replica-b', extra);
      const simulator = replicas.simulators.get('kling3api')!;
      // Each is charged 500 credits ($0.50) where $0.40 was estimated (one at a time: a status
      // answer of the test's own is met by the next poll, whichever task it is for).
      const first = await a.create(onKling3api);
      expect(first.status).toBe(202);
      expect(await budgetOf(b)).toMatchObject({ spent: 0, reserved: 0.4 });
      simulator.injectFault(succeededWith(simulator.tasks[0]!.id, 500) as never);
      expect((await b.finish(first.body.id)).cost).toEqual({ credits: 500, estimated: false, currency_amount: 0.5, currency: 'USD' });
      expect(await budgetOf(a)).toMatchObject({ spent: 0.5, reserved: 0 });
      const second = await b.create(onKling3api); // 0.5 + 0.4: the warning
      expect(second.status).toBe(202);
      simulator.injectFault(succeededWith(simulator.tasks[1]!.id, 500) as never);
      expect((await a.finish(second.body.id)).cost).toEqual({ credits: 500, estimated: false, currency_amount: 0.5, currency: 'USD' });
      for (const gateway of [a, b]) expect(await budgetOf(gateway)).toMatchObject({ spent: 1, reserved: 0, remaining: 0 });
      for (const gateway of [a, b]) expect((await gateway.create(onKling3api)).status).toBe(402);
      for (let i = 0; i < 5; i++) {
        await replicas.clock.advance(1_000);
        await Promise.all([a.gateway.runOnce(), b.gateway.runOnce()]);
      }
      const events = target.received.map((delivery) => JSON.parse(delivery.body));
      expect(events.map((event) => [event.type, event.data.trigger])).toEqual([
        ['budget.warning', 'reserved'],
        ['budget.exhausted', 'settled'],
      ]);
      expect(events[1].data).toMatchObject({ spent: 1, reserved: 0, remaining: 0, used_ratio: 1 });
      expect(simulator.tasks).toHaveLength(2);
    }, 60_000);
  });

  describe('an Idempotency-Key across replicas', () => {
    const replicas = usePostgresReplicas({ tenants: { acme: { budget: { amount: 0.8, currency: 'USD', period: 'month' } } } });

    it('reserves once for one create sent to two replicas at once, and replays it once the budget is full', async () => {
      const a = await replicas.replica('replica-a');
      const b = await replicas.replica('replica-b');
      const body = { ...onKling3api, prompt: 'sent twice' };
      const [one, two] = await replicas.withClockRunning(Promise.all([a.create(body, { 'idempotency-key': 'twice' }), b.create(body, { 'idempotency-key': 'twice' })]));
      expect([one.status, two.status].every((status) => status === 202 || status === 200)).toBe(true);
      expect(one.body.id).toBe(two.body.id);
      expect(await budgetOf(a)).toMatchObject({ reserved: 0.4 });
      expect((await b.create({ ...onKling3api, prompt: 'fills it' })).status).toBe(202);
      expect((await a.create({ ...onKling3api, prompt: 'refused' })).status).toBe(402);
      // The client sends its first create again: it is answered with its task, not refused.
      for (const gateway of [a, b]) {
        const again = await gateway.create(body, { 'idempotency-key': 'twice' });
        expect(again.status).not.toBe(402);
        expect(again.body.id).toBe(one.body.id);
      }
      expect(await budgetOf(b)).toMatchObject({ reserved: 0.8 });
      expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(2);
    }, 60_000);
  });
});
