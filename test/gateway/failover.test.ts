import { afterEach, describe, expect, it } from 'vitest';
import { heldCall } from '../support/held-call.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';
import { silentServer } from '../support/silent-server.js';

const postgres = await postgresAvailable();

/** Served by Freepik (priority 1) and kling3api (priority 2); not by the legacy API. */
const request = { model: 'kling-v3', prompt: 'a paper boat on a rainy street', duration: 5 };

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

function upstreamTasks(gateway: TestGateway) {
  return Object.fromEntries([...gateway.simulators].map(([id, simulator]) => [id, simulator.tasks.length]));
}

function createCalls(gateway: TestGateway, id: string) {
  return gateway.simulator(id).requests.filter((r) => r.method === 'POST').length;
}

describe('failover on create', () => {
  it('moves on when the first choice answers 503, and the task succeeds elsewhere', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503 });
    const created = await gw.create(request);
    expect(created.status).toBe(202);
    expect(created.body.provider).toBe('kling3api');
    expect(created.body.attempts).toEqual([
      expect.objectContaining({
        provider: 'freepik',
        outcome: 'failed',
        http_status: 503,
        error_code: 'provider_error',
        provider_code: 'unavailable',
      }),
      expect.objectContaining({ provider: 'kling3api', outcome: 'accepted' }),
    ]);
    expect(upstreamTasks(gw)).toEqual({ freepik: 0, kling3api: 1, 'kling-legacy': 0 });
    expect((await gw.finish(created.body.id)).status).toBe('succeeded');
  });

  it('records the HTTP status and latency of the answer that accepted the task, as of every other attempt', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503 });
    const created = await gw.create(request);
    expect(created.body.attempts).toEqual([
      expect.objectContaining({ provider: 'freepik', outcome: 'failed', http_status: 503, latency_ms: expect.any(Number) }),
      expect.objectContaining({ provider: 'kling3api', outcome: 'accepted', http_status: 200, error_code: null, latency_ms: expect.any(Number) }),
    ]);
    const legacy = await gw.create({ model: 'kling-v1', prompt: 'an old film look' });
    expect(legacy.body.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'accepted', http_status: 200 })]);
  });

  it('moves on when the first choice refuses connections', async () => {
    gw = await startTestGateway({ endpointOverrides: { freepik: { baseUrl: 'http://127.0.0.1:1' } } });
    const created = await gw.create(request);
    expect(created.body.provider).toBe('kling3api');
    expect(created.body.attempts[0]).toMatchObject({ provider: 'freepik', outcome: 'failed', error_code: 'provider_error' });
    expect(created.body.attempts[0].message).toMatch(/refused/);
  });

  it('moves on when the first choice cannot be connected to in time: nothing was sent, so nothing can be duplicated', async () => {
    // Accepts TCP and never answers the TLS handshake: the create cannot have left the gateway.
    const blackhole = await silentServer();
    try {
      gw = await startTestGateway({
        config: { providers: { freepik: { connect_timeout_ms: 100 } } },
        endpointOverrides: { freepik: { baseUrl: `https://127.0.0.1:${blackhole.port}` } },
      });
      const created = await gw.create(request);
      expect(created.body.provider).toBe('kling3api');
      expect(created.body.attempts).toEqual([
        expect.objectContaining({ provider: 'freepik', outcome: 'failed', error_code: 'provider_error', http_status: null }),
        expect.objectContaining({ provider: 'kling3api', outcome: 'accepted' }),
      ]);
      expect(created.body.attempts[0].message).toMatch(/could not be connected to within 100 ms; nothing was sent/);
      expect((await gw.finish(created.body.id)).status).toBe('succeeded');
    } finally {
      await blackhole.close();
    }
  });

  it('moves on when the first choice reports insufficient credits', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'insufficient_credits', status: 402 });
    const created = await gw.create(request);
    expect(created.body.provider).toBe('kling3api');
    expect(created.body.attempts[0]).toMatchObject({ http_status: 402, error_code: 'insufficient_credits' });
  });

  it('moves on when the first choice rejects our key (401) or the body (400)', async () => {
    gw = await startTestGateway({ endpointOverrides: { freepik: { apiKey: 'revoked-key' } } });
    const unauthorized = await gw.create(request);
    expect(unauthorized.body.provider).toBe('kling3api');
    expect(unauthorized.body.attempts[0]).toMatchObject({ http_status: 401 });
    await gw.close();

    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'invalid', status: 400 });
    const rejected = await gw.create(request);
    expect(rejected.body.provider).toBe('kling3api');
    expect(rejected.body.attempts[0]).toMatchObject({ http_status: 400, error_code: 'invalid_request' });
  });

  it('does not ask again, when the task comes back from the queue, a provider that said its credits are gone with a 429', async () => {
    // The legacy API reports an exhausted resource pack (1102) with HTTP 429: a refusal, not "later".
    gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 1 } } } });
    expect((await gw.create({ ...request, routing: { providers: ['kling3api'] } })).body.provider).toBe('kling3api');
    gw.simulator('kling-legacy').injectFault({ kind: 'insufficient_credits', times: 10 });
    const created = await gw.create({ ...request, routing: { providers: ['kling-legacy', 'kling3api'] } });
    expect(created.body.status).toBe('queued');
    expect(created.body.attempts).toEqual([
      expect.objectContaining({ provider: 'kling-legacy', outcome: 'failed', http_status: 429, error_code: 'insufficient_credits' }),
    ]);
    // kling3api is still busy for a few passes; then the task goes there.
    const done = await gw.finish(created.body.id);
    expect(done.provider).toBe('kling3api');
    expect(createCalls(gw, 'kling-legacy')).toBe(1);
    expect(done.attempts.map((a: { provider: string }) => a.provider)).toEqual(['kling-legacy', 'kling3api']);
  });

  it('honours 429 Retry-After: fails over now and keeps away until it passes', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'rate_limited', status: 429, headers: { 'retry-after': '30' } });
    const first = await gw.create(request);
    expect(first.body.provider).toBe('kling3api');
    expect(first.body.attempts[0]).toMatchObject({ http_status: 429 });
    const callsAfterFirst = createCalls(gw, 'freepik');
    const second = await gw.create(request);
    expect(second.body.provider).toBe('kling3api');
    expect(createCalls(gw, 'freepik')).toBe(callsAfterFirst);
    const providers = await gw.request('GET', '/v1/providers');
    expect(providers.body.data.find((p: { id: string }) => p.id === 'freepik').cooling_down_until).not.toBeNull();
    await gw.clock.advance(31_000);
    const third = await gw.create(request);
    expect(third.body.provider).toBe('freepik');
  });

  it('keeps away at most an hour, whatever Retry-After says, and still answers /v1/providers and quotes', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'rate_limited', status: 429, headers: { 'retry-after': '9999999999999' } });
    expect((await gw.create(request)).body.provider).toBe('kling3api');
    const providers = await gw.request('GET', '/v1/providers');
    expect(providers.status).toBe(200);
    expect(providers.body.data.find((p: { id: string }) => p.id === 'freepik').cooling_down_until).toBe('2026-11-22T13:00:00.000Z');
    expect((await gw.request('POST', '/v1/videos/quote', request)).status).toBe(200);
    await gw.clock.advance(3_601_000);
    expect((await gw.create(request)).body.provider).toBe('freepik');
  });

  it('never fails over a content-policy rejection', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({
      status: 400,
      body: { message: 'The prompt violates our content policy' },
    });
    const created = await gw.create(request);
    expect(created.body.status).toBe('failed');
    expect(created.body.error).toMatchObject({ code: 'content_policy' });
    expect(created.body.attempts).toHaveLength(1);
    expect(upstreamTasks(gw)).toEqual({ freepik: 0, kling3api: 0, 'kling-legacy': 0 });
  });

  it('reports a content-policy failure during generation as content_policy', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').setOutcome('content_policy');
    const created = await gw.create(request);
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('failed');
    expect(done.error.code).toBe('content_policy');
    expect(upstreamTasks(gw)).toEqual({ freepik: 1, kling3api: 0, 'kling-legacy': 0 });
  });

  it('does not fail over a timeout after sending: the task may exist upstream', async () => {
    // kling3api first: it documents no way to find a task, so nothing can settle the doubt.
    gw = await startTestGateway({ config: { providers: { kling3api: { timeout_ms: 300 } } } });
    gw.simulator('kling3api').injectFault({ transport: 'hang' });
    const created = await gw.create({ ...request, routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.body.status).toBe('failed');
    expect(created.body.error.code).toBe('timeout');
    expect(created.body.error.message).toMatch(/may have been created/);
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'ambiguous' })]);
    expect(createCalls(gw, 'freepik')).toBe(0);
  });

  it('fails over a timeout when failover_on_timeout is set', async () => {
    gw = await startTestGateway({
      config: { routing: { failover_on_timeout: true }, providers: { freepik: { timeout_ms: 300 } } },
    });
    gw.simulator('freepik').injectFault({ transport: 'hang' });
    const created = await gw.create(request);
    expect(created.body.provider).toBe('kling3api');
    expect(created.body.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['ambiguous', 'accepted']);
  });

  it('with failover_on_timeout, a task the next provider took also shows what the unanswered one may have billed', async () => {
    gw = await startTestGateway({
      config: { routing: { failover_on_timeout: true }, providers: { freepik: { timeout_ms: 300 } } },
    });
    gw.simulator('freepik').injectFault({ transport: 'hang' });
    const created = await gw.create(request);
    expect(created.body.provider).toBe('kling3api');
    // 5 s Kling 3 pro with sound: Freepik 56 credits × $0.01, beside kling3api's own charge.
    const freepikAtRisk = { provider: 'freepik', account: 'default', credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' };
    expect(created.body.cost).toEqual({ credits: 400, estimated: true, currency_amount: 0.4, currency: 'USD', at_risk: [freepikAtRisk] });
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.cost).toEqual({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD', at_risk: [freepikAtRisk] });
    expect((await gw.request('GET', '/v1/videos')).body.data[0].cost.at_risk).toEqual([freepikAtRisk]);
  });

  it('with failover_on_timeout, the metrics count what the unanswered provider may have billed once, when the task ends', async () => {
    gw = await startTestGateway({
      config: { routing: { failover_on_timeout: true }, providers: { freepik: { timeout_ms: 300 } } },
    });
    gw.simulator('freepik').injectFault({ transport: 'hang' });
    const created = await gw.create(request);
    expect(created.body.provider).toBe('kling3api');
    const scrape = async () => (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    // Nothing yet (every series at 0): the task may still fail in a way that changes what is at risk.
    expect(await scrape()).not.toMatch(/^kling_gateway_credits_at_risk_total\{.*\} (?!0$)/m);
    expect((await gw.finish(created.body.id)).status).toBe('succeeded');
    const metrics = await scrape();
    expect(metrics).toMatch(/^kling_gateway_credits_at_risk_total\{provider="freepik",account="default",model="kling-v3"\} 56$/m);
    expect(metrics).toMatch(/^kling_gateway_currency_at_risk_total\{provider="freepik",account="default",model="kling-v3",currency="USD"\} 0\.56$/m);
    // Apart from what was spent: Freepik took nothing for certain, kling3api charged its own 400.
    expect(metrics).toMatch(/^kling_gateway_credits_spent_total\{provider="freepik",account="default",model="kling-v3"\} 0$/m);
    expect(metrics).toMatch(/^kling_gateway_credits_spent_total\{provider="kling3api",account="default",model="kling-v3"\} 400$/m);
    expect(metrics).not.toMatch(/^kling_gateway_credits_at_risk_total\{provider="kling3api".*\} (?!0$)/m);
  });

  const stores: [string, boolean][] = [['SQLite', false], ...(postgres ? [['PostgreSQL', true] as [string, boolean]] : [])];
  it.each(stores)('with failover_on_timeout, usage and the budget count what the unanswered provider may have billed (%s)', async (_name, onPostgres) => {
    const schema = newSchemaName();
    try {
      gw = await startTestGateway({
        ...(onPostgres ? { store: await openPostgresStore(schema) } : {}),
        config: {
          routing: { failover_on_timeout: true },
          providers: { freepik: { timeout_ms: 300 } },
          tenants: { acme: { budget: { amount: 10, currency: 'USD', period: 'month' } } },
        },
      });
      gw.simulator('freepik').injectFault({ transport: 'hang' });
      const created = await gw.create(request);
      expect(created.body.provider).toBe('kling3api');
      // While it runs, the budget holds kling3api's $0.40 and the $0.56 Freepik may have billed.
      expect((await gw.request('GET', '/v1/usage')).body.budgets[0]).toMatchObject({ spent: 0, reserved: 0.96 });
      expect((await gw.finish(created.body.id)).status).toBe('succeeded');

      const byProvider = await gw.request('GET', '/v1/usage?group_by=provider');
      expect(byProvider.body.data).toEqual([
        expect.objectContaining({ provider: 'freepik', currency: 'USD', tasks: 0, credits: 0, currency_amount: 0, tasks_at_risk: 1, credits_at_risk: 56, currency_amount_at_risk: 0.56 }),
        expect.objectContaining({ provider: 'kling3api', tasks: 1, succeeded: 1, credits: 400, currency_amount: 0.4, tasks_at_risk: 0, credits_at_risk: 0, currency_amount_at_risk: 0 }),
      ]);
      const total = await gw.request('GET', '/v1/usage');
      expect(total.body.data).toEqual([expect.objectContaining({ tasks: 1, currency_amount: 0.4, tasks_at_risk: 1, currency_amount_at_risk: 0.56 })]);
      // Counted as spent: the gateway cannot tell it was not billed.
      expect(total.body.budgets[0]).toMatchObject({ spent: 0.96, reserved: 0 });

      const csv = await gw.request('GET', '/v1/usage?group_by=provider&format=csv');
      const [header, ...lines] = (csv.body as string).trim().split('\r\n');
      const columns = header!.split(',');
      const rows = lines.map((line) => Object.fromEntries(line.split(',').map((value, index) => [columns[index], value])));
      expect(rows.map((row) => [row.provider, row.currency_amount, row.tasks_at_risk, row.currency_amount_at_risk])).toEqual([
        ['freepik', '0', '1', '0.56'],
        ['kling3api', '0.4', '0', '0'],
      ]);
    } finally {
      await gw?.close();
      if (onPostgres) await dropSchema(schema);
    }
  });

  it('with failover_on_timeout, never sends the task again to the provider that may hold it', async () => {
    // Freepik's webhooks do not verify (signed with a secret the gateway does not hold): no news
    // names its task, which would be adopted while the task waits (news-of-failed-over-create-while-queued).
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true } }, endpointOverrides: { freepik: { webhookSecret: 'whsec_not_the_simulators' } } });
    // Freepik takes the create and the connection drops; kling3api then asks for a pause.
    gw.simulator('freepik').injectFault({ transport: 'drop_after_accept' });
    gw.simulator('kling3api').injectFault({ kind: 'rate_limited', status: 429, headers: { 'retry-after': '10' } });
    const created = await gw.create({ ...request, routing: { providers: ['freepik', 'kling3api'] } });
    expect(created.body.status).toBe('queued');
    expect(created.body.attempts.map((a: { provider: string; outcome: string }) => [a.provider, a.outcome])).toEqual([
      ['freepik', 'ambiguous'],
      ['kling3api', 'failed'],
    ]);
    // The pause ends: the task goes on to kling3api, not back to Freepik.
    await gw.advance(11_000);
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.provider).toBe('kling3api');
    expect(upstreamTasks(gw)).toEqual({ freepik: 1, kling3api: 1, 'kling-legacy': 0 });
    expect(createCalls(gw, 'freepik')).toBe(1);
  });

  it('with failover_on_timeout, a task no later provider takes costs the estimate of the one that may hold it, not a certain 0', async () => {
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true } } });
    // kling3api takes the create (and charges it) but the connection drops; Freepik refuses the request.
    gw.simulator('kling3api').injectFault({ transport: 'drop_after_accept' });
    gw.simulator('freepik').injectFault({ status: 400, kind: 'invalid' });
    const created = await gw.create({ ...request, routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.body.status).toBe('failed');
    expect(created.body.error.message).toMatch(/may exist upstream/);
    expect(upstreamTasks(gw)).toEqual({ freepik: 0, kling3api: 1, 'kling-legacy': 0 });
    // 5 s Kling 3.0 pro with sound on kling3api: 400 credits, US$0.40 — maybe billed, so still an estimate.
    expect(created.body.provider).toBe('kling3api');
    expect(created.body.cost).toEqual({ credits: 400, estimated: true, currency_amount: 0.4, currency: 'USD' });
    const usage = await gw.request('GET', '/v1/usage?group_by=provider');
    expect(usage.body.data).toEqual([expect.objectContaining({ provider: 'kling3api', failed: 1, credits: 400, currency_amount: 0.4 })]);
  });

  it('with failover_on_timeout, a queued task canceled after a create that may exist upstream keeps that estimate', async () => {
    gw = await startTestGateway({ config: { routing: { failover_on_timeout: true } } });
    gw.simulator('kling3api').injectFault({ transport: 'drop_after_accept' });
    gw.simulator('freepik').injectFault({ kind: 'rate_limited', status: 429, headers: { 'retry-after': '30' } });
    const created = await gw.create({ ...request, routing: { providers: ['kling3api', 'freepik'] } });
    expect(created.body.status).toBe('queued');
    const canceled = await gw.request('POST', `/v1/videos/${created.body.id}/cancel`);
    expect(canceled.status).toBe(200);
    expect(canceled.body.status).toBe('canceled');
    expect(canceled.body.provider).toBe('kling3api');
    expect(canceled.body.cost).toEqual({ credits: 400, estimated: true, currency_amount: 0.4, currency: 'USD' });
    const usage = await gw.request('GET', '/v1/usage?group_by=provider');
    expect(usage.body.data).toEqual([expect.objectContaining({ provider: 'kling3api', canceled: 1, credits: 400, currency_amount: 0.4 })]);
  });

  it('does not move on when the connection breaks after the create was sent: the upstream may hold it', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ transport: 'reset' });
    const created = await gw.create(request);
    expect(created.body.attempts[0]).toMatchObject({ provider: 'freepik', outcome: 'ambiguous' });
    expect(createCalls(gw, 'kling3api')).toBe(0);
  });

  it('never creates a task twice when the upstream accepted and the connection dropped before the answer', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ transport: 'drop_after_accept' });
    const created = await gw.create(request);
    expect(created.body.attempts[0]).toMatchObject({ provider: 'freepik' });
    expect(upstreamTasks(gw)).toEqual({ freepik: 1, kling3api: 0, 'kling-legacy': 0 });
  });

  it('keeps to one provider with allow_fallbacks: false', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503 });
    const created = await gw.create({ ...request, routing: { allow_fallbacks: false } });
    expect(created.body.status).toBe('failed');
    expect(created.body.error.code).toBe('provider_error');
    expect(createCalls(gw, 'kling3api')).toBe(0);
  });

  it('fails clearly when the only capable provider is down', async () => {
    gw = await startTestGateway();
    gw.simulator('kling-legacy').injectFault({ kind: 'server_error', status: 500 });
    const created = await gw.create({ model: 'kling-v1', prompt: 'an old film look' });
    expect(created.body.status).toBe('failed');
    expect(created.body.attempts).toHaveLength(1);
    expect(created.body.error.code).toBe('provider_error');
  });

  it('answers no_provider_available when every provider fails differently', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'insufficient_credits', status: 402 });
    gw.simulator('kling3api').injectFault({ kind: 'server_error', status: 500 });
    const created = await gw.create({ ...request, routing: { providers: ['freepik', 'kling3api'] } });
    expect(created.body.status).toBe('failed');
    expect(created.body.error.code).toBe('no_provider_available');
    expect(created.body.attempts.map((a: { provider: string }) => a.provider)).toEqual(['freepik', 'kling3api']);
  });

  it('names each provider and what it said in the error of a task none accepted', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503 });
    gw.simulator('kling3api').injectFault({ kind: 'insufficient_credits', status: 402 });
    const mixed = await gw.create({ ...request, routing: { providers: ['freepik', 'kling3api'] } });
    expect(mixed.body.error).toMatchObject({ code: 'no_provider_available' });
    expect(mixed.body.error.message).toMatch(/^no provider accepted the task: freepik \(HTTP 503\): .+; kling3api \(HTTP 402\): kling3api \(INSUFFICIENT_CREDITS\): Not enough credits/);

    // The same code from every provider is that code, still naming who said it.
    gw.simulator('freepik').injectFault({ kind: 'insufficient_credits', status: 402 });
    gw.simulator('kling3api').injectFault({ kind: 'insufficient_credits', status: 402 });
    const broke = await gw.create({ ...request, routing: { providers: ['freepik', 'kling3api'] } });
    expect(broke.body.error).toMatchObject({ code: 'insufficient_credits' });
    expect(broke.body.error.message).toMatch(/^no provider accepted the task: freepik \(HTTP 402\): .+; kling3api \(HTTP 402\): kling3api \(INSUFFICIENT_CREDITS\): Not enough credits/);
  });

  it('sends a slow but healthy provider its task without failing over, and shows how long it took', async () => {
    gw = await startTestGateway();
    // Freepik answers 1.5 s after the create reached it (within its 2 s limit).
    const held = heldCall();
    gw.simulator('freepik').injectFault({ on: 'submit', hold: held.hold });
    const pending = gw.create(request);
    await held.reached;
    await gw.clock.advance(1_500);
    held.release();
    const created = await pending;
    expect(created.status).toBe(202);
    expect(created.body.provider).toBe('freepik');
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'freepik', outcome: 'accepted', latency_ms: 1_500 })]);
    expect(createCalls(gw, 'kling3api')).toBe(0);
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures; an open circuit costs no upstream call', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503, times: 3 });
    for (let i = 0; i < 3; i++) {
      expect((await gw.create(request)).body.provider).toBe('kling3api');
    }
    const callsWhenOpened = createCalls(gw, 'freepik');
    expect(callsWhenOpened).toBe(3);
    const providers = await gw.request('GET', '/v1/providers');
    expect(providers.body.data.find((p: { id: string }) => p.id === 'freepik').circuit).toBe('open');

    const skipped = await gw.create(request);
    expect(skipped.body.provider).toBe('kling3api');
    expect(skipped.body.attempts[0]).toMatchObject({ provider: 'freepik', outcome: 'skipped', error_code: 'circuit_open' });
    expect(createCalls(gw, 'freepik')).toBe(callsWhenOpened);

    const quote = await gw.request('POST', '/v1/videos/quote', request);
    const freepik = quote.body.providers.find((p: { provider: string }) => p.provider === 'freepik');
    expect(freepik.eligible).toBe(false);
    // When it may be tried again: opened at 12:00:00, half-open after 60 s in the test settings.
    expect(freepik.reasons).toEqual(['circuit open: recent calls failed; skipped until a probe succeeds (the first probe may go at 2026-11-22T12:01:00.000Z)']);
    expect(quote.body.order).toEqual(['kling3api', 'kling-legacy']);

    const metrics = await gw.request('GET', '/metrics', undefined, {}, null);
    expect(metrics.body).toMatch(/kling_gateway_circuit_state\{provider="freepik"\} 1/);
    expect(metrics.body).toMatch(/kling_gateway_failovers_total\{provider="freepik",reason="circuit_open"\} 1/);
  });

  it('quotes with the probe time and the next allowed call at the longest circuit open time and rate window the configuration takes (100 years)', async () => {
    const longest = 3_153_600_000_000;
    gw = await startTestGateway({
      config: {
        providers: {
          freepik: { circuit_breaker: { consecutive_failures: 3, half_open_after_ms: longest } },
          kling3api: { rate_limits: [{ limit: 1, window_ms: longest }] },
        },
      },
    });
    gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503, times: 3 });
    for (let i = 0; i < 3; i++) expect((await gw.create({ ...request, routing: { providers: ['freepik', 'kling-legacy'] } })).body.provider).toBe('kling-legacy');
    // kling3api's one call of its window.
    expect((await gw.create({ ...request, routing: { providers: ['kling3api'] } })).body.provider).toBe('kling3api');
    const quote = await gw.request('POST', '/v1/videos/quote', { ...request, routing: { providers: ['freepik', 'kling3api'] } });
    expect(quote.status).toBe(200);
    const said = (id: string) => quote.body.providers.find((p: { provider: string }) => p.provider === id);
    expect(said('freepik').reasons).toEqual([
      `circuit open: recent calls failed; skipped until a probe succeeds (the first probe may go at ${new Date(Date.parse('2026-11-22T12:00:00.000Z') + longest).toISOString()})`,
    ]);
    expect(said('kling3api').warnings.join('; ')).toMatch(/^rate limit reached: its next call is allowed at 2126-/);
  });

  it('a circuit whose open time passed with no traffic is scraped as half-open, not open for ever', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503, times: 3 });
    for (let i = 0; i < 3; i++) await gw.create(request);
    const scrape = async () => (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(await scrape()).toMatch(/kling_gateway_circuit_state\{provider="freepik"\} 1\n/);

    await gw.clock.advance(60_001);
    const metrics = await scrape();
    expect(metrics).toMatch(/kling_gateway_circuit_state\{provider="freepik"\} 2\n/);
    expect(metrics).toMatch(/kling_gateway_account_circuit_state\{provider="freepik",account="default"\} 2\n/);
  });

  it('fails fast with no_provider_available when the only capable provider is open, with no upstream call', async () => {
    gw = await startTestGateway();
    const legacyOnly = { model: 'kling-v1', prompt: 'an old film look' };
    gw.simulator('kling-legacy').injectFault({ kind: 'server_error', status: 500, times: 3 });
    for (let i = 0; i < 3; i++) expect((await gw.create(legacyOnly)).body.status).toBe('failed');
    const calls = createCalls(gw, 'kling-legacy');

    const created = await gw.create(legacyOnly);
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'failed', error: { code: 'no_provider_available' } });
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'skipped', error_code: 'circuit_open' })]);
    expect(created.body.cost).toMatchObject({ credits: 0, currency_amount: 0 });
    expect(createCalls(gw, 'kling-legacy')).toBe(calls);
  });

  it.each([
    ['refuses our key (401)', { kind: 'unauthorized', status: 401 }],
    ['forbids our key (403)', { kind: 'unauthorized', status: 403 }],
    ['has no credits left (402)', { kind: 'insufficient_credits', status: 402 }],
    ['has no credits left (its own insufficient-credits answer)', { kind: 'insufficient_credits' }],
  ] as const)('opens the circuit of a provider that %s on consecutive creates, then skips it without a call', async (_what, fault) => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ ...fault, times: 3 });
    for (let i = 0; i < 3; i++) {
      expect((await gw.create(request)).body.provider).toBe('kling3api');
    }
    const providers = await gw.request('GET', '/v1/providers');
    expect(providers.body.data.find((p: { id: string }) => p.id === 'freepik').circuit).toBe('open');
    const skipped = await gw.create(request);
    expect(skipped.body.provider).toBe('kling3api');
    expect(skipped.body.attempts[0]).toMatchObject({ provider: 'freepik', outcome: 'skipped', error_code: 'circuit_open' });
    expect(createCalls(gw, 'freepik')).toBe(3);
  });

  it('opens the circuit of a provider whose account balance ran out, whatever HTTP status it says it with (legacy: 429, code 1102)', async () => {
    gw = await startTestGateway();
    const legacyOnly = { model: 'kling-v1', prompt: 'an old film look' };
    gw.simulator('kling-legacy').injectFault({ kind: 'insufficient_credits', times: 3 });
    for (let i = 0; i < 3; i++) {
      expect((await gw.create(legacyOnly)).body).toMatchObject({ status: 'failed', error: { code: 'insufficient_credits' } });
    }
    const providers = await gw.request('GET', '/v1/providers');
    expect(providers.body.data.find((p: { id: string }) => p.id === 'kling-legacy').circuit).toBe('open');
    const skipped = await gw.create(legacyOnly);
    expect(skipped.body).toMatchObject({ status: 'failed', error: { code: 'no_provider_available' } });
    expect(skipped.body.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'skipped', error_code: 'circuit_open' })]);
    expect(createCalls(gw, 'kling-legacy')).toBe(3);
  });

  it('does not count rejections of the request against the provider', async () => {
    gw = await startTestGateway();
    gw.simulator('freepik').injectFault({ kind: 'invalid', status: 400, times: 5 });
    for (let i = 0; i < 5; i++) await gw.create(request);
    const providers = await gw.request('GET', '/v1/providers');
    expect(providers.body.data.find((p: { id: string }) => p.id === 'freepik').circuit).toBe('closed');
  });
});
