/**
 * Tenant budgets over real HTTP against the simulators: money reserved at create, narrowed to
 * the provider that takes the task, settled to the final charge (or released) when it ends;
 * creates that would pass the budget refused with 402 before anything is sent; alerts at 80 %
 * and 100 % delivered once per period to the tenant's events URL.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { ConfigError } from '../../src/config/config.js';
import { ProblemDetails } from '../../src/core/model/canonical.js';
import { BudgetEvent, UsageBudget } from '../../src/http/api-schemas.js';
import { GatewayDeploys, TENANT_WEBHOOK_SECRET, startTestGateway, type TestGateway } from '../support/harness.js';

interface Received {
  headers: Record<string, string>;
  body: string;
}

async function receiver(status = 200): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/account-events`, received, server };
}

let gw: TestGateway | undefined;
let server: Server | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

function budgeted(budget: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { tenants: { acme: { budget, ...extra } } };
}

/** 5 s pro with audio: Freepik estimates $0.56 (11.2 credits/s × $0.01), kling3api $0.40 (80/s × $0.001). */
const video = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };
const onKling3api = { ...video, routing: { providers: ['kling3api'] } };

async function budgetOf(test: TestGateway) {
  const usage = await test.request('GET', '/v1/usage');
  expect(usage.status).toBe(200);
  return usage.body.budgets[0];
}

describe('budget reservations', () => {
  it('reserves the estimate at create and settles it to the final charge', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month' }) });
    const created = await gw.create(video);
    expect(created.status).toBe(202);
    expect(created.body.provider).toBe('freepik');
    expect(await budgetOf(gw)).toMatchObject({
      tenant: 'acme',
      amount: 10,
      currency: 'USD',
      period: 'month',
      period_key: '2026-11',
      period_start: '2026-11-01T00:00:00.000Z',
      period_end: '2026-12-01T00:00:00.000Z',
      spent: 0,
      reserved: 0.56,
      remaining: 9.44,
    });
    await gw.finish(created.body.id);
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.56, reserved: 0, remaining: 9.44 });
  });

  it('reserves the most any provider of the plan may cost, and narrows it to the provider that takes the task', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month' }) });
    gw.simulator('freepik').injectFault({ kind: 'insufficient_credits', status: 402 });
    const created = await gw.create(video);
    // Freepik ($0.56) refused it; kling3api ($0.40) took it: only its figure stays reserved.
    expect(created.body.provider).toBe('kling3api');
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 0.4 });
    const done = await gw.finish(created.body.id);
    expect(done.cost).toEqual({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD' });
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.4, reserved: 0 });
  });

  it("narrows the reserve to the first provider's figure when it takes the task into its own queue (Freepik CREATED), and files the task under it in usage", async () => {
    // Legacy priced dearer than Freepik: 1 unit/s × $0.14 = $0.70 for 5 s, against Freepik's $0.56.
    const dearLegacy = { providers: { 'kling-legacy': { pricing: { rules: [{ model: 'kling-v3', credits_per_second: 1 }] } } } };
    gw = await startTestGateway({ config: { ...budgeted({ amount: 10, currency: 'USD', period: 'month' }), ...dearLegacy } });
    const created = await gw.create({ ...video, routing: { providers: ['freepik', 'kling-legacy'] } });
    // Freepik answered the create CREATED: it holds the task, waiting in its own queue.
    expect(created.body).toMatchObject({ status: 'queued', provider: 'freepik', provider_status: 'CREATED' });
    expect(created.body.cost).toMatchObject({ credits: 56, currency_amount: 0.56, estimated: true });
    // Only Freepik can bill it now: its figure is what stays reserved, not the legacy API's $0.70.
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 0.56, remaining: 9.44 });
    const usage = await gw.request('GET', '/v1/usage?group_by=provider,account');
    expect(usage.body.data).toEqual([expect.objectContaining({ provider: 'freepik', account: 'default', tasks: 1, in_progress: 1 })]);
    await gw.finish(created.body.id);
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.56, reserved: 0 });
  });

  it("keeps the estimate reserved while the legacy API reports a charge of 0 for a running task, and settles to the charge it reports at the end", async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month' }) });
    // The shipped placeholder: 0.8 units/s × $0.14 = $0.56 for 5 s; the simulator charges 3.5 units ($0.49).
    const created = await gw.create({ ...video, routing: { providers: ['kling-legacy'] } });
    expect(created.body.provider).toBe('kling-legacy');
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 0.56 });

    const simulator = gw.simulator('kling-legacy');
    const running = { task_id: simulator.tasks[0]!.id, task_status: 'processing', task_status_msg: '', final_unit_deduction: '0' };
    simulator.injectFault({ on: 'status', status: 200, body: { code: 0, message: 'SUCCEED', request_id: 'req-running', data: running } });
    // Until the gateway's first look at the task, which that answer meets.
    await gw.advanceUntil(async () => simulator.requests.some((request) => request.method === 'GET'));
    expect((await gw.get(created.body.id)).body).toMatchObject({ status: 'processing', provider_status: 'processing' });
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 0.56 });

    const done = await gw.finish(created.body.id);
    expect(done.cost).toEqual({ credits: 3.5, estimated: false, currency_amount: 0.49, currency: 'USD' });
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.49, reserved: 0 });
  });

  it('with failover_on_timeout, reserves what every provider of the plan may bill, and refuses a create that does not fit', async () => {
    // Freepik $0.56 + kling3api $0.40: each may be left unanswered and bill, the next then taking it.
    const failover = { routing: { failover_on_timeout: true } };
    const pair = { ...video, routing: { providers: ['freepik', 'kling3api'] } };
    gw = await startTestGateway({ config: { ...budgeted({ amount: 0.9, currency: 'USD', period: 'month' }), ...failover } });
    const quote = await gw.request('POST', '/v1/videos/quote', pair);
    expect(quote.body.order).toEqual([]);
    expect(quote.body.providers[0].reasons.join(' ')).toMatch(/would reserve 0\.96 USD, but tenant acme has 0\.9 USD left/);
    const refused = await gw.create(pair);
    expect([refused.status, refused.body.requested]).toEqual([402, 0.96]);
    expect(gw.simulator('freepik').tasks.length + gw.simulator('kling3api').tasks.length).toBe(0);
    await gw.close();
    // Without it a task is billed by one provider at most: the most of them fits.
    gw = await startTestGateway({ config: budgeted({ amount: 0.9, currency: 'USD', period: 'month' }) });
    expect((await gw.create(pair)).status).toBe(202);
    expect(await budgetOf(gw)).toMatchObject({ reserved: 0.56 });
  });

  it('releases the reservation of a task no provider accepted', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month' }) });
    gw.simulator('freepik').injectFault({ kind: 'insufficient_credits', status: 402 });
    gw.simulator('kling3api').injectFault({ kind: 'server_error', status: 500 });
    const created = await gw.create({ ...video, routing: { providers: ['freepik', 'kling3api'] } });
    expect(created.body.status).toBe('failed');
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 0 });
  });

  it('releases the reservation of a queued task that is canceled, by the caller or by cancel_after', async () => {
    gw = await startTestGateway({
      config: { ...budgeted({ amount: 10, currency: 'USD', period: 'month' }), providers: { kling3api: { max_in_flight: 1 } } },
    });
    const running = await gw.create(onKling3api);
    const waiting = await gw.create(onKling3api);
    const timed = await gw.create({ ...onKling3api, cancel_after: 30 });
    expect([waiting.body.status, timed.body.status]).toEqual(['queued', 'queued']);
    expect(await budgetOf(gw)).toMatchObject({ reserved: 1.2 });
    expect((await gw.request('POST', `/v1/videos/${waiting.body.id}/cancel`)).status).toBe(200);
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 0.8 });
    await gw.advance(31_000);
    expect((await gw.get(timed.body.id)).body.status).toBe('canceled');
    await gw.finish(running.body.id);
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.4, reserved: 0 });
    const usage = (await gw.request('GET', '/v1/usage')).body.data[0];
    expect(usage).toMatchObject({ tasks: 3, succeeded: 1, canceled: 2, currency_amount: 0.4 });
  });

  it('charges an accepted task that then failed what it was charged (the estimate when the provider reports nothing)', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month' }) });
    gw.simulator('freepik').setOutcome('fail');
    const created = await gw.create(video);
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('failed');
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.56, reserved: 0 });
  });

  it('charges the estimate of a task whose create went unanswered: the provider may have made and billed it', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month' }) });
    // kling3api accepts (and bills) the create, then the connection drops before its answer;
    // kling3api documents no way to find the task, so the task fails without being sent again.
    gw.simulator('kling3api').injectFault({ transport: 'drop_after_accept' });
    const created = await gw.create(onKling3api);
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('failed');
    expect(done.attempts.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(['ambiguous']);
    expect(gw.simulator('kling3api').tasks).toHaveLength(1);
    expect(done.cost).toEqual({ credits: 400, estimated: true, currency_amount: 0.4, currency: 'USD' });
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.4, reserved: 0 });
    const usage = (await gw.request('GET', '/v1/usage')).body.data[0];
    expect(usage).toMatchObject({ failed: 1, credits: 400, currency_amount: 0.4, currency_amount_estimated: 0.4 });

    // A create every provider certainly refused still costs nothing.
    gw.simulator('kling3api').injectFault({ kind: 'server_error', status: 500 });
    const refused = await gw.create(onKling3api);
    expect(refused.body.status).toBe('failed');
    expect(refused.body.cost).toEqual({ credits: 0, estimated: false, currency_amount: 0, currency: 'USD' });
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.4, reserved: 0 });
  });

  it('refuses a create that would pass the budget with 402, before anything is sent', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 1, currency: 'USD', period: 'month' }) });
    const first = await gw.create(video);
    expect(first.status).toBe(202);
    const upstreamBefore = gw.simulator('freepik').tasks.length + gw.simulator('kling3api').tasks.length;
    const refused = await gw.create(video, { 'idempotency-key': 'over-budget' });
    expect(refused.status).toBe(402);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.body).toMatchObject({
      type: 'https://kling-gateway.dev/problems/budget-exceeded',
      title: 'Budget exceeded',
      status: 402,
      budget: {
        tenant: 'acme',
        amount: 1,
        currency: 'USD',
        period: 'month',
        period_start: '2026-11-01T00:00:00.000Z',
        period_end: '2026-12-01T00:00:00.000Z',
      },
      spent: 0,
      reserved: 0.56,
      requested: 0.56,
    });
    expect(refused.body.detail).toMatch(/has 0\.44 USD left of its monthly budget of 1 USD/);
    expect(ProblemDetails.strict().safeParse(refused.body).error).toBeUndefined();
    expect(gw.simulator('freepik').tasks.length + gw.simulator('kling3api').tasks.length).toBe(upstreamBefore);
    expect((await gw.request('GET', '/v1/videos')).body.data).toHaveLength(1);
    // A cheaper request still fits; the refused request's Idempotency-Key was not kept (a
    // different body with it is not a 409).
    const cheaper = await gw.create(onKling3api, { 'idempotency-key': 'over-budget' });
    expect(cheaper.status).toBe(202);
    expect(await budgetOf(gw)).toMatchObject({ reserved: 0.96 });
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toMatch(/kling_gateway_budget_refusals_total\{tenant="acme"\} 1/);
  });

  it('quotes a request the budget cannot take as the create answers it: no provider, and why', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 1, currency: 'USD', period: 'month' }) });
    expect((await gw.create(video)).status).toBe(202);
    const quote = await gw.request('POST', '/v1/videos/quote', video);
    expect(quote.status).toBe(200);
    expect(quote.body.order).toEqual([]);
    for (const provider of quote.body.providers) {
      expect(provider).toMatchObject({ eligible: false, order: null });
      expect(provider.reasons.join(' ')).toMatch(/would reserve 0\.56 USD, but tenant acme has 0\.44 USD left of its monthly budget of 1 USD/);
    }
    expect((await gw.create(video)).status).toBe(402);
    // A request that still fits is quoted and created alike.
    const cheaper = await gw.request('POST', '/v1/videos/quote', onKling3api);
    expect(cheaper.body.order).toEqual(['kling3api']);
    expect((await gw.create(onKling3api)).body.provider).toBe('kling3api');
  });

  it('quotes a request that takes exactly what is left of the budget as eligible, as the create takes it', async () => {
    // kling3api's 5 s pro with audio: 400 credits × $0.001 = $0.40, the whole budget.
    gw = await startTestGateway({ config: budgeted({ amount: 0.4, currency: 'USD', period: 'month' }) });
    const quote = await gw.request('POST', '/v1/videos/quote', onKling3api);
    expect(quote.body.order).toEqual(['kling3api']);
    expect(quote.body.providers.find((p: { provider: string }) => p.provider === 'kling3api')).toMatchObject({ eligible: true, reasons: [] });
    const created = await gw.create(onKling3api);
    expect(created.status).toBe(202);
    expect(await budgetOf(gw)).toMatchObject({ reserved: 0.4, remaining: 0 });
  });

  it('gives a provider that does not serve the request only that reason, not a budget one', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month' }) });
    const quote = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v2-6', prompt: 'a lighthouse in a storm', duration: 5 });
    const freepik = quote.body.providers.find((p: { provider: string }) => p.provider === 'freepik');
    expect(freepik.reasons).toEqual([expect.stringMatching(/^does not serve text-to-video with kling-v2-6/)]);
    expect(quote.body.order).toEqual(['kling-legacy']);
  });

  it('settles to what the provider reports charging even past the budget, and then shows nothing remaining, not a negative amount', async () => {
    // Estimated at 40 credits/s (200 credits, $0.20): the simulator reports the seed's 80/s (400 credits, $0.40).
    const underPriced = { providers: { kling3api: { pricing: { rules: [{ model: 'kling-v3', credits_per_second: 40 }] } } } };
    gw = await startTestGateway({ config: { ...budgeted({ amount: 0.3, currency: 'USD', period: 'month' }), ...underPriced } });
    const created = await gw.create(onKling3api);
    expect(created.status).toBe(202);
    await gw.finish(created.body.id);
    expect((await gw.get(created.body.id)).body.cost).toMatchObject({ credits: 400, estimated: false, currency_amount: 0.4 });
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.4, reserved: 0, remaining: 0, used_ratio: 1.3333 });
    const refused = await gw.create(onKling3api);
    expect(refused.status).toBe(402);
    expect(refused.body.detail).toMatch(/but tenant acme has 0 USD left of its monthly budget of 0\.3 USD/);
  });

  it('leaves other tenants alone', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 0.5, currency: 'USD', period: 'month' }) });
    expect((await gw.create(video)).status).toBe(402);
    const other = await gw.request('POST', '/v1/videos', video, {}, 'other-secret-key');
    expect(other.status).toBe(202);
    expect((await gw.request('GET', '/v1/usage', undefined, {}, 'other-secret-key')).body.budgets).toEqual([]);
  });

  it('passes over providers above the per-task limit, and says so in the quote', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month', per_task_limit: 0.5 }) });
    const quote = await gw.request('POST', '/v1/videos/quote', video);
    const freepik = quote.body.providers.find((p: { provider: string }) => p.provider === 'freepik');
    expect(freepik.eligible).toBe(false);
    expect(freepik.reasons).toContain("estimated 0.56 USD exceeds tenant acme's per-task limit of 0.5 USD");
    // The legacy API's shipped placeholder: 0.8 units/s × $0.14 = $0.56 too.
    const legacy = quote.body.providers.find((p: { provider: string }) => p.provider === 'kling-legacy');
    expect(legacy.reasons).toContain("estimated 0.56 USD exceeds tenant acme's per-task limit of 0.5 USD");
    const created = await gw.create(video);
    expect(created.body.provider).toBe('kling3api');
    const tooDear = await gw.create({ ...video, duration: 10 });
    expect(tooDear.status).toBe(422);
    // A tenant without a budget is not limited.
    expect((await gw.request('POST', '/v1/videos', { ...video, duration: 10 }, {}, 'other-secret-key')).body.provider).toBe('freepik');
  });

  it('reserves once for a create sent again with its Idempotency-Key, one after the other or both at once', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month' }) });
    const first = await gw.create(video, { 'idempotency-key': 'once' });
    const again = await gw.create(video, { 'idempotency-key': 'once' });
    expect(again.body.id).toBe(first.body.id);
    expect(await budgetOf(gw)).toMatchObject({ reserved: 0.56 });
    const [left, right] = await Promise.all([gw.create(video, { 'idempotency-key': 'twice' }), gw.create(video, { 'idempotency-key': 'twice' })]);
    expect(right.body.id ?? left.body.id).toBe(left.body.id ?? right.body.id);
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 1.12 });
    expect(gw.simulator('freepik').tasks).toHaveLength(2);
  });

  it('settles a task once across a restart between its acceptance and its end', async () => {
    const deploys = await GatewayDeploys.start();
    try {
      const config = { database: deploys.database, ...budgeted({ amount: 10, currency: 'USD', period: 'month' }) };
      const first = await deploys.deploy(config);
      const created = await first.create(onKling3api);
      expect(await budgetOf(first)).toMatchObject({ spent: 0, reserved: 0.4 });
      await first.close();
      gw = await deploys.deploy(config);
      expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 0.4 });
      expect((await gw.finish(created.body.id)).cost).toEqual({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD' });
      expect(await budgetOf(gw)).toMatchObject({ spent: 0.4, reserved: 0 });
    } finally {
      await gw?.close();
      gw = undefined;
      await deploys.close();
    }
  });

  it('settles a legacy task found by its external_task_id after its create went unanswered to the units the provider reports', async () => {
    gw = await startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'month' }) });
    gw.simulator('kling-legacy').injectFault({ transport: 'drop_after_accept' });
    // kling-v1 pro, 5 s: the placeholder's 0.7 units a second, $0.49.
    const created = await gw.create({ model: 'kling-v1', prompt: 'an old film look', duration: 5 });
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'accepted', recovered_by: 'external_id' })]);
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 0.49 });
    const done = await gw.finish(created.body.id);
    expect(done.cost).toEqual({ credits: 3.5, estimated: false, currency_amount: 0.49, currency: 'USD' });
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.49, reserved: 0 });
    expect((await gw.request('GET', '/v1/usage')).body.data).toEqual([expect.objectContaining({ succeeded: 1, credits_reported: 3.5, tasks_reported: 1 })]);
  });

  it('releases the whole reservation of a task a provider refused that then ends while queued for the next one, canceled or at its deadline', async () => {
    gw = await startTestGateway({
      config: {
        ...budgeted({ amount: 10, currency: 'USD', period: 'month' }),
        tasks: { deadline_ms: 60_000 },
        sandbox: { processing_ms: 600_000 },
        providers: { kling3api: { max_in_flight: 1 } },
      },
    });
    const running = await gw.create(onKling3api);
    gw.simulator('freepik').injectFault({ kind: 'server_error', status: 500, times: 10 });
    const pair = { ...video, routing: { providers: ['freepik', 'kling3api'] } };
    const canceled = await gw.create(pair);
    const expired = await gw.create(pair);
    expect([canceled.body.status, expired.body.status]).toEqual(['queued', 'queued']);
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 1.52 });
    const cancel = await gw.request('POST', `/v1/videos/${canceled.body.id}/cancel`);
    expect(cancel.body).toMatchObject({ status: 'canceled', cost: { credits: 0, estimated: false, currency_amount: 0 } });
    expect(await budgetOf(gw)).toMatchObject({ spent: 0, reserved: 0.96 });
    await gw.advanceUntil(async () => (await gw!.get(expired.body.id)).body.status === 'failed', 1_000, 90);
    expect((await gw.get(expired.body.id)).body).toMatchObject({ error: { code: 'timeout' }, cost: { credits: 0, estimated: false, currency_amount: 0 } });
    expect((await gw.get(running.body.id)).body.status).toBe('failed');
    // Only the task kling3api took is charged: its create's 400 credits.
    expect(await budgetOf(gw)).toMatchObject({ spent: 0.4, reserved: 0 });
  });

  it('charges each UTC day to its own period', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 23, 59, 0));
    gw = await startTestGateway({ clock, config: budgeted({ amount: 0.6, currency: 'USD', period: 'day' }) });
    const late = await gw.create(video);
    expect(late.status).toBe(202);
    const refused = await gw.create(video);
    expect(refused.status).toBe(402);
    expect(refused.body.detail).toMatch(/of its daily budget of 0\.6 USD/);
    await gw.advance(60_000);
    // 00:00 UTC: a new day with a fresh budget, while yesterday's task stays charged to yesterday.
    const next = await gw.create(video);
    expect(next.status).toBe(202);
    // The period is the UTC calendar day, from its midnight to the next.
    expect(await budgetOf(gw)).toMatchObject({
      period_key: '2026-11-23',
      period_start: '2026-11-23T00:00:00.000Z',
      period_end: '2026-11-24T00:00:00.000Z',
      reserved: 0.56,
      spent: 0,
    });
    await gw.finish(late.body.id);
    await gw.finish(next.body.id);
    expect(await budgetOf(gw)).toMatchObject({ period_key: '2026-11-23', spent: 0.56, reserved: 0 });
  });

  it('shows the budget of the current period whatever window usage is asked for, naming that period, as its document says', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 23, 59, 0));
    gw = await startTestGateway({ clock, config: budgeted({ amount: 10, currency: 'USD', period: 'day' }) });
    await gw.finish((await gw.create(video)).body.id);
    await gw.advance(60_000);
    // Yesterday's usage: its task, and today's budget, which says which period it is.
    const yesterday = await gw.request('GET', '/v1/usage?from=2026-11-22&to=2026-11-23');
    expect(yesterday.body.data).toEqual([expect.objectContaining({ succeeded: 1, currency_amount: 0.56 })]);
    expect(yesterday.body.budgets).toEqual([
      expect.objectContaining({ period_key: '2026-11-23', period_start: '2026-11-23T00:00:00.000Z', spent: 0, reserved: 0 }),
    ]);
    const document = (await gw.request('GET', '/openapi.json', undefined, {}, null)).body;
    const described = document.components.schemas.UsageReport.properties.budgets.description;
    expect(described).toMatch(/current period/);
    expect(described).toMatch(/whatever `from` and `to`/);
    expect(described).toMatch(/`period_key`/);
  });
});

describe('budget alerts', () => {
  it('sends budget.warning at 80 % and budget.exhausted at 100 %, signed, once per period', async () => {
    const target = await receiver();
    server = target.server;
    // Real time: the receiver checks signature timestamps against its own clock.
    const clock = new ManualClock(Date.now());
    gw = await startTestGateway({ clock, config: budgeted({ amount: 1, currency: 'USD', period: 'month' }, { events_url: target.url }) });
    await gw.create(onKling3api); // 40 %
    await gw.advance(100);
    expect(target.received).toHaveLength(0);
    await gw.create(onKling3api); // 80 %: the warning
    await gw.advanceUntil(async () => target.received.length >= 1, 100);
    await gw.create(onKling3api); // 120 % would pass it: refused, and the budget is exhausted
    await gw.create(onKling3api); // refused again: no second alert
    await gw.advanceUntil(async () => target.received.length >= 2, 100);
    await gw.advance(10_000);
    expect(target.received).toHaveLength(2);

    const verifier = new Webhook(TENANT_WEBHOOK_SECRET);
    const [warning, exhausted] = target.received.map((delivery) => verifier.verify(delivery.body, delivery.headers) as any);
    expect(warning).toMatchObject({
      type: 'budget.warning',
      data: { object: 'budget', tenant: 'acme', threshold_percent: 80, trigger: 'reserved', amount: 1, currency: 'USD', spent: 0, reserved: 0.8 },
    });
    expect(warning.data.warned_at).toEqual(expect.any(String));
    expect(exhausted).toMatchObject({
      type: 'budget.exhausted',
      data: { tenant: 'acme', threshold_percent: 100, trigger: 'refused', spent: 0, reserved: 0.8 },
    });
    for (const event of [warning, exhausted]) expect(BudgetEvent.safeParse(event).error).toBeUndefined();
    // Each is what the document says of its own webhook, and not what it says of the other.
    const document = (await gw.request('GET', '/openapi.json', undefined, {}, null)).body as {
      webhooks: Record<string, { post: { requestBody: { content: { 'application/json': { schema: object } } } } }>;
    };
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const documented = (type: string) => ajv.compile(document.webhooks[type]!.post.requestBody.content['application/json'].schema);
    const [asWarning, asExhausted] = [documented('budget.warning'), documented('budget.exhausted')];
    expect([asWarning(warning), asExhausted(warning), asExhausted(exhausted), asWarning(exhausted)]).toEqual([true, false, true, false]);
    const usage = await budgetOf(gw);
    expect(UsageBudget.strict().safeParse(usage).error).toBeUndefined();
    expect(usage.warned_at).toBe(warning.data.warned_at);
    expect(usage.exhausted_at).toEqual(expect.any(String));
  });

  it('signs an alert with every secret of a tenant rotating its own, as task events are', async () => {
    const target = await receiver();
    server = target.server;
    const next = `whsec_${Buffer.from('acme next signing key').toString('base64')}`;
    gw = await startTestGateway({
      clock: new ManualClock(Date.now()),
      config: budgeted({ amount: 1, currency: 'USD', period: 'month' }, { events_url: target.url, webhook_secret: [next, TENANT_WEBHOOK_SECRET] }),
    });
    await gw.create(onKling3api);
    await gw.create(onKling3api); // 80 %: the warning
    await gw.advanceUntil(async () => target.received.length >= 1, 100);
    const [alert] = target.received;
    for (const secret of [next, TENANT_WEBHOOK_SECRET]) expect(new Webhook(secret).verify(alert!.body, alert!.headers)).toMatchObject({ type: 'budget.warning' });
  });

  it('ends an alert its events_url answers 410 Gone at once, and still sends the next one there (the URL is the tenant\'s, not one task\'s)', async () => {
    const target = await receiver(410);
    server = target.server;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: budgeted({ amount: 1, currency: 'USD', period: 'month' }, { events_url: target.url }) });
    await gw.create(onKling3api);
    await gw.create(onKling3api); // 80 %: the warning
    await gw.advanceUntil(async () => target.received.length >= 1, 100);
    await gw.create(onKling3api); // refused: the budget is exhausted
    await gw.advanceUntil(async () => target.received.length >= 2, 100);
    for (let i = 0; i < 10; i++) await gw.advance(60_000);
    // Each alert once: a 410 is not retried.
    expect(target.received.map((delivery) => JSON.parse(delivery.body).type)).toEqual(['budget.warning', 'budget.exhausted']);
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    for (const type of ['budget.warning', 'budget.exhausted']) {
      expect(metrics).toContain(`kling_gateway_webhook_deliveries_total{event_type="${type}",outcome="gone"} 1`);
    }
    expect(metrics).not.toMatch(/webhook_deliveries_total\{[^}]*outcome="(retrying|not_sent)"\}/);
  });

  it('starts every period afresh: the alerts go out again next month', async () => {
    const target = await receiver();
    server = target.server;
    const clock = new ManualClock(Date.UTC(2026, 10, 30, 23, 0));
    gw = await startTestGateway({ clock, config: budgeted({ amount: 1, currency: 'USD', period: 'month' }, { events_url: target.url }) });
    await gw.create(onKling3api);
    await gw.create(onKling3api);
    await gw.advanceUntil(async () => target.received.length >= 1, 100);
    // December 1st, 00:00 UTC: November's tasks stay charged to November.
    await gw.advance(3600_000);
    for (let i = 0; i < 2; i++) expect((await gw.create(onKling3api)).status).toBe(202);
    expect((await gw.create(onKling3api)).status).toBe(402);
    await gw.advanceUntil(async () => target.received.length >= 3, 100);
    const events = target.received.map((delivery) => JSON.parse(delivery.body));
    expect(events.map((event) => [event.type, event.data.period_key, event.data.trigger])).toEqual([
      ['budget.warning', '2026-11', 'reserved'],
      ['budget.warning', '2026-12', 'reserved'],
      ['budget.exhausted', '2026-12', 'refused'],
    ]);
  });
});

describe('budget configuration', () => {
  it('refuses a budget in another currency than a provider it could use', async () => {
    await expect(
      startTestGateway({ config: budgeted({ amount: 10, currency: 'EUR', period: 'month' }) }),
    ).rejects.toThrow(ConfigError);
    await expect(startTestGateway({ config: budgeted({ amount: 10, currency: 'EUR', period: 'month' }) })).rejects.toThrow(
      /tenants\.acme\.budget\.currency: EUR, but provider freepik prices in USD; budgets are not converted/,
    );
  });

  it('refuses an events URL without a webhook secret to sign with, and a bad period', async () => {
    // Live (an upstream key is set): no shipped sandbox secret signs for the tenant.
    const live = { providers: { freepik: { api_key: 'fpk-live-123456', base_url: 'http://127.0.0.1:9' } } };
    await expect(startTestGateway({ config: { ...live, tenants: { other: { events_url: 'https://example.com/events' } } } })).rejects.toThrow(
      /tenants\.other\.events_url: needs tenants\.other\.webhook_secret/,
    );
    await expect(startTestGateway({ config: budgeted({ amount: 10, currency: 'USD', period: 'week' }) })).rejects.toThrow(
      /tenants\.acme\.budget\.period/,
    );
    await expect(startTestGateway({ config: budgeted({ amount: -1, currency: 'USD', period: 'day' }) })).rejects.toThrow(
      /tenants\.acme\.budget\.amount/,
    );
  });
});
