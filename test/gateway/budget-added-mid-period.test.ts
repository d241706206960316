/**
 * A budget added to config.yaml while its tenant already spent money in the period: what the
 * tenant's tasks of the period already hold counts, so the budget limits the period's spending
 * whenever it was configured. On SQLite and PostgreSQL.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { GatewayDeploys, startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { sqliteFileMigratedTo } from '../support/migrated-store.js';
import { taskRow } from '../support/task-rows.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const postgres = await postgresAvailable();

/** 5 s of kling-v3 pro with audio on kling3api: 400 credits × $0.001 = $0.40. */
const video = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5, routing: { providers: ['kling3api'] } };
const budget = (period: 'day' | 'month', amount = 1) => ({ tenants: { acme: { budget: { amount, currency: 'USD', period } } } });

let deploys: GatewayDeploys | undefined;
let gateways: TestGateway[] = [];
let store: Store | undefined;
let schema: string | undefined;
afterEach(async () => {
  for (const gateway of gateways) await gateway.close();
  gateways = [];
  await store?.close();
  store = undefined;
  if (schema) await dropSchema(schema);
  schema = undefined;
  await deploys?.close();
  deploys = undefined;
});

async function deploy(config: Record<string, unknown>): Promise<TestGateway> {
  const gateway = await deploys!.deploy(config, { store: store! });
  gateways.push(gateway);
  return gateway;
}

async function budgetOf(gateway: TestGateway) {
  const usage = await gateway.request('GET', '/v1/usage');
  expect(usage.status).toBe(200);
  return usage.body.budgets[0];
}

const stores: [string, boolean][] = [['SQLite', false], ...(postgres ? [['PostgreSQL', true] as [string, boolean]] : [])];

describe.each(stores)('a budget added mid-period (%s)', (_name, onPostgres) => {
  async function start(): Promise<TestGateway> {
    deploys = await GatewayDeploys.start();
    if (onPostgres) {
      schema = newSchemaName();
      store = await openPostgresStore(schema);
    } else {
      store = await openStore(tempDatabaseUrl());
    }
    return deploy({});
  }

  it("counts what the tenant already spent and has running in the period, once, and refuses a create that does not fit in what is left", async () => {
    const before = await start();
    // Without a budget: one task finished ($0.40 spent), one still running ($0.40 on its way).
    const finished = await before.create({ ...video, prompt: 'finished before the budget' });
    expect((await before.finish(finished.body.id)).status).toBe('succeeded');
    const running = await before.create({ ...video, prompt: 'running when the budget came' });
    expect(running.status).toBe(202);
    await before.close();
    gateways = [];

    // The operator adds $1 a month. The period already holds $0.80 of it.
    const after = await deploy(budget('month'));
    expect(await budgetOf(after)).toMatchObject({ period_key: '2026-11', spent: 0.4, reserved: 0.4, remaining: 0.2 });
    const refused = await after.create({ ...video, prompt: 'one too many' });
    expect(refused.status).toBe(402);
    expect(refused.body).toMatchObject({ spent: 0.4, reserved: 0.4, requested: 0.4 });
    expect(await budgetOf(after)).toMatchObject({ spent: 0.4, reserved: 0.4, remaining: 0.2, exhausted_at: expect.any(String) });

    // The running task settles into the budget once: its reserve becomes its charge.
    expect((await after.finish(running.body.id)).cost).toMatchObject({ currency_amount: 0.4, estimated: false });
    expect(await budgetOf(after)).toMatchObject({ spent: 0.8, reserved: 0, remaining: 0.2 });
    expect((await after.create({ ...video, prompt: 'still too many' })).status).toBe(402);
    const usage = (await after.request('GET', '/v1/usage')).body.data;
    expect(usage).toEqual([expect.objectContaining({ succeeded: 2, currency_amount: 0.8 })]);
  }, 30_000);

  it('counts what the tenant spent and has running while its budget was taken out, when the budget comes back in the same period', async () => {
    const before = await start();
    await before.close();
    gateways = [];
    const budgeted = await deploy(budget('month'));
    expect((await budgeted.finish((await budgeted.create({ ...video, prompt: 'under the budget' })).body.id)).status).toBe('succeeded');
    expect(await budgetOf(budgeted)).toMatchObject({ period_key: '2026-11', spent: 0.4, reserved: 0 });
    await budgeted.close();
    gateways = [];

    // The operator takes the budget out for a while: one task finishes ($0.40), one is still running ($0.40).
    const unbudgeted = await deploy({});
    expect((await unbudgeted.finish((await unbudgeted.create({ ...video, prompt: 'while it was out' })).body.id)).status).toBe('succeeded');
    const running = await unbudgeted.create({ ...video, prompt: 'running when it came back' });
    expect(running.status).toBe(202);
    await unbudgeted.close();
    gateways = [];

    // Back in: the month holds $1.20 of its $1, shown so before any create, and a create is refused.
    const back = await deploy(budget('month'));
    expect(await budgetOf(back)).toMatchObject({ period_key: '2026-11', spent: 0.8, reserved: 0.4, remaining: 0 });
    const refused = await back.create({ ...video, prompt: 'one too many' });
    expect(refused.status).toBe(402);
    expect(refused.body).toMatchObject({ spent: 0.8, reserved: 0.4, requested: 0.4 });
    // The running task settles into the budget once; nothing is counted twice.
    expect((await back.finish(running.body.id)).status).toBe('succeeded');
    expect(await budgetOf(back)).toMatchObject({ spent: 1.2, reserved: 0, remaining: 0 });
    expect((await back.create({ ...video, prompt: 'still too many' })).status).toBe(402);
    expect(await budgetOf(back)).toMatchObject({ spent: 1.2, reserved: 0 });
    const usage = (await back.request('GET', '/v1/usage')).body.data;
    expect(usage).toEqual([expect.objectContaining({ succeeded: 3, currency_amount: 1.2 })]);
  }, 30_000);

  it('counts the tasks of the period when a daily budget becomes monthly', async () => {
    const daily = await start();
    await daily.close();
    gateways = [];
    const first = await deploy(budget('day', 10));
    const done = await first.create({ ...video, prompt: 'charged to the day' });
    expect((await first.finish(done.body.id)).status).toBe('succeeded');
    expect(await budgetOf(first)).toMatchObject({ period_key: '2026-11-22', spent: 0.4, reserved: 0 });
    await first.close();
    gateways = [];

    const monthly = await deploy(budget('month', 0.7));
    expect(await budgetOf(monthly)).toMatchObject({ period_key: '2026-11', spent: 0.4, reserved: 0, remaining: 0.3 });
    expect((await monthly.create({ ...video, prompt: 'past the month' })).status).toBe(402);
  }, 30_000);
});

it('counts once, after an upgrade, what a budget opened mid-period by the release before already counted', async () => {
  // As that release left it: a budget opened in November that counted a task finished without a
  // budget ($0.40) as spent, and left its line unmarked.
  const older = await sqliteFileMigratedTo('0023_output_recopy');
  const created = Date.UTC(2026, 10, 21, 9);
  await older.db
    .insertInto('tasks')
    .values(taskRow('vid_before_the_budget', { status: 'succeeded', phase: 'done', provider: 'kling3api', provider_task_id: 'up_1', created_at: created, updated_at: created + 60_000, completed_at: created + 60_000 }))
    .execute();
  await older.db
    .insertInto('task_usage')
    .values({
      task_id: 'vid_before_the_budget', tenant: 'acme', created_at: created, day: '2026-11-21', model: 'kling-v3', quality: 'pro',
      operation: 'text-to-video', provider: 'kling3api', account: 'default', status: 'succeeded', completed_at: created + 60_000,
      duration_ms: 60_000, video_seconds: 5, credits: 400, amount_micros: 400_000, currency: 'USD', reported: 1, estimated_credits: 400,
      reported_credits: 400, budget_period: null, reserved_micros: 0, settled: 1,
    })
    .execute();
  await older.db.insertInto('budgets').values({ tenant: 'acme', period: '2026-11', spent_micros: 400_000, reserved_micros: 0, updated_at: created + 120_000 }).execute();
  await older.db.destroy();
  store = await older.open();
  const gateway = await startTestGateway({ store, config: budget('month') });
  gateways.push(gateway);
  expect(await budgetOf(gateway)).toMatchObject({ spent: 0.4, reserved: 0, remaining: 0.6 });
  expect((await gateway.create(video)).status).toBe(202);
  expect(await budgetOf(gateway)).toMatchObject({ spent: 0.4, reserved: 0.4, remaining: 0.2 });
});
