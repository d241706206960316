/**
 * Every query the gateway runs on `tasks` while tasks live their lives reads through an index:
 * none walks the whole table, which holds every task ever made. The partial indexes of
 * migration 0010 hold only the tasks of the phases their queries ask for, and a query uses one
 * only when it repeats the index's WHERE term (`task-store.ts`); this catches a query that
 * stops doing so. A page of a tenant's list is one index search that starts at its cursor and
 * holds a filter it names (migration 0018), so neither a page deep in a long list nor a filter few
 * tasks match walks the tenant's other tasks. Measured on SQLite with its own query planner
 * (`EXPLAIN QUERY PLAN`), and the lists on PostgreSQL too (`EXPLAIN`, sequential scans off, so
 * that on a small table the plan shows what the indexes can answer).
 */
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { openStore } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { sqliteFileMigratedTo } from '../support/migrated-store.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable, POSTGRES_URL } from '../support/postgres.js';
import { T0, taskRow } from '../support/task-rows.js';

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

it('reads tasks through an index in every query of a task\'s life, from create to stored output, cancel and deadline, and at a start or a worker\'s death', async () => {
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
  // A worker of a gateway's `WORKERS` died: its leases end.
  const store = await openStore(database);
  try {
    await new TaskStore(store).expireLeases('a-worker-that-died');
  } finally {
    await store.close();
  }

  const plans = new Database(database.slice('sqlite:'.length), { readonly: true });
  // The plan does not depend on the values bound (the phases are literals in the text).
  const planOf = (sql: string) =>
    (plans.prepare(`explain query plan ${sql}`).all(...Array<null>(sql.split('?').length - 1).fill(null)) as { detail: string }[]).map((row) => row.detail);
  try {
    const onTasks = [...statements].filter((sql) => /from "tasks"|update "tasks"/.test(sql) && / where /.test(sql));
    expect(onTasks.length).toBeGreaterThan(15);
    // The start ends every lease a previous run left, and a dead worker's leases end: both too.
    expect(onTasks.filter((sql) => /^update "tasks" set "lease_until" = \?/.test(sql)).length).toBeGreaterThanOrEqual(2);
    const scans = onTasks
      .map((sql) => ({ sql, plan: planOf(sql) }))
      .filter(({ plan }) => plan.some((detail) => /^SCAN tasks$/.test(detail)));
    expect(scans).toEqual([]);
    // The queue, the due polls and copies, and slot counts read the partial indexes.
    const used = new Set(
      onTasks.flatMap((sql) => planOf(sql).map((detail) => /USING (?:COVERING )?INDEX (\w+)/.exec(detail)?.[1])),
    );
    for (const index of ['tasks_queue', 'tasks_due', 'tasks_in_flight', 'tasks_unfinished_deadline', 'tasks_submitting', 'tasks_provider_task', 'tasks_finished', 'tasks_recopy']) {
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

it('finds the tasks a list filter asks for (status, provider, model) by an index search on the filter, not by walking the tenant\'s other tasks', async () => {
  const statements = recordStatements();
  const database = tempDatabaseUrl();
  const gw = await startTestGateway({ config: { database: { url: database } } });
  open.push(gw);
  // Two tasks each filter below finds, so that a page of one holds a cursor to the next.
  const ids: string[] = [];
  for (const prompt of ['a lighthouse', 'a harbour']) {
    const created = await gw.create({ model: 'kling-v3', prompt, duration: 5, routing: { providers: ['freepik'] } });
    expect(created.status).toBe(202);
    expect((await gw.finish(created.body.id)).status).toBe('succeeded');
    ids.push(created.body.id);
    await gw.advance(1_000);
  }
  const listed = (answer: { body: { data: { id: string }[] } }) => answer.body.data.map((task) => task.id);
  const none = await gw.request('GET', '/v1/videos?limit=1&status=processing');
  expect(none.status).toBe(200);
  expect(none.body).toMatchObject({ data: [], next_cursor: null });
  for (const query of ['status=succeeded', 'provider=freepik', 'model=kling-v3', 'status=succeeded&provider=freepik&model=kling-v3']) {
    // Newest first: the second task, then (through the cursor) the first, then no further page.
    const first = await gw.request('GET', `/v1/videos?limit=1&${query}`);
    expect([query, first.status, listed(first)]).toEqual([query, 200, [ids[1]]]);
    expect(first.body.next_cursor, query).toEqual(expect.any(String));
    const second = await gw.request('GET', `/v1/videos?limit=1&${query}&cursor=${first.body.next_cursor}`);
    expect([query, second.status, listed(second), second.body.next_cursor]).toEqual([query, 200, [ids[0]], null]);
  }
  expect(listed(await gw.request('GET', '/v1/videos?status=succeeded'))).toEqual([ids[1], ids[0]]);

  const plans = new Database(database.slice('sqlite:'.length), { readonly: true });
  try {
    const filtered = [...statements].filter((sql) => /^select \* from "tasks" where "tenant" = \? and "(status|provider|model)" = \?/.test(sql));
    // Each of the four filters, its first page and a page after a cursor.
    expect(filtered.length).toBeGreaterThanOrEqual(8);
    const unsearched = filtered.flatMap((sql) => {
      const plan = (plans.prepare(`explain query plan ${sql}`).all(...Array<null>(sql.split('?').length - 1).fill(null)) as { detail: string }[]).map(
        (row) => row.detail,
      );
      const terms = searchTermsOf(plan) ?? '';
      // At least one filter is a term of the search (the others are checked on what it finds).
      const filters = [...sql.matchAll(/"(status|provider|model)" = \?/g)].map((match) => `${match[1]}=?`);
      return filters.some((filter) => terms.includes(filter)) ? [] : [{ sql, plan }];
    });
    expect(unsearched).toEqual([]);
  } finally {
    plans.close();
  }
});

it('lists a tenant\'s newest tasks through its own index after an upgrade on a SQLite file whose statistics an operator gathered before it', async () => {
  // A file an older release left, on which ANALYZE was run: its statistics know the indexes of
  // then, not those the upgrade adds.
  const older = await sqliteFileMigratedTo('0017_usage_video_seconds');
  const rows = Array.from({ length: 300 }, (_, index) => taskRow(`t_${String(index).padStart(4, '0')}`, { created_at: T0 + index, model: index % 2 ? 'kling-v3' : 'kling-v1' }));
  for (let at = 0; at < rows.length; at += 50) await older.db.insertInto('tasks').values(rows.slice(at, at + 50)).execute();
  await sql`analyze`.execute(older.db);
  await older.db.destroy();
  const store = await older.open();
  try {
    expect((await new TaskStore(store).listTasks({ tenant: 'acme', limit: 3 })).map((task) => task.id)).toEqual(['t_0299', 't_0298', 't_0297']);
  } finally {
    await store.close();
  }
  const plans = new Database(older.file, { readonly: true });
  try {
    const plan = (plans.prepare('explain query plan select * from "tasks" where "tenant" = ? order by "created_at" desc, "id" desc limit ?').all('acme', 3) as { detail: string }[]).map(
      (row) => row.detail,
    );
    // The page is read off the tenant's index in order, not found through a filter's index and sorted.
    expect(plan).toEqual(['SEARCH tasks USING INDEX tasks_tenant_created (tenant=?)']);
  } finally {
    plans.close();
  }
});

const pgAvailable = await postgresAvailable();

it.skipIf(!pgAvailable && process.env.CI !== 'true')(
  'on PostgreSQL too, a page of a tenant\'s list is one index search that starts at its cursor and holds its filter',
  async () => {
    const schema = newSchemaName();
    const store = await openPostgresStore(schema);
    const explain = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}` });
    try {
      const tasks = new TaskStore(store);
      const rows = Array.from({ length: 60 }, (_, index) =>
        taskRow(`t_${String(index).padStart(4, '0')}`, { created_at: T0 + index, status: index % 3 ? 'succeeded' : 'failed', phase: 'done', provider: 'freepik' }),
      );
      await store.db.insertInto('tasks').values(rows).execute();
      // The statements (and the values bound) the store sends for each list.
      const sent: { text: string; values: unknown[] }[] = [];
      const prototype = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
      const query = prototype.query;
      prototype.query = function (this: unknown, ...args: unknown[]) {
        const [config, values] = args as [{ text?: string; values?: unknown[] } | string, unknown[] | undefined];
        const text = typeof config === 'string' ? config : config?.text;
        if (text?.startsWith('select * from "tasks" where "tenant"')) sent.push({ text, values: (typeof config === 'string' ? values : config.values) ?? [] });
        return query.apply(this, args);
      };
      restore.push(() => (prototype.query = query));
      const cursor = { createdAt: T0 + 30, id: 't_0030' };
      for (const filters of [{}, { status: 'failed' }, { provider: 'freepik' }, { model: 'kling-v3' }]) {
        await tasks.listTasks({ tenant: 'acme', limit: 5, ...filters });
        await tasks.listTasks({ tenant: 'acme', limit: 5, ...filters, before: cursor });
      }
      expect(sent).toHaveLength(8);
      await explain.connect();
      // Whatever an index can answer is answered by one: what a plan then still reads row by row is what no index holds.
      await explain.query('set enable_seqscan = off');
      const misplanned = [];
      for (const { text, values } of sent) {
        const plan = ((await explain.query(`explain ${text}`, values)).rows as { 'QUERY PLAN': string }[]).map((row) => row['QUERY PLAN'].trim());
        const conditions = plan.filter((line) => line.startsWith('Index Cond:')).join(' ');
        const wanted = [...text.matchAll(/"(status|provider|model)" = \$/g)].map((match) => `${match[1]} =`);
        if (text.includes('("created_at", "id") <')) wanted.push('ROW(created_at, id) <');
        const searched = wanted.every((term) => conditions.includes(term)) && !plan.some((line) => /Sort|Filter:/.test(line));
        if (!searched) misplanned.push({ text, plan });
      }
      expect(misplanned).toEqual([]);
    } finally {
      await explain.end().catch(() => undefined);
      await store.close();
      await dropSchema(schema);
    }
  },
);

it.skipIf(!pgAvailable && process.env.CI !== 'true')(
  'on PostgreSQL, the claim of later copies reads the partial index of the tasks waiting for one, not every finished task',
  async () => {
    const schema = newSchemaName();
    const store = await openPostgresStore(schema);
    const explain = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}` });
    try {
      const tasks = new TaskStore(store);
      const rows = Array.from({ length: 60 }, (_, index) =>
        taskRow(`t_${String(index).padStart(4, '0')}`, { created_at: T0 + index, status: 'succeeded', phase: 'done', provider: 'freepik', ...(index === 7 ? { recopy_at: T0 } : {}) }),
      );
      await store.db.insertInto('tasks').values(rows).execute();
      const sent: { text: string; values: unknown[] }[] = [];
      const prototype = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
      const query = prototype.query;
      prototype.query = function (this: unknown, ...args: unknown[]) {
        const [config, values] = args as [{ text?: string; values?: unknown[] } | string, unknown[] | undefined];
        const text = typeof config === 'string' ? config : config?.text;
        if (text?.includes('"recopy_at" is not null')) sent.push({ text, values: (typeof config === 'string' ? values : config.values) ?? [] });
        return query.apply(this, args);
      };
      restore.push(() => (prototype.query = query));
      const claimed = await tasks.claimDueForRecopy(T0 + 1, 'replica-a', 30_000, 5);
      expect(claimed.map((row) => row.id)).toEqual(['t_0007']);
      // The read that asks whether any is due, and the claim (the plans asked below are not recorded).
      prototype.query = query;
      expect(sent).toHaveLength(2);
      await explain.connect();
      await explain.query('set enable_seqscan = off');
      for (const { text, values } of sent) {
        const plan = ((await explain.query(`explain ${text}`, values)).rows as { 'QUERY PLAN': string }[]).map((row) => row['QUERY PLAN']).join('\n');
        expect(plan, plan).toMatch(/Index (Only )?Scan (using|on) tasks_recopy/);
        expect(plan).not.toMatch(/Seq Scan on tasks/);
      }
    } finally {
      await explain.end().catch(() => undefined);
      await store.close();
      await dropSchema(schema);
    }
  },
);
