/**
 * `GET /v1/usage` over real HTTP against the simulators, whose charges are known: Freepik reports
 * none (the estimate stands), kling3api reports `consumed_credits` from its credit table, the
 * legacy API reports `final_unit_deduction` (3.5 units for 5 s of kling-v3 pro, against a price
 * list that estimates 4). The report and the metrics must agree with them to the cent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { UsageReportSchema, UsageRow } from '../../src/http/api-schemas.js';
import { eastWestKling3api, type MultiKeyKling3api } from '../support/multi-key-upstream.js';
import { OTHER_TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

let gw: TestGateway | undefined;
const postgres = await postgresAvailable();
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

/** The legacy API priced at 0.8 units/s × $0.14 (an estimate of 4 units for 5 s) where it charges 3.5. */
const LEGACY_PRICES = {
  providers: {
    'kling-legacy': {
      pricing: {
        currency: 'USD',
        credit_value: 0.14,
        rules: [{ model: 'kling-v3', quality: 'pro', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.8 }],
      },
    },
  },
};

const video = (provider: string, extra: Record<string, unknown> = {}) => ({
  model: 'kling-v3',
  prompt: `a paper boat on ${provider}`,
  duration: 5,
  routing: { providers: [provider] },
  ...extra,
});

async function runAll(test: TestGateway, bodies: Record<string, unknown>[]): Promise<any[]> {
  const created = [];
  for (const body of bodies) created.push((await test.create(body)).body);
  const done = [];
  for (const task of created) done.push(await test.finish(task.id));
  return done;
}

function metricValue(metrics: string, series: string): number | undefined {
  const line = metrics.split('\n').find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /v1/usage: the provider comparison', () => {
  it('adds up each provider to the cent: known charges, estimates where none is reported, failures that were charged', async () => {
    gw = await startTestGateway({ config: LEGACY_PRICES });
    const finished = await runAll(gw, [video('freepik'), video('kling3api'), video('kling-legacy')]);
    gw.simulator('kling3api').setOutcome('fail');
    const [failed] = await runAll(gw, [video('kling3api', { prompt: 'this one fails' })]);
    expect(failed.status).toBe('failed');
    // kling3api still reports what it charged for the failed task (its credits are not refunded).
    expect(failed.cost).toEqual({ credits: 400, estimated: false, currency_amount: 0.4, currency: 'USD' });

    const usage = await gw.request('GET', '/v1/usage?group_by=provider');
    expect(usage.status).toBe(200);
    expect(usage.body).toMatchObject({ object: 'usage', group_by: ['provider'], tenant: 'acme', from: '2026-11-01T00:00:00.000Z' });
    // The OpenAPI document describes exactly what comes back (the console and CLI read it).
    expect(UsageReportSchema.safeParse(usage.body).success).toBe(true);
    for (const entry of usage.body.data) expect(UsageRow.strict().safeParse(entry).error).toBeUndefined();
    const row = (provider: string) => usage.body.data.find((entry: { provider: string }) => entry.provider === provider);
    const durationOf = (task: any) => Date.parse(task.completed_at) - Date.parse(task.created_at);
    expect(usage.body.data.map((entry: { provider: string }) => entry.provider)).toEqual(['freepik', 'kling-legacy', 'kling3api']);
    expect(row('freepik')).toEqual({
      provider: 'freepik',
      currency: 'USD',
      tasks: 1,
      succeeded: 1,
      failed: 0,
      canceled: 0,
      in_progress: 0,
      video_seconds: 5,
      credits: 56,
      currency_amount: 0.56,
      credits_estimated: 56,
      credits_reported: 0,
      currency_amount_estimated: 0.56,
      currency_amount_reported: 0,
      tasks_reported: 0,
      cost_per_second: 0.112,
      success_rate: 1,
      median_time_to_complete_ms: durationOf(finished[0]),
      drift_tasks: 0,
      drift_estimated_credits: 0,
      drift_reported_credits: 0,
      drift_ratio: null,
      tasks_at_risk: 0,
      credits_at_risk: 0,
      currency_amount_at_risk: 0,
    });
    expect(row('kling3api')).toMatchObject({
      tasks: 2,
      succeeded: 1,
      failed: 1,
      video_seconds: 5,
      credits: 800,
      currency_amount: 0.8,
      credits_reported: 800,
      currency_amount_reported: 0.8,
      currency_amount_estimated: 0,
      tasks_reported: 2,
      // Both charges over the 5 s delivered: a provider that bills its failures costs that much
      // more per second of video.
      cost_per_second: 0.16,
      success_rate: 0.5,
      median_time_to_complete_ms: durationOf(finished[1]),
      // Quote against actual counts the delivered video only: the failure's charge is no price.
      drift_tasks: 1,
      drift_estimated_credits: 400,
      drift_reported_credits: 400,
      drift_ratio: 1,
    });
    expect(row('kling-legacy')).toMatchObject({
      tasks: 1,
      succeeded: 1,
      video_seconds: 5,
      credits: 3.5,
      currency_amount: 0.49,
      credits_reported: 3.5,
      cost_per_second: 0.098,
      drift_tasks: 1,
      drift_estimated_credits: 4,
      drift_reported_credits: 3.5,
      drift_ratio: 0.875,
    });

    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    const spent = (provider: string) => ({
      credits: metricValue(metrics, `kling_gateway_credits_spent_total{provider="${provider}",account="default",model="kling-v3"}`),
      currency: metricValue(metrics, `kling_gateway_currency_spent_total{provider="${provider}",account="default",model="kling-v3",currency="USD"}`),
      seconds: metricValue(metrics, `kling_gateway_video_seconds_total{provider="${provider}",model="kling-v3"}`),
    });
    expect(spent('freepik')).toEqual({ credits: 56, currency: 0.56, seconds: 5 });
    expect(spent('kling3api')).toEqual({ credits: 800, currency: 0.8, seconds: 5 });
    expect(spent('kling-legacy')).toEqual({ credits: 3.5, currency: 0.49, seconds: 5 });
    // Quote against actual: the legacy price list estimates 4 units where 3.5 are charged.
    const drift = (suffix: 'sum' | 'count', provider: string) =>
      metricValue(metrics, `kling_gateway_cost_drift_ratio_${suffix}{provider="${provider}",model="kling-v3"}`);
    expect(drift('sum', 'kling-legacy')).toBe(0.875);
    expect(drift('count', 'kling-legacy')).toBe(1);
    expect(metricValue(metrics, 'kling_gateway_cost_drift_ratio_bucket{le="0.75",provider="kling-legacy",model="kling-v3"}')).toBe(0);
    expect(metricValue(metrics, 'kling_gateway_cost_drift_ratio_bucket{le="0.9",provider="kling-legacy",model="kling-v3"}')).toBe(1);
    expect(drift('sum', 'kling3api')).toBe(1);
    expect(drift('count', 'kling3api')).toBe(1);
    // Freepik reports no charge: nothing to compare.
    expect(drift('count', 'freepik')).toBeUndefined();
  });

  it('measures quote against actual as the drift metric does: a task estimated at 0 credits gives no ratio to count', async () => {
    // A free estimate (a promotion priced at 0 per task) of a video the legacy API charges 3.5
    // units for, beside an exact estimate (1.5 units for 5 s std, as charged).
    gw = await startTestGateway({
      config: {
        providers: {
          'kling-legacy': {
            pricing: {
              currency: 'USD',
              credit_value: 0.14,
              rules: [
                { model: 'kling-v3', quality: 'pro', credits_per_task: 0 },
                { model: 'kling-v3', quality: 'std', credits_per_second: 0.3 },
              ],
            },
          },
        },
      },
    });
    const [free, exact] = await runAll(gw, [video('kling-legacy'), video('kling-legacy', { quality: 'std', prompt: 'std' })]);
    expect([free.cost.credits, exact.cost.credits]).toEqual([3.5, 1.5]);
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    const drift = (suffix: 'sum' | 'count') => metricValue(metrics, `kling_gateway_cost_drift_ratio_${suffix}{provider="kling-legacy",model="kling-v3"}`);
    expect([drift('count'), drift('sum')]).toEqual([1, 1]);
    const usage = (await gw.request('GET', '/v1/usage?group_by=provider,model')).body;
    // Both charges are spend; only the task with an estimate to divide by is a measure of the price list.
    expect(usage.data).toEqual([
      expect.objectContaining({ succeeded: 2, credits: 5, drift_tasks: 1, drift_estimated_credits: 1.5, drift_reported_credits: 1.5, drift_ratio: 1 }),
    ]);
  });

  it('totals per currency without group_by, and counts unfinished tasks without their money', async () => {
    gw = await startTestGateway({ config: LEGACY_PRICES });
    await runAll(gw, [video('freepik'), video('kling3api')]);
    await gw.create(video('kling3api', { prompt: 'still running' }));
    const usage = await gw.request('GET', '/v1/usage');
    expect(usage.body.data).toHaveLength(1);
    expect(usage.body.data[0]).toMatchObject({
      currency: 'USD',
      tasks: 3,
      succeeded: 2,
      in_progress: 1,
      credits: 456,
      currency_amount: 0.96,
      video_seconds: 10,
    });
    expect(usage.body.data[0]).not.toHaveProperty('provider');
  });

  it('counts no made-up seconds for a video whose length neither the provider nor the request says (a kling3api edit, "auto")', async () => {
    gw = await startTestGateway();
    const edit = { model: 'kling-v3-omni', prompt: 'snow on the hills', video_url: 'https://example.com/source.mp4', routing: { providers: ['kling3api'] } };
    const [done] = await runAll(gw, [edit]);
    expect(done).toMatchObject({ status: 'succeeded', operation: 'video-edit', cost: { credits: 435, currency_amount: 0.435 } });
    expect(done.outputs.map((output: { duration: number | null }) => output.duration)).toEqual([null]);
    const usage = await gw.request('GET', '/v1/usage?group_by=operation');
    // The edit is as long as its source, which the gateway never learns: not 5 s, and no cost per second.
    expect(usage.body.data).toEqual([
      expect.objectContaining({ operation: 'video-edit', succeeded: 1, currency_amount: 0.435, video_seconds: 0, cost_per_second: null }),
    ]);
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toMatch(/^kling_gateway_video_seconds_total\{provider="kling3api",model="kling-v3-omni"\} 0$/m);
  });

  it('rounds a cost per second half-way between two millionths up, as a task\'s cost rounds', async () => {
    // Freepik at 35 credits a task × $0.000001: $0.000035 for 10 s, 0.0000035 a second.
    const pricing = { currency: 'USD', credit_value: 0.000001, rules: [{ credits_per_task: 35 }] };
    gw = await startTestGateway({ config: { providers: { freepik: { pricing } } } });
    const [done] = await runAll(gw, [video('freepik', { duration: 10 })]);
    expect(done).toMatchObject({ status: 'succeeded', cost: { credits: 35, currency_amount: 0.000035 } });
    const usage = await gw.request('GET', '/v1/usage?group_by=provider');
    expect(usage.body.data).toEqual([expect.objectContaining({ provider: 'freepik', currency_amount: 0.000035, video_seconds: 10, cost_per_second: 0.000004 })]);
  });

  const stores: [string, boolean][] = [['SQLite', false], ...(postgres ? [['PostgreSQL', true] as [string, boolean]] : [])];
  it.each(stores)(
    'gives the cost of a second from the tasks that counted seconds only, when a row also has an edit of no known length (%s)',
    async (_name, onPostgres) => {
      const schema = newSchemaName();
      try {
        gw = await startTestGateway(onPostgres ? { store: await openPostgresStore(schema) } : {});
        const edit = { model: 'kling-v3-omni', prompt: 'snow on the hills', video_url: 'https://example.com/source.mp4', routing: { providers: ['kling3api'] } };
        // 5 s at 80 credits/s × $0.001 ($0.40), and an edit of 435 credits ($0.435) whose length nobody knows.
        const done = await runAll(gw, [video('kling3api'), edit]);
        expect(done.map((task) => [task.status, task.cost.currency_amount])).toEqual([['succeeded', 0.4], ['succeeded', 0.435]]);
        const usage = await gw.request('GET', '/v1/usage?group_by=provider');
        // $0.40 for 5 s, not the whole $0.835 over those 5 s.
        expect(usage.body.data).toEqual([
          expect.objectContaining({ provider: 'kling3api', succeeded: 2, currency_amount: 0.835, video_seconds: 5, cost_per_second: 0.08 }),
        ]);
        const csv = await gw.request('GET', '/v1/usage?group_by=provider&format=csv');
        const [header, line] = (csv.body as string).trim().split('\r\n');
        const cells = Object.fromEntries(line!.split(',').map((value, index) => [header!.split(',')[index], value]));
        expect(cells).toMatchObject({ provider: 'kling3api', currency_amount: '0.835', video_seconds: '5', cost_per_second: '0.08' });
      } finally {
        await gw?.close();
        gw = undefined;
        if (onPostgres) await dropSchema(schema);
      }
    },
  );

  it.each(stores)(
    'measures quote against actual over succeeded tasks only: an exact price list reads 1 beside a refunded failure (%s)',
    async (_name, onPostgres) => {
      const schema = newSchemaName();
      try {
        gw = await startTestGateway(onPostgres ? { store: await openPostgresStore(schema) } : {});
        // Four videos priced exactly (kling3api estimates and charges 400 credits for 5 s) ...
        const done = await runAll(gw, [video('kling3api'), video('kling3api'), video('kling3api'), video('kling3api')]);
        expect(done.map((task) => [task.status, task.cost.credits, task.cost.estimated])).toEqual(Array(4).fill(['succeeded', 400, false]));
        // ... and a fifth that fails and is refunded: a charge of 0, which says nothing of the price list.
        const kling3api = gw.simulator('kling3api');
        const created = await gw.create(video('kling3api', { prompt: 'refunded' }));
        const refunded = { task_id: kling3api.tasks.at(-1)!.id, status: 'FAILED', error_message: 'Generation failed', consumed_credits: 0 };
        kling3api.injectFault({ on: 'status', status: 200, times: 1_000, body: { code: 200, message: 'success', data: refunded } });
        expect(await gw.finish(created.body.id)).toMatchObject({ status: 'failed', cost: { credits: 0, estimated: false } });

        const usage = await gw.request('GET', '/v1/usage?group_by=provider');
        expect(usage.body.data).toEqual([
          expect.objectContaining({
            provider: 'kling3api',
            succeeded: 4,
            failed: 1,
            drift_tasks: 4,
            drift_estimated_credits: 1600,
            drift_reported_credits: 1600,
            drift_ratio: 1,
          }),
        ]);
        const csv = await gw.request('GET', '/v1/usage?group_by=provider&format=csv');
        const [header, line] = (csv.body as string).trim().split('\r\n');
        const cells = Object.fromEntries(line!.split(',').map((value, index) => [header!.split(',')[index], value]));
        expect(cells).toMatchObject({ provider: 'kling3api', drift_tasks: '4', drift_ratio: '1' });
        const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
        const drift = (suffix: 'sum' | 'count') => metricValue(metrics, `kling_gateway_cost_drift_ratio_${suffix}{provider="kling3api",model="kling-v3"}`);
        expect([drift('count'), drift('sum')]).toEqual([4, 4]);
      } finally {
        await gw?.close();
        gw = undefined;
        if (onPostgres) await dropSchema(schema);
      }
    },
  );

  it('groups by model, operation, quality and day', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    gw = await startTestGateway({ clock, config: LEGACY_PRICES });
    await runAll(gw, [video('freepik'), video('freepik', { quality: 'std' })]);
    await gw.advance(24 * 3600_000);
    await runAll(gw, [video('freepik', { start_image_url: 'https://example.com/first-frame.png' })]);
    const usage = await gw.request('GET', '/v1/usage?group_by=day,model,operation,quality');
    expect(
      usage.body.data.map((row: any) => [row.day, row.model, row.operation, row.quality, row.tasks, row.currency_amount]),
    ).toEqual([
      ['2026-11-22', 'kling-v3', 'text-to-video', 'pro', 1, 0.56],
      ['2026-11-22', 'kling-v3', 'text-to-video', 'std', 1, 0.42],
      ['2026-11-23', 'kling-v3', 'image-to-video', 'pro', 1, 0.56],
    ]);
    // from is inclusive, to exclusive; a bare date is midnight UTC.
    const secondDay = await gw.request('GET', '/v1/usage?group_by=day&from=2026-11-23&to=2026-11-24');
    expect(secondDay.body.data.map((row: any) => [row.day, row.tasks])).toEqual([['2026-11-23', 1]]);
    const firstDay = await gw.request('GET', '/v1/usage?from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00%2B00:00');
    expect(firstDay.body.data[0]).toMatchObject({ tasks: 2, currency_amount: 0.98 });
    expect(firstDay.body).toMatchObject({ from: '2026-11-22T00:00:00.000Z', to: '2026-11-23T00:00:00.000Z' });
  });

  it('answers text/csv with format=csv: a header, then one line per row', async () => {
    gw = await startTestGateway({ config: LEGACY_PRICES });
    await runAll(gw, [video('freepik'), video('kling-legacy')]);
    const csv = await gw.request('GET', '/v1/usage?group_by=provider&format=csv');
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="usage-2026-11-01-2026-11-23\.csv"$/);
    const [header, ...lines] = (csv.body as string).trim().split('\r\n');
    const columns = header!.split(',');
    expect(columns.slice(0, 6)).toEqual(['provider', 'currency', 'tasks', 'succeeded', 'failed', 'canceled']);
    const rows = lines.map((line) => Object.fromEntries(line.split(',').map((value, index) => [columns[index], value])));
    expect(rows.map((row) => [row.provider, row.currency_amount, row.drift_ratio])).toEqual([
      ['freepik', '0.56', ''],
      ['kling-legacy', '0.49', '0.875'],
    ]);
  });

  it('names in its API document every column the CSV has, in order, down to the money at risk', async () => {
    gw = await startTestGateway({ config: LEGACY_PRICES });
    await runAll(gw, [video('freepik')]);
    const csv = await gw.request('GET', '/v1/usage?group_by=provider&format=csv');
    const header = (csv.body as string).split('\r\n')[0]!.split(',');
    const document = (await gw.request('GET', '/openapi.json', undefined, {}, null)).body;
    const said: string = document.paths['/v1/usage'].get.responses['200'].content['text/csv'].schema.description;
    // What a reader of the document takes the columns after the group keys to be.
    const named = [...said.slice(said.indexOf('then')).matchAll(/`([a-z_]+)`/g)].map((match) => match[1]);
    expect(header[0]).toBe('provider');
    expect(named).toEqual(header.slice(1));
  });

  it('keeps CSV cells from being read as spreadsheet formulas: a text cell starting with = + - @ gets a leading quote', async () => {
    // Tenant names are free text in GATEWAY_API_KEYS; "@ops" or "-qa" opened in a spreadsheet
    // would be taken for a formula (Excel, LibreOffice and Sheets start one at = + - @).
    const apiKeys = `acme:acme-secret-key,other:${OTHER_TENANT_KEY},@ops:ops-secret-key,=HYPERLINK("x.example";"a"):formula-secret-key,-qa:qa-secret-key`;
    gw = await startTestGateway({ config: { auth: { api_keys: apiKeys }, tenants: { other: { admin: true } } } });
    for (const key of ['ops-secret-key', 'formula-secret-key', 'qa-secret-key']) {
      expect((await gw.request('POST', '/v1/videos', video('freepik'), {}, key)).status).toBe(202);
    }
    const csv = await gw.request('GET', '/v1/usage?group_by=tenant&format=csv', undefined, {}, OTHER_TENANT_KEY);
    expect(csv.status).toBe(200);
    const lines = (csv.body as string).trim().split('\r\n').slice(1);
    expect(lines.map((line) => line.slice(0, line.indexOf(',USD,')))).toEqual([
      "'-qa",
      "'@ops",
      '"\'=HYPERLINK(""x.example"";""a"")"',
    ]);
    // Numbers stay numbers; the JSON answer keeps the names as they are.
    expect(lines[0]).toMatch(/,USD,1,0,0,0,1,0,0,/);
    const json = await gw.request('GET', '/v1/usage?group_by=tenant', undefined, {}, OTHER_TENANT_KEY);
    expect(json.body.data.map((row: any) => row.tenant)).toEqual(['-qa', '@ops', '=HYPERLINK("x.example";"a")']);
  });

  it('shows only the caller\'s tenant', async () => {
    gw = await startTestGateway();
    await runAll(gw, [video('freepik')]);
    const other = await gw.request('GET', '/v1/usage', undefined, {}, OTHER_TENANT_KEY);
    expect(other.body).toMatchObject({ tenant: 'other', data: [] });
    const forbidden = await gw.request('GET', '/v1/usage?tenant=acme', undefined, {}, OTHER_TENANT_KEY);
    expect(forbidden.status).toBe(403);
    const byTenant = await gw.request('GET', '/v1/usage?group_by=tenant', undefined, {}, OTHER_TENANT_KEY);
    expect(byTenant.status).toBe(403);
    expect(byTenant.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('gives an admin key every tenant, grouped by tenant on request', async () => {
    gw = await startTestGateway({ config: { tenants: { other: { admin: true } } } });
    await runAll(gw, [video('freepik')]);
    await gw.request('POST', '/v1/videos', video('kling3api'), {}, OTHER_TENANT_KEY);
    const all = await gw.request('GET', '/v1/usage?group_by=tenant,provider', undefined, {}, OTHER_TENANT_KEY);
    expect(all.status).toBe(200);
    expect(all.body.tenant).toBeNull();
    expect(all.body.data.map((row: any) => [row.tenant, row.provider, row.tasks])).toEqual([
      ['acme', 'freepik', 1],
      ['other', 'kling3api', 1],
    ]);
    const one = await gw.request('GET', '/v1/usage?tenant=acme', undefined, {}, OTHER_TENANT_KEY);
    expect(one.body).toMatchObject({ tenant: 'acme', data: [{ tasks: 1, currency_amount: 0.56 }] });
  });

  it.each([
    ['an unknown parameter', 'colour=red', 'colour'],
    ['an unknown group key', 'group_by=provider,colour', 'group_by'],
    ['a repeated group key', 'group_by=day,day', 'group_by'],
    ['a date that is not ISO', 'from=22/11/2026', 'from'],
    ['a date-time without a zone', 'to=2026-11-22T10:00:00', 'to'],
    ['from after to', 'from=2026-11-23&to=2026-11-22', 'to'],
    ['an unknown format', 'format=xml', 'format'],
    ['a repeated parameter', 'group_by=day&group_by=model', 'group_by'],
  ])('refuses %s with 400 problem details', async (_name, query, path) => {
    gw ??= await startTestGateway();
    const answer = await gw.request('GET', `/v1/usage?${query}`);
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.body.errors.map((error: { path: string }) => error.path)).toContain(path);
  });

  it('names the default a refused range was made with when the caller gave only one end of it', async () => {
    gw ??= await startTestGateway();
    // 2026-11-22 by the test clock: "up to October" meets the default from, the 1st of November.
    const upToOctober = await gw.request('GET', '/v1/usage?to=2026-10-01');
    expect(upToOctober.status).toBe(400);
    expect(upToOctober.body.errors).toEqual([
      {
        path: 'to',
        message: 'must be after from, which was not given and defaults to the first of the current UTC month, 2026-11-01T00:00:00.000Z: give from too',
      },
    ]);
    const fromTomorrow = await gw.request('GET', '/v1/usage?from=2026-11-23T00:00:00Z');
    expect(fromTomorrow.status).toBe(400);
    expect(fromTomorrow.body.errors).toEqual([
      {
        path: 'from',
        message: 'must be before to, which was not given and defaults to the end of the current UTC day, 2026-11-23T00:00:00.000Z: give to too',
      },
    ]);
  });

  it('says what a refused date was, and that a "+" sent unencoded in a query reads as a space', async () => {
    gw ??= await startTestGateway();
    const wrong = await gw.request('GET', '/v1/usage?from=22/11/2026');
    expect(wrong.body.errors).toEqual([
      { path: 'from', message: 'expected YYYY-MM-DD (00:00 UTC) or an ISO 8601 date-time with a zone, got "22/11/2026"' },
    ]);
    // As README's `2026-11-22T10:00+01:00` typed into a URL arrives.
    const unencoded = await gw.request('GET', '/v1/usage?to=2026-11-22T10:00+01:00');
    expect(unencoded.status).toBe(400);
    expect(unencoded.body.errors).toEqual([
      {
        path: 'to',
        message: 'expected YYYY-MM-DD (00:00 UTC) or an ISO 8601 date-time with a zone, got "2026-11-22T10:00 01:00": a "+" in a URL query reads as a space, send it as %2B',
      },
    ]);
  });

  it('takes from and to as ISO 8601 date-times with a zone, seconds left out or not', async () => {
    gw ??= await startTestGateway();
    const answer = await gw.request('GET', '/v1/usage?from=2026-11-22T10:00%2B01:00&to=2026-11-22T12:00:30Z');
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ from: '2026-11-22T09:00:00.000Z', to: '2026-11-22T12:00:30.000Z' });
  });

  it('needs a gateway key, and is counted under its own route in the HTTP metrics', async () => {
    gw = await startTestGateway();
    expect((await gw.request('GET', '/v1/usage', undefined, {}, null)).status).toBe(401);
    expect((await gw.request('GET', '/v1/usage?group_by=day')).status).toBe(200);
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toMatch(/kling_gateway_http_requests_total\{method="GET",route="\/v1\/usage",status="200"\} 1/);
  });
});

describe('dated prices', () => {
  it('prices each task by the rules in effect when it was created, even when it finishes after a change', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 30, 23, 59, 58));
    gw = await startTestGateway({
      clock,
      config: {
        providers: {
          freepik: {
            pricing: {
              rules: [
                { model: 'kling-v3', quality: 'pro', credits_per_second: 11.2 },
                { model: 'kling-v3', quality: 'pro', credits_per_second: 12, effective_from: '2026-12-01' },
              ],
            },
          },
        },
      },
    });
    const before = await gw.create(video('freepik'));
    expect(before.body.cost).toMatchObject({ credits: 56, currency_amount: 0.56 });
    await gw.advance(2_000);
    const after = await gw.create(video('freepik'));
    expect(after.body.cost).toMatchObject({ credits: 60, currency_amount: 0.6 });
    expect((await gw.finish(before.body.id)).cost).toMatchObject({ credits: 56, currency_amount: 0.56 });
    const usage = await gw.request('GET', '/v1/usage?group_by=day&from=2026-11-30&to=2026-12-02');
    // The December task is still running: counted, with no money until it finishes.
    expect(usage.body.data.map((row: any) => [row.day, row.in_progress, row.currency_amount])).toEqual([
      ['2026-11-30', 0, 0.56],
      ['2026-12-01', 1, 0],
    ]);
    await gw.finish(after.body.id);
    const both = await gw.request('GET', '/v1/usage?group_by=day&from=2026-11-30&to=2026-12-02');
    expect(both.body.data.map((row: any) => [row.day, row.currency_amount])).toEqual([
      ['2026-11-30', 0.56],
      ['2026-12-01', 0.6],
    ]);
  });
});

describe('usage per provider account', () => {
  let upstream: MultiKeyKling3api | undefined;
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
    await upstream?.close();
    upstream = undefined;
  });

  it("splits each provider's spend by the account that took the task (each account is its own invoice), in JSON and CSV", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const twoAccounts = await eastWestKling3api(clock, { east: 1, west: 1 });
    upstream = twoAccounts.upstream;
    gw = await startTestGateway({ clock, config: { providers: twoAccounts.providers } });
    // One slot per account: the first task goes to one account, the second to the other.
    const first = (await gw.create(video('kling3api'))).body;
    const second = (await gw.create(video('kling3api', { duration: 10 }))).body;
    const done = [await gw.finish(first.id), await gw.finish(second.id)];
    const accountOf = (task: any) => task.attempts.find((attempt: { outcome: string }) => attempt.outcome === 'accepted').account as string;
    expect(done.map(accountOf).sort()).toEqual(['east', 'west']);
    expect(done.map((task) => task.cost.credits)).toEqual([400, 800]);

    const usage = await gw.request('GET', '/v1/usage?group_by=provider,account');
    expect(usage.status).toBe(200);
    expect(UsageReportSchema.safeParse(usage.body).success).toBe(true);
    const expected = done
      .map((task) => ({ provider: 'kling3api', account: accountOf(task), tasks: 1, credits: task.cost.credits, currency_amount: task.cost.currency_amount }))
      .sort((a, b) => a.account.localeCompare(b.account));
    expect(usage.body.data).toEqual(expected.map((row) => expect.objectContaining(row)));

    const csv = await gw.request('GET', '/v1/usage?group_by=provider,account&format=csv');
    const [header, ...lines] = (csv.body as string).trim().split('\r\n');
    expect(header!.split(',').slice(0, 4)).toEqual(['provider', 'account', 'currency', 'tasks']);
    expect(lines.map((line) => line.split(',').slice(0, 2).join(','))).toEqual(['kling3api,east', 'kling3api,west']);

    // The spend metrics say the same per account (each account's credits run out on their own).
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    for (const row of expected) {
      expect(metricValue(metrics, `kling_gateway_credits_spent_total{provider="kling3api",account="${row.account}",model="kling-v3"}`)).toBe(row.credits);
      expect(metricValue(metrics, `kling_gateway_currency_spent_total{provider="kling3api",account="${row.account}",model="kling-v3",currency="USD"}`)).toBe(
        row.currency_amount,
      );
    }

    // Account ids are per provider (a one-account provider's is "default"): alone they would add up different providers.
    const alone = await gw.request('GET', '/v1/usage?group_by=account');
    expect(alone.status).toBe(400);
    expect(alone.body.errors).toEqual([{ path: 'group_by', message: 'account ids are per provider: group by provider too (group_by=provider,account)' }]);
  });
});
