import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config.js';
import { OPERATIONS } from '../../src/core/model/canonical.js';
import { capturedLogs } from '../support/captured-logs.js';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

let gw: TestGateway;
const postgres = await postgresAvailable();

/**
 * The legacy API ships placeholder prices; the tests that need a provider without a price for
 * the request empty its list (a price list without rules prices nothing).
 */
const LEGACY_UNPRICED = { providers: { 'kling-legacy': { pricing: { rules: [] } } } };

afterEach(async () => {
  await gw?.close();
});

describe('quote', () => {
  it('lists every provider with eligibility, reasons, estimates and the try order, and creates nothing', async () => {
    gw = await startTestGateway({ config: LEGACY_UNPRICED });
    const quote = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'quote me', duration: 10 });
    expect(quote.status).toBe(200);
    expect(quote.body.strategy).toBe('priority');
    expect(quote.body.order).toEqual(['freepik', 'kling3api', 'kling-legacy']);
    const byId = Object.fromEntries(quote.body.providers.map((p: { provider: string }) => [p.provider, p]));
    expect(byId.freepik).toMatchObject({ eligible: true, order: 1, estimated_credits: 112, estimated_cost: 1.12, currency: 'USD' });
    // kling3api's shipped credit table: pro with audio = 80/s.
    expect(byId.kling3api).toMatchObject({ eligible: true, order: 2, estimated_credits: 800, estimated_cost: 0.8 });
    // Unpriced: no figure and no currency, rather than a zero in some currency.
    expect(byId['kling-legacy']).toMatchObject({ eligible: true, order: 3, estimated_credits: null, estimated_cost: null, currency: null });
    expect((await gw.request('GET', '/v1/videos')).body.data).toEqual([]);
  });

  it('names why a provider is not eligible', async () => {
    gw = await startTestGateway();
    const quote = await gw.request('POST', '/v1/videos/quote', {
      model: 'kling-v3',
      prompt: 'x'.repeat(2100),
      routing: { exclude: ['kling-legacy'] },
    });
    const byId = Object.fromEntries(quote.body.providers.map((p: { provider: string }) => [p.provider, p]));
    expect(byId.freepik.eligible).toBe(true);
    expect(byId.kling3api.eligible).toBe(false);
    expect(byId.kling3api.reasons.join(' ')).toMatch(/prompt is longer than 2000/);
    expect(byId['kling-legacy'].reasons).toContain('excluded by routing.exclude');
    expect(quote.body.order).toEqual(['freepik']);
  });

  it('with allow_fallbacks: false, says why the providers after the first are not tried', async () => {
    gw = await startTestGateway();
    const quote = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'quote me', routing: { allow_fallbacks: false } });
    expect(quote.body.order).toEqual(['freepik']);
    const byId = Object.fromEntries(quote.body.providers.map((p: { provider: string }) => [p.provider, p]));
    expect(byId.freepik).toMatchObject({ eligible: true, order: 1, reasons: [] });
    for (const id of ['kling3api', 'kling-legacy']) {
      expect(byId[id]).toMatchObject({ eligible: false, order: null, reasons: ['not tried: allow_fallbacks is false and another provider comes first'] });
    }
  });

  it('gives the budget reason only to providers the budget stops, not to those out for another reason', async () => {
    gw = await startTestGateway({ config: { tenants: { acme: { budget: { amount: 1, currency: 'USD', period: 'month' } } } } });
    // Freepik's $0.56 reserved leaves $0.44: less than this request's $0.56 at most.
    expect((await gw.create({ model: 'kling-v3', prompt: 'quote me', duration: 5 })).status).toBe(202);
    const quote = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: 'quote me', duration: 5, routing: { exclude: ['kling-legacy'] } });
    const byId = Object.fromEntries(quote.body.providers.map((p: { provider: string }) => [p.provider, p]));
    expect(byId['kling-legacy'].reasons).toEqual(['excluded by routing.exclude']);
    expect(byId.freepik.reasons).toEqual([expect.stringMatching(/^this task would reserve 0\.56 USD, but tenant acme has 0\.44 USD left/)]);
  });

  it("takes six shots on Freepik's Kling 3 Omni, its multi_prompt.maxItems and the canonical most", async () => {
    gw = await startTestGateway();
    const shots = Array.from({ length: 6 }, (_, index) => ({ prompt: `scene ${index + 1}` }));
    const quote = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3-omni', multi_shot: shots, duration: 10 });
    const freepik = quote.body.providers.find((p: { provider: string }) => p.provider === 'freepik');
    expect(freepik).toMatchObject({ eligible: true, reasons: [], order: 1 });
  });

  it('validates like create', async () => {
    gw = await startTestGateway();
    const bad = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', duration: 99 });
    expect(bad.status).toBe(400);
    const unknownProvider = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', routing: { providers: ['runway'] } });
    expect(unknownProvider.status).toBe(400);
    expect(unknownProvider.body.errors[0].path).toBe('routing.providers.0');
  });

  it('puts a provider that cannot take a task this moment after the others, as a create goes', async () => {
    gw = await startTestGateway({ config: { providers: { freepik: { max_in_flight: 1 } } } });
    const body = { model: 'kling-v3', prompt: 'quote me', duration: 5 };
    const providerOf = async () => (await gw.create(body)).body.provider;
    const freepikOf = (quote: { body: { providers: { provider: string; warnings: string[]; eligible: boolean }[] } }) =>
      quote.body.providers.find((p) => p.provider === 'freepik')!;

    // A 429 with Retry-After: Freepik cools down, and creates go to kling3api meanwhile.
    gw.simulator('freepik').injectFault({ kind: 'rate_limited', status: 429, headers: { 'retry-after': '60' } });
    expect(await providerOf()).toBe('kling3api');
    const cooling = await gw.request('POST', '/v1/videos/quote', body);
    expect(cooling.body.order).toEqual(['kling3api', 'kling-legacy', 'freepik']);
    expect(freepikOf(cooling).eligible).toBe(true);
    expect(freepikOf(cooling).warnings.join(' ')).toMatch(/cooling down until .*tried after the providers that can take it now/);
    expect(await providerOf()).toBe('kling3api');

    // Its one slot taken: the same.
    await gw.advance(61_000);
    expect(await providerOf()).toBe('freepik');
    const full = await gw.request('POST', '/v1/videos/quote', body);
    expect(full.body.order).toEqual(['kling3api', 'kling-legacy', 'freepik']);
    expect(freepikOf(full).warnings.join(' ')).toMatch(/no free slot \(1 of 1 tasks in flight\)/);
    expect(await providerOf()).toBe('kling3api');
  });

  it('puts a provider whose rate window is spent after the others, as a create goes, and takes nothing from the window', async () => {
    gw = await startTestGateway({ config: { providers: { freepik: { rate_limits: [{ limit: 1, window_ms: 60_000 }] } } } });
    const body = { model: 'kling-v3', prompt: 'quote me', duration: 5 };
    expect((await gw.create(body)).body.provider).toBe('freepik');

    // Its one call a minute is spent: a create would not wait a minute for it but go on.
    const spent = await gw.request('POST', '/v1/videos/quote', body);
    expect(spent.body.order).toEqual(['kling3api', 'kling-legacy', 'freepik']);
    const freepik = spent.body.providers.find((p: { provider: string }) => p.provider === 'freepik');
    expect(freepik).toMatchObject({ eligible: true, order: 3 });
    expect(freepik.warnings.join(' ')).toMatch(/rate limit reached: its next call is allowed at .*tried after the providers that can take it now/);
    const created = await gw.create(body);
    expect(created.body.attempts.map((a: { provider: string }) => a.provider)).toEqual(['kling3api']);

    // Once the window has room again the quote says Freepik, and asking it took no call from the window.
    await gw.clock.advance(61_000);
    expect((await gw.request('POST', '/v1/videos/quote', body)).body.order[0]).toBe('freepik');
    expect((await gw.create(body)).body.provider).toBe('freepik');
  });

  it('refuses a webhook_url create would refuse, with the same problem', async () => {
    gw = await startTestGateway({ config: { webhooks: { allow_private_targets: false } } });
    const body = { model: 'kling-v3', prompt: 'quote me', webhook_url: 'http://127.0.0.1:9/hook' };
    const quote = await gw.request('POST', '/v1/videos/quote', body);
    const create = await gw.request('POST', '/v1/videos', body);
    expect(quote.status).toBe(422);
    expect(quote.body.errors).toEqual([{ path: 'webhook_url', message: expect.stringMatching(/private, loopback/) }]);
    expect({ status: create.status, detail: create.body.detail, errors: create.body.errors }).toEqual({
      status: quote.status,
      detail: quote.body.detail,
      errors: quote.body.errors,
    });
    const publicTarget = await gw.request('POST', '/v1/videos/quote', { ...body, webhook_url: 'https://hooks.example.com/kling' });
    expect(publicTarget.status).toBe(200);
  });
});

describe('cost', () => {
  it('cheapest picks the provider the price lists say is cheapest for this request', async () => {
    gw = await startTestGateway({ config: { routing: { strategy: 'cheapest' } } });
    // 5 s pro with audio: freepik 56 credits × $0.01 = $0.56; kling3api 400 × $0.001 = $0.40.
    const withAudio = await gw.create({ model: 'kling-v3', prompt: 'cheap', duration: 5 });
    expect(withAudio.body.provider).toBe('kling3api');
    // std without audio: kling3api 40/s → $0.20; freepik 8.4 × 5 × $0.01 = $0.42.
    const quote = await gw.request('POST', '/v1/videos/quote', {
      model: 'kling-v3',
      quality: 'std',
      audio: false,
      prompt: 'cheap',
      duration: 5,
    });
    expect(quote.body.order[0]).toBe('kling3api');
    // Make Freepik cheaper for the same request, and it wins.
    await gw.close();
    gw = await startTestGateway({
      config: {
        routing: { strategy: 'cheapest' },
        providers: { freepik: { pricing: { credit_value: 0.001 } } },
      },
    });
    expect((await gw.create({ model: 'kling-v3', prompt: 'cheap', duration: 5 })).body.provider).toBe('freepik');
  });

  it('cheapest: the quote says an unpriced provider is tried after the priced ones, and with no price anywhere the order is the priority', async () => {
    gw = await startTestGateway({ config: LEGACY_UNPRICED });
    const body = { model: 'kling-v3', prompt: 'quote me', duration: 5, routing: { strategy: 'cheapest' } };
    const quote = await gw.request('POST', '/v1/videos/quote', body);
    expect(quote.body.order).toEqual(['kling3api', 'freepik', 'kling-legacy']);
    const warnings = Object.fromEntries(quote.body.providers.map((p: { provider: string; warnings: string[] }) => [p.provider, p.warnings]));
    expect(warnings).toEqual({ freepik: [], kling3api: [], 'kling-legacy': ['cheapest: no price configured for this request; tried after the providers with one'] });
    await gw.close();

    const unpriced = { pricing: { rules: [] } };
    gw = await startTestGateway({ config: { providers: { freepik: unpriced, kling3api: unpriced, 'kling-legacy': unpriced } } });
    const none = await gw.request('POST', '/v1/videos/quote', body);
    expect(none.body.order).toEqual(['freepik', 'kling3api', 'kling-legacy']);
    for (const entry of none.body.providers) {
      expect(entry.warnings).toEqual(['cheapest: no eligible provider has a price for this request, so they are tried in the configured priority order']);
    }
    expect((await gw.create(body)).body.provider).toBe('freepik');
  });

  it('refuses to start with cheapest while enabled providers price in different currencies, naming the fields', async () => {
    const euroKling3api = { kling3api: { pricing: { currency: 'EUR' } } };
    // A gateway that starts anyway is kept for afterEach to close, not handed to the matcher.
    const refused = await startTestGateway({ config: { routing: { strategy: 'cheapest' }, providers: euroKling3api } }).then(
      (started) => ((gw = started), new Error('started')),
      (error: Error) => error,
    );
    expect(refused).toBeInstanceOf(ConfigError);
    expect(refused.message).toMatch(
      /routing\.strategy: cheapest compares estimated amounts, but enabled providers price in different currencies \(providers\.<id>\.pricing\.currency — freepik, kling-legacy: USD; kling3api: EUR\); amounts are not converted/,
    );
    // Another strategy compares no amounts; a disabled provider competes with nobody.
    gw = await startTestGateway({ config: { providers: euroKling3api } });
    await gw.close();
    gw = await startTestGateway({
      config: { routing: { strategy: 'cheapest' }, providers: { ...euroKling3api, freepik: { enabled: false }, 'kling-legacy': { enabled: false } } },
    });
    expect((await gw.create({ model: 'kling-v3', prompt: 'only one to compare', duration: 5 })).body.provider).toBe('kling3api');
  });

  it('cheapest still picks the cheapest when every provider prices in the same other currency', async () => {
    const euro = { pricing: { currency: 'EUR' } };
    gw = await startTestGateway({
      config: { routing: { strategy: 'cheapest' }, providers: { freepik: euro, kling3api: euro, 'kling-legacy': euro } },
    });
    const created = await gw.create({ model: 'kling-v3', prompt: 'cheap in euros', duration: 5 });
    expect(created.body.provider).toBe('kling3api');
    expect(created.body.cost).toEqual({ credits: 400, estimated: true, currency_amount: 0.4, currency: 'EUR' });
  });

  it('answers 422 on routing.strategy when a request asks for cheapest among providers in different currencies', async () => {
    gw = await startTestGateway({ config: { providers: { kling3api: { pricing: { currency: 'EUR' } } } } });
    const body = { model: 'kling-v3', prompt: 'compare apples and pears', duration: 5, routing: { strategy: 'cheapest' } };
    for (const path of ['/v1/videos/quote', '/v1/videos']) {
      const refused = await gw.request('POST', path, body);
      expect(refused.status).toBe(422);
      expect(refused.body.errors).toEqual([
        { path: 'routing.strategy', message: expect.stringMatching(/^cheapest cannot order providers that price in different currencies \(freepik, kling-legacy: USD; kling3api: EUR\)/) },
      ]);
    }
    expect(gw.simulator('freepik').tasks.length + gw.simulator('kling3api').tasks.length).toBe(0);
    // Within one currency the comparison stands.
    const narrowed = await gw.create({ ...body, routing: { strategy: 'cheapest', exclude: ['kling3api'] } });
    expect(narrowed.status).toBe(202);
    expect(narrowed.body.cost.currency).toBe('USD');
    // The configured priority compares no amounts: every currency is served, in rank order.
    const byRank = await gw.request('POST', '/v1/videos/quote', { ...body, routing: undefined });
    expect(byRank.status).toBe(200);
    expect(byRank.body.order).toEqual(['freepik', 'kling3api', 'kling-legacy']);
  });

  it('agrees between quote and the final cost for kling3api tasks, which the upstream reports', async () => {
    gw = await startTestGateway();
    const body = { model: 'kling-v3', quality: 'std', prompt: 'a bakery at dawn', duration: 8, routing: { providers: ['kling3api'] } };
    const quote = await gw.request('POST', '/v1/videos/quote', body);
    const estimate = quote.body.providers.find((p: { provider: string }) => p.provider === 'kling3api');
    const created = await gw.create(body);
    expect(created.body.cost).toMatchObject({ estimated: true, credits: estimate.estimated_credits });
    const done = await gw.finish(created.body.id);
    expect(done.cost).toEqual({
      credits: estimate.estimated_credits,
      estimated: false,
      currency_amount: estimate.estimated_cost,
      currency: 'USD',
    });
  });

  it('keeps kling3api\'s charge from the create when the final status answer leaves consumed_credits out', async () => {
    gw = await startTestGateway();
    const created = await gw.create({ model: 'kling-v3', prompt: 'a quiet harbour', duration: 5, routing: { providers: ['kling3api'] } });
    expect(created.body.cost).toMatchObject({ credits: 400, estimated: true });
    const simulator = gw.simulator('kling3api');
    await gw.clock.advance(10_000);
    // Seed 004's status answer, as an upstream may send it: no `consumed_credits` this time.
    const finished = { task_id: simulator.tasks[0]!.id, status: 'SUCCESS', response: ['https://cdn.example.com/videos/harbour.mp4'] };
    simulator.injectFault({ on: 'status', status: 200, body: { code: 200, message: 'success', data: finished } });
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.cost).toEqual({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD' });
  });

  it('keeps kling3api\'s charge from the create when a running status answer said 0 and the final one says nothing', async () => {
    gw = await startTestGateway({ config: { sandbox: { processing_ms: 60_000 } } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'a quiet harbour', duration: 5, routing: { providers: ['kling3api'] } });
    expect(created.body.cost).toMatchObject({ credits: 400, estimated: true });
    const simulator = gw.simulator('kling3api');
    const taskId = simulator.tasks[0]!.id;
    // A running answer's 0 is no charge yet: the task keeps the create's 400 meanwhile...
    const running = { task_id: taskId, status: 'IN_PROGRESS', consumed_credits: 0 };
    simulator.injectFault({ on: 'status', status: 200, body: { code: 200, message: 'success', data: running } });
    for (let step = 0; step < 5; step++) await gw.advance(2_000);
    expect((await gw.get(created.body.id)).body.cost).toMatchObject({ credits: 400, estimated: true });
    // ...and at the end, when the last answer leaves the figure out, it is still the charge.
    const finished = { task_id: taskId, status: 'SUCCESS', response: ['https://cdn.example.com/videos/harbour.mp4'] };
    simulator.injectFault({ on: 'status', status: 200, times: 50, body: { code: 200, message: 'success', data: finished } });
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.cost).toEqual({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD' });
    const usage = (await gw.request('GET', '/v1/usage')).body;
    expect(usage.data).toEqual([expect.objectContaining({ succeeded: 1, credits: 400, currency_amount: 0.4, credits_reported: 400 })]);
  });

  it('keeps the legacy API\'s charge from a running answer when the final answer leaves final_unit_deduction out', async () => {
    gw = await startTestGateway({
      config: { sandbox: { processing_ms: 60_000 }, tenants: { acme: { budget: { amount: 10, currency: 'USD', period: 'month' } } } },
    });
    // The shipped placeholder estimates 4 units ($0.56) for 5 s pro; the upstream says 3.5 ($0.49).
    const created = await gw.create({ model: 'kling-v3', prompt: 'a quiet harbour', duration: 5, routing: { providers: ['kling-legacy'] } });
    expect(created.body.cost).toMatchObject({ credits: 4, estimated: true });
    const simulator = gw.simulator('kling-legacy');
    const taskId = simulator.tasks[0]!.id;
    const running = { task_id: taskId, task_status: 'processing', task_status_msg: '', final_unit_deduction: '3.5' };
    simulator.injectFault({ on: 'status', status: 200, body: { code: 0, message: 'SUCCEED', request_id: 'req-running', data: running } });
    await gw.advanceUntil(async () => simulator.requests.some((request) => request.method === 'GET'));
    expect((await gw.get(created.body.id)).body.cost).toEqual({ credits: 3.5, estimated: true, currency_amount: 0.49, currency: 'USD' });
    // The last answer, as an aggregator may send it: the result, no figure this time.
    const finished = {
      task_id: taskId,
      task_status: 'succeed',
      task_status_msg: '',
      task_result: { videos: [{ id: 'v1', url: 'https://cdn.example.com/videos/harbour.mp4', duration: '5' }] },
    };
    simulator.injectFault({ on: 'status', status: 200, times: 50, body: { code: 0, message: 'SUCCEED', request_id: 'req-done', data: finished } });
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.cost).toEqual({ credits: 3.5, estimated: false, currency_amount: 0.49, currency: 'USD' });
    const usage = (await gw.request('GET', '/v1/usage')).body;
    expect(usage.data).toEqual([
      expect.objectContaining({ succeeded: 1, credits: 3.5, currency_amount: 0.49, credits_reported: 3.5, credits_estimated: 0, tasks_reported: 1, drift_ratio: 0.875 }),
    ]);
    expect(usage.budgets[0]).toMatchObject({ spent: 0.49, reserved: 0 });
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toMatch(/kling_gateway_currency_spent_total\{provider="kling-legacy",account="default",model="kling-v3",currency="USD"\} 0\.49\n/);
    expect(metrics).toMatch(/kling_gateway_cost_drift_ratio_sum\{provider="kling-legacy",model="kling-v3"\} 0\.875\n/);
  });

  it('reads a charge only from decimal figures: "0x10", "0b11" or "Infinity" is no charge, and the figure the task had stands', async () => {
    gw = await startTestGateway({
      config: { sandbox: { processing_ms: 60_000 }, tenants: { acme: { budget: { amount: 10, currency: 'USD', period: 'month' } } } },
    });
    // Written as text (resellers are not careful with JSON types), a decimal figure is read...
    const legacyDone = (taskId: string, figure: string) => ({
      code: 0,
      message: 'SUCCEED',
      request_id: 'req-done',
      data: {
        task_id: taskId,
        task_status: 'succeed',
        task_status_msg: '',
        final_unit_deduction: figure,
        task_result: { videos: [{ id: 'video-1', url: 'https://cdn.example.com/harbour.mp4', duration: '5' }] },
      },
    });
    const legacy = gw.simulator('kling-legacy');
    const onLegacy = { model: 'kling-v3', prompt: 'a quiet harbour', duration: 5, routing: { providers: ['kling-legacy'] } };
    const decimal = await gw.create(onLegacy);
    legacy.injectFault({ on: 'status', status: 200, times: 1_000, body: legacyDone(legacy.tasks[0]!.id, ' 3.5 ') });
    expect((await gw.finish(decimal.body.id)).cost).toEqual({ credits: 3.5, estimated: false, currency_amount: 0.49, currency: 'USD' });
    // ...one in another base is no figure the upstream meant: the estimate (4 units) stands.
    for (const figure of ['0x10', '0b11', '0o7', 'Infinity']) {
      legacy.clearFaults();
      const created = await gw.create(onLegacy);
      legacy.injectFault({ on: 'status', status: 200, times: 1_000, body: legacyDone(legacy.tasks.at(-1)!.id, figure) });
      expect([figure, (await gw.finish(created.body.id)).cost]).toEqual([figure, { credits: 4, estimated: true, currency_amount: 0.56, currency: 'USD' }]);
    }
    // kling3api: the create's 400 stands when the last answer's figure is "0x10".
    const kling3api = gw.simulator('kling3api');
    const created = await gw.create({ ...onLegacy, routing: { providers: ['kling3api'] } });
    const finished = { task_id: kling3api.tasks[0]!.id, status: 'SUCCESS', consumed_credits: '0x10', response: ['https://cdn.example.com/videos/harbour.mp4'] };
    kling3api.injectFault({ on: 'status', status: 200, times: 1_000, body: { code: 200, message: 'success', data: finished } });
    expect((await gw.finish(created.body.id)).cost).toEqual({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD' });
    const usage = (await gw.request('GET', '/v1/usage')).body;
    expect(usage.budgets[0]).toMatchObject({ spent: 3.13, reserved: 0 });
  });

  it('keeps the estimate of a legacy task the deadline ends while its last answer still says final_unit_deduction 0', async () => {
    gw = await startTestGateway({
      config: {
        tasks: { deadline_ms: 10_000 },
        sandbox: { processing_ms: 600_000 },
        tenants: { acme: { budget: { amount: 10, currency: 'USD', period: 'month' } } },
      },
    });
    const created = await gw.create({ model: 'kling-v3', prompt: 'a quiet harbour', duration: 5, routing: { providers: ['kling-legacy'] } });
    expect(created.body.cost).toEqual({ credits: 4, estimated: true, currency_amount: 0.56, currency: 'USD' });
    const simulator = gw.simulator('kling-legacy');
    const running = { task_id: simulator.tasks[0]!.id, task_status: 'processing', task_status_msg: '', final_unit_deduction: '0' };
    simulator.injectFault({ on: 'status', status: 200, times: 1_000, body: { code: 0, message: 'SUCCEED', request_id: 'req-running', data: running } });
    const done = await gw.finish(created.body.id);
    expect(done).toMatchObject({ status: 'failed', error: { code: 'timeout' } });
    // The upstream still runs it and has charged nothing yet: no charge of 0 is certain, the estimate stands.
    expect(done.cost).toEqual({ credits: 4, estimated: true, currency_amount: 0.56, currency: 'USD' });
    const usage = (await gw.request('GET', '/v1/usage')).body;
    expect(usage.data).toEqual([expect.objectContaining({ failed: 1, credits: 4, credits_estimated: 4, credits_reported: 0, tasks_reported: 0 })]);
    expect(usage.budgets[0]).toMatchObject({ spent: 0.56, reserved: 0 });
  });

  it('counts kling3api\'s charge from the create as reported when the deadline ends the task while its status cannot be read', async () => {
    // Priced at 50/s here (an estimate of 250), where the upstream charges 80/s (400): the figures tell apart.
    const KLING3API_AT_50 = { providers: { kling3api: { pricing: { rules: [{ model: 'kling-v3', credits_per_second: 50 }] } } } };
    gw = await startTestGateway({ config: { ...KLING3API_AT_50, tasks: { deadline_ms: 10_000 }, sandbox: { processing_ms: 600_000 } } });
    const created = await gw.create({ model: 'kling-v3', prompt: 'a quiet harbour', duration: 5, routing: { providers: ['kling3api'] } });
    expect(created.body.cost).toEqual({ credits: 400, estimated: true, currency_amount: 0.4, currency: 'USD' });
    gw.simulator('kling3api').injectFault({ on: 'status', status: 503, times: 1_000 });
    const done = await gw.finish(created.body.id);
    expect(done).toMatchObject({ status: 'failed', error: { code: 'timeout' } });
    // The create's answer said 400 and no later answer took it back: the provider's figure.
    expect(done.cost).toEqual({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD' });
    const usage = (await gw.request('GET', '/v1/usage')).body;
    // A failure's charge is spend, but no measure of the price list: quote against actual leaves it out.
    expect(usage.data).toEqual([
      expect.objectContaining({ failed: 1, credits: 400, credits_reported: 400, credits_estimated: 0, tasks_reported: 1, drift_tasks: 0, drift_ratio: null }),
    ]);
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).not.toMatch(/kling_gateway_cost_drift_ratio_count\{provider="kling3api"/);
  });

  // 1e17 credits × $0.001 is $1e14: 1e20 millionths, past what money adds up exactly in (and
  // past a PostgreSQL bigint). An upstream that says so is not believed: the figure the task had stands.
  const stores: [string, boolean][] = [['SQLite', false], ...(postgres ? [['PostgreSQL', true] as [string, boolean]] : [])];
  it.each(stores)('does not take a charge too large to add up exactly (%s): the task ends, with the figure it had', async (_name, onPostgres) => {
    const schema = newSchemaName();
    const logs = capturedLogs();
    try {
      gw = await startTestGateway({
        logTo: logs.sink,
        ...(onPostgres ? { store: await openPostgresStore(schema) } : {}),
        config: { tenants: { acme: { budget: { amount: 100, currency: 'USD', period: 'month' } } } },
      });
      const created = await gw.create({ model: 'kling-v3', prompt: 'a quiet harbour', duration: 5, routing: { providers: ['kling3api'] } });
      expect(created.body.cost).toMatchObject({ credits: 400, currency_amount: 0.4 });
      const simulator = gw.simulator('kling3api');
      await gw.clock.advance(10_000);
      const finished = {
        task_id: simulator.tasks[0]!.id,
        status: 'SUCCESS',
        response: ['https://cdn.example.com/videos/harbour.mp4'],
        consumed_credits: 1e17,
      };
      simulator.injectFault({ on: 'status', status: 200, times: 50, body: { code: 200, message: 'success', data: finished } });
      const done = await gw.finish(created.body.id);
      expect(done.status).toBe('succeeded');
      // The create's own figure, still marked as not final.
      expect(done.cost).toEqual({ credits: 400, estimated: true, currency_amount: 0.4, currency: 'USD' });
      const usage = (await gw.request('GET', '/v1/usage')).body;
      expect(usage.data).toEqual([expect.objectContaining({ succeeded: 1, credits: 400, currency_amount: 0.4 })]);
      expect(usage.budgets[0]).toMatchObject({ spent: 0.4, reserved: 0 });
      expect(logs.text()).toMatch(/kling3api reported a charge of 100000000000000000 credits \(100000000000000 USD\).*not taken/);
    } finally {
      await gw?.close();
      if (onPostgres) await dropSchema(schema);
    }
  });

  it('prices a video an offering makes without sound at the silent price, though audio defaults to true', async () => {
    // A price list that charges for sound, as a plan may: 14 credits a second with it, 11.2 without.
    const audioPriced = {
      providers: {
        freepik: {
          pricing: {
            rules: [
              { model: 'kling-v3-omni', quality: 'pro', audio: true, credits_per_second: 14 },
              { model: 'kling-v3-omni', quality: 'pro', audio: false, credits_per_second: 11.2 },
            ],
          },
        },
        'kling-legacy': {
          pricing: {
            rules: [
              { model: 'kling-v2-5-turbo', audio: true, credits_per_second: 1 },
              { model: 'kling-v2-5-turbo', audio: false, credits_per_second: 0.5 },
            ],
          },
        },
      },
    };
    gw = await startTestGateway({ config: audioPriced });
    // Freepik's video-reference Omni takes no sound: the video it makes is silent.
    const reference = { model: 'kling-v3-omni', prompt: 'in the style of @Video1', reference_video_url: 'https://example.com/clip.mp4', duration: 5 };
    const quote = await gw.request('POST', '/v1/videos/quote', { ...reference, routing: { providers: ['freepik'] } });
    expect(quote.body.providers[0]).toMatchObject({ provider: 'freepik', eligible: true, estimated_credits: 56, estimated_cost: 0.56 });
    const created = await gw.create({ ...reference, routing: { providers: ['freepik'] } });
    expect(created.body.warnings?.join(' ') ?? '').toMatch(/audio defaults to true/);
    expect(created.body.cost).toEqual({ credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' });
    // The legacy kling-v2-5-turbo makes silent video only.
    const turbo = { model: 'kling-v2-5-turbo', prompt: 'a quiet harbour', duration: 10, routing: { providers: ['kling-legacy'] } };
    const legacy = await gw.create(turbo);
    expect(legacy.body.cost).toEqual({ credits: 5, estimated: true, currency_amount: 0.7, currency: 'USD' });
    // Asked for explicitly, sound is priced as asked where the offering makes it.
    const withSound = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3-omni', prompt: 'a harbour', duration: 5, audio: true, routing: { providers: ['freepik'] } });
    expect(withSound.body.providers[0]).toMatchObject({ eligible: true, estimated_credits: 70, estimated_cost: 0.7 });
  });

  it('max_credits leaves out providers over budget or without a price', async () => {
    gw = await startTestGateway({ config: LEGACY_UNPRICED });
    const created = await gw.create({ model: 'kling-v3', prompt: 'budget', duration: 5, routing: { max_credits: 100 } });
    // Freepik estimates 56 credits; kling3api 400 (over); legacy has no price in the test config.
    expect(created.body.provider).toBe('freepik');
    const refused = await gw.create({ model: 'kling-v3', prompt: 'budget', duration: 5, routing: { max_credits: 10 } });
    expect(refused.status).toBe(422);
    expect(JSON.stringify(refused.body.providers)).toMatch(/exceeds max_credits 10/);
    // A provider that does not serve the request at all gives that reason alone, not a price one.
    const legacyOnly = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v2-6', prompt: 'budget', duration: 5, routing: { max_credits: 100 } });
    const freepik = legacyOnly.body.providers.find((p: { provider: string }) => p.provider === 'freepik');
    expect(freepik.reasons).toEqual([expect.stringMatching(/^does not serve text-to-video with kling-v2-6/)]);
  });

  it('values a charge reported after the price list changed currency in the currency of the credit value it uses, the old one', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
    const database = tempDatabaseUrl();
    const common = { clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators };
    try {
      const before = await startTestGateway({ ...common, config: { database: { url: database } } });
      const created = await before.create({ model: 'kling-v3', prompt: 'a quiet harbour', duration: 5, routing: { providers: ['kling3api'] } });
      expect(created.body.cost).toEqual({ credits: 400, estimated: true, currency_amount: 0.4, currency: 'USD' });
      await before.close();
      // The operator now pays kling3api in euros. The task keeps the credit value it was priced at (USD 0.001)...
      const euros = { providers: { kling3api: { pricing: { currency: 'EUR', credit_value: 0.0009 } } } };
      gw = await startTestGateway({ ...common, config: { database: { url: database }, ...euros } });
      const done = await gw.finish(created.body.id);
      expect(done.status).toBe('succeeded');
      // ...so the 400 credits are USD 0.40, not "EUR 0.40".
      expect(done.cost).toEqual({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD' });
      const usage = (await gw.request('GET', '/v1/usage')).body;
      expect(usage.data).toEqual([expect.objectContaining({ currency: 'USD', currency_amount: 0.4 })]);
    } finally {
      await sandbox.close();
    }
  });

  it('adds up money and credits in the metrics exactly, as usage does, not with floating-point dust', async () => {
    gw = await startTestGateway();
    // kling-v3 std, 7 s on the legacy API: one fails (the estimate, 4.2 units, $0.588), one is charged 2.1 units ($0.294).
    const body = { model: 'kling-v3', quality: 'std', prompt: 'a tide pool', duration: 7, routing: { providers: ['kling-legacy'] } };
    gw.simulator('kling-legacy').setOutcome('fail');
    const failed = await gw.finish((await gw.create(body)).body.id);
    const charged = await gw.finish((await gw.create(body)).body.id);
    expect([failed.cost.currency_amount, charged.cost.currency_amount]).toEqual([0.588, 0.294]);
    const usage = (await gw.request('GET', '/v1/usage')).body;
    expect(usage.data).toEqual([expect.objectContaining({ credits: 6.3, currency_amount: 0.882 })]);
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toMatch(/^kling_gateway_credits_spent_total\{provider="kling-legacy",account="default",model="kling-v3"\} 6\.3$/m);
    expect(metrics).toMatch(/^kling_gateway_currency_spent_total\{provider="kling-legacy",account="default",model="kling-v3",currency="USD"\} 0\.882$/m);
  });

  it('adds up spending in the metrics by provider and model', async () => {
    gw = await startTestGateway();
    const created = await gw.create({ model: 'kling-v3', prompt: 'spend', duration: 5, routing: { providers: ['kling3api'] } });
    await gw.finish(created.body.id);
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toMatch(/kling_gateway_credits_spent_total\{provider="kling3api",account="default",model="kling-v3"\} 400/);
    expect(metrics).toMatch(/kling_gateway_currency_spent_total\{provider="kling3api",account="default",model="kling-v3",currency="USD"\} 0\.4/);
    expect(metrics).toMatch(/kling_gateway_tasks_finished_total\{provider="kling3api",model="kling-v3",status="succeeded",error_code=""\} 1/);
  });
});

describe('GET /v1/models', () => {
  it('lists every operation of the three providers with who serves it', async () => {
    gw = await startTestGateway();
    const models = await gw.request('GET', '/v1/models');
    expect(models.status).toBe(200);
    const served = new Set<string>();
    const providersOf = (model: string, operation: string) =>
      models.body.data
        .find((m: { model: string }) => m.model === model)
        ?.operations.find((o: { operation: string }) => o.operation === operation)
        ?.providers.map((p: { provider: string }) => p.provider);
    for (const model of models.body.data) {
      for (const operation of model.operations) served.add(operation.operation);
    }
    expect([...served].sort()).toEqual([...OPERATIONS].sort());
    expect(providersOf('kling-v3', 'text-to-video')).toEqual(['freepik', 'kling3api', 'kling-legacy']);
    expect(providersOf('kling-v3-omni', 'video-edit')).toEqual(['kling3api']);
    expect(providersOf('kling-v3-omni', 'reference-to-video')).toEqual(expect.arrayContaining(['freepik', 'kling3api']));
    expect(providersOf('kling-v1-6', 'video-extend')).toEqual(['kling-legacy']);
    expect(providersOf('kolors-virtual-try-on-v1', 'virtual-try-on')).toEqual(['kling-legacy']);
    const freepikT2v = models.body.data
      .find((m: { model: string }) => m.model === 'kling-v3')
      .operations.find((o: { operation: string }) => o.operation === 'text-to-video')
      .providers.find((p: { provider: string }) => p.provider === 'freepik');
    expect(freepikT2v.fields.cfg_scale).toEqual({ min: 0, max: 2 });
    // No one field is required there, but one of prompt and multi_shot is (what a quote without either says).
    expect(freepikT2v.required_one_of).toEqual([['prompt', 'multi_shot']]);
    const refused = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', duration: 5, routing: { providers: ['freepik'] } });
    expect(refused.body.providers.find((p: { provider: string }) => p.provider === 'freepik').reasons).toContain('prompt or multi_shot is required for kling-v3 text-to-video');
  });
});

describe('a provider disabled in config', () => {
  it('is listed as disabled, never called, and named as the reason in quotes and 422s', async () => {
    gw = await startTestGateway({ config: { providers: { freepik: { enabled: false } } } });
    const providers = await gw.request('GET', '/v1/providers');
    expect(providers.body.data.find((p: { id: string }) => p.id === 'freepik')).toMatchObject({ enabled: false, mode: 'disabled' });
    const created = await gw.create({ model: 'kling-v3', prompt: 'no freepik', duration: 5 });
    expect(created.body.provider).toBe('kling3api');
    expect(created.body.attempts.map((a: { provider: string }) => a.provider)).toEqual(['kling3api']);
    const refused = await gw.create({ model: 'kling-v3', prompt: 'only freepik', routing: { providers: ['freepik'] } });
    expect(refused.status).toBe(422);
    expect(refused.body.providers.find((p: { provider: string }) => p.provider === 'freepik').reasons).toContain('disabled in configuration');
    const models = await gw.request('GET', '/v1/models');
    const v3 = models.body.data.find((m: { model: string }) => m.model === 'kling-v3');
    const t2v = v3.operations.find((o: { operation: string }) => o.operation === 'text-to-video');
    expect(t2v.providers.find((p: { provider: string }) => p.provider === 'freepik').enabled).toBe(false);
  });
});
