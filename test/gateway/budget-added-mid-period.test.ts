/**
 * A budget added to config.yaml while its tenant already spent money in the period: what the
 * tenant's tasks of the period already hold counts, so the budget limits the period's spending
 * whenever it was configured. On SQLite and PostgreSQL.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { GatewayDeploys, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
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
