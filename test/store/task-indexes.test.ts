/**
 * Every query the gateway runs on `tasks` while tasks live their lives reads through an index:
 * none walks the whole table, which holds every task ever made. The partial indexes of
 * migration 0010 hold only the tasks of the phases their queries ask for, and a query uses one
 * only when it repeats the index's WHERE term (`task-store.ts`); this catches a query that
 * stops doing so. Measured on SQLite with its own query planner (`EXPLAIN QUERY PLAN`).
 */
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
const restore: (() => void)[] = [];
afterEach(async () => {
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
  for (const undo of restore.splice(0)) undo();
});

/** Records the text of every statement prepared on any SQLite connection of this process. */
function recordStatements(): Set<string> {
  const seen = new Set<string>();
  const prototype = Database.prototype as unknown as { prepare: (sql: string) => unknown };
  const prepare = prototype.prepare;
  prototype.prepare = function (this: unknown, sql: string) {
    seen.add(sql);
    return prepare.call(this, sql);
  };
  restore.push(() => (prototype.prepare = prepare));
  return seen;
}

/** Statements run once at start (every lease left by a previous run ends) may scan. */
const AT_START_ONLY = [/^update "tasks" set "lease_until" = \? where "phase" != \? and "lease_owner" is not null$/];

it('reads tasks through an index in every query of a task\'s life, from create to stored output, cancel and deadline', async () => {
  const statements = recordStatements();
  const database = tempDatabaseUrl();
  const gw = await startTestGateway({ config: { database: { url: database } } });
  open.push(gw);

  // Tasks on each provider, followed to the end (webhooks, polls, callbacks, result copies).
  const ids: string[] = [];
  for (const provider of ['freepik', 'kling3api', 'kling-legacy']) {
    const model = provider === 'kling-legacy' ? 'kling-v1' : 'kling-v3';
    const created = await gw.create({ model, prompt: `a lighthouse on ${provider}`, duration: 5, routing: { providers: [provider] } });
    expect(created.status).toBe(202);
    ids.push(created.body.id);
  }
  for (const id of ids) expect((await gw.finish(id)).status).toBe('succeeded');
  // A webhook naming a task the gateway does not know; a queued task canceled by cancel_after.
  const body = JSON.stringify({ task_id: 'not-ours', status: 'COMPLETED', generated: [] });
  const timestamp = String(Math.floor(gw.clock.now() / 1000));
  const secret = gw.endpoints.get('freepik')!.webhookSecret!;
  await fetch(`${gw.url}/v1/webhooks/freepik`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': 'msg_x', 'webhook-timestamp': timestamp, 'webhook-signature': signFreepikWebhook(secret, 'msg_x', timestamp, body) },
    body,
  });
  await gw.request('GET', '/v1/videos?limit=5');
  await gw.request('GET', '/v1/providers');
  await gw.request('GET', '/metrics');
  await gw.advance(60 * 60_000);

  const plans = new Database(database.slice('sqlite:'.length), { readonly: true });
  // The plan does not depend on the values bound (the phases are literals in the text).
  const planOf = (sql: string) =>
    (plans.prepare(`explain query plan ${sql}`).all(...Array<null>(sql.split('?').length - 1).fill(null)) as { detail: string }[]).map((row) => row.detail);
  try {
    const onTasks = [...statements].filter((sql) => /from "tasks"|update "tasks"/.test(sql) && / where /.test(sql));
    expect(onTasks.length).toBeGreaterThan(15);
    const scans = onTasks
      .filter((sql) => !AT_START_ONLY.some((pattern) => pattern.test(sql)))
      .map((sql) => ({ sql, plan: planOf(sql) }))
      .filter(({ plan }) => plan.some((detail) => /^SCAN tasks$/.test(detail)));
    expect(scans).toEqual([]);
    // The queue, the due polls and copies, and slot counts read the partial indexes.
    const used = new Set(
      onTasks.flatMap((sql) => planOf(sql).map((detail) => /USING (?:COVERING )?INDEX (\w+)/.exec(detail)?.[1])),
    );
    for (const index of ['tasks_queue', 'tasks_due', 'tasks_in_flight', 'tasks_unfinished_deadline', 'tasks_submitting', 'tasks_provider_task']) {
      expect(used).toContain(index);
    }
  } finally {
    plans.close();
  }
});

/**
 * The terms of the one index search a statement's plan makes (`tenant=? AND …`), or undefined
 * when the plan is anything else: a second step (a sort of what it found) or a walk.
 */
function searchTermsOf(plan: string[]): string | undefined {
  if (plan.length !== 1) return undefined;
  return /^SEARCH tasks USING (?:COVERING )?INDEX \w+ \((.*)\)$/.exec(plan[0]!)?.[1];
}

it('reads a page of a tenant\'s list from where its cursor points, however far into the list, in one index search', async () => {
  const statements = recordStatements();
  const database = tempDatabaseUrl();
  const gw = await startTestGateway({ config: { database: { url: database } } });
  open.push(gw);
  for (const prompt of ['a lighthouse', 'a harbour', 'a ferry']) {
    expect((await gw.create({ model: 'kling-v3', prompt, duration: 5 })).status).toBe(202);
    await gw.advance(1_000);
  }
  const first = await gw.request('GET', '/v1/videos?limit=1');
  expect(first.body.next_cursor).toEqual(expect.any(String));
  const next = await gw.request('GET', `/v1/videos?limit=1&cursor=${first.body.next_cursor}`);
  expect(next.status).toBe(200);
  expect(next.body.data).toHaveLength(1);

  const plans = new Database(database.slice('sqlite:'.length), { readonly: true });
  try {
    const listings = [...statements].filter((sql) => /^select \* from "tasks" where "tenant" = \?/.test(sql));
    const paged = listings.filter((sql) => sql.split(' order by ')[0]!.includes('"created_at"'));
    expect(paged).toHaveLength(1);
    const plan = (plans.prepare(`explain query plan ${paged[0]}`).all(...Array<null>(paged[0]!.split('?').length - 1).fill(null)) as { detail: string }[]).map(
      (row) => row.detail,
    );
    // The cursor's position bounds the search: a page deep in the list does not walk the pages before it.
    expect(searchTermsOf(plan)).toMatch(/^tenant=\? AND .*created_at.*<.*$/);
  } finally {
    plans.close();
  }
});
