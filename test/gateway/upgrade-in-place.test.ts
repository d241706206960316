/**
 * An upgrade in place: a gateway ran on a database for a while, stopped with work in every phase,
 * and the current release starts on the same database, migrating it first. The database is left
 * at an older schema the way that release wrote it: a run of the gateway makes the rows (tasks
 * queued, tracked, in doubt, finished with stored outputs, failed; an event delivery that failed
 * once; idempotency keys; budget reservations), then the migrations after an older one are rolled
 * back, so every column, table and count they added is gone, as it was before them
 * (`status_version`, `task_usage.account`, `output_ids`, the in-flight counts; from 0004, the
 * usage lines, budgets and accounts too). What a caller then sees: every task
 * ends once, no create is sent twice, the pending event is delivered, old tasks, lists, content,
 * usage and budgets read right, an idempotent retry answers the same task, and a result id is
 * still known as its tenant's.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { SAMPLE_MP4 } from '../../src/sandbox/simulator-kit.js';
import { openStore } from '../../src/store/database.js';
import { CodeMigrationProvider } from '../../src/store/migrations.js';
import { TaskStore } from '../../src/store/task-store.js';
import { capturedLogs } from '../support/captured-logs.js';
import { openEventStream } from '../support/event-stream.js';
import { postgresMigrateTo } from '../support/migrated-store.js';
import { dropSchema, newSchemaName, postgresAvailable, POSTGRES_URL } from '../support/postgres.js';
import { OTHER_TENANT_KEY, TENANT_KEY, startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const pgAvailable = await postgresAvailable();

/**
 * Schemas an older release left (everything after is rolled back before the upgrade): the last
 * before the six migrations of one week, and the last before usage lines, budgets and accounts.
 */
const OLDER = ['0010_partial_task_indexes', '0004_cancel_and_custody'] as const;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

interface Backend {
  name: string;
  skip: boolean;
  /** A fresh database: its URL for the gateway, and how to take its schema back to `migration`. */
  database(): Promise<{ url: string; rollBackTo: (migration: string) => Promise<void>; migrations: () => Promise<string[]> }>;
}

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    skip: false,
    async database() {
      const url = tempDatabaseUrl();
      const file = url.slice('sqlite:'.length);
      const withDb = async <T>(run: (db: Kysely<any>) => Promise<T>): Promise<T> => {
        const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
        try {
          return await run(db);
        } finally {
          await db.destroy();
        }
      };
      return {
        url,
        rollBackTo: (migration) =>
          withDb(async (db) => {
            const { error } = await new Migrator({ db, provider: new CodeMigrationProvider('sqlite') }).migrateTo(migration);
            if (error) throw error;
          }),
        migrations: () => withDb(async (db) => (await db.selectFrom('kysely_migration').select('name').orderBy('name').execute()).map((row) => row.name as string)),
      };
    },
  },
  {
    name: 'postgres',
    skip: !pgAvailable,
    async database() {
      const schema = newSchemaName();
      cleanups.push(() => dropSchema(schema));
      const withDb = async <T>(run: (db: Kysely<any>) => Promise<T>): Promise<T> => {
        const pool = new pg.Pool({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}`, max: 2 });
        const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
        try {
          return await run(db);
        } finally {
          await db.destroy();
        }
      };
      const url = new URL(POSTGRES_URL);
      url.searchParams.set('schema', schema);
      return {
        url: url.toString(),
        rollBackTo: (migration) => withDb((db) => postgresMigrateTo(db, schema, migration)),
        migrations: () => withDb(async (db) => (await db.selectFrom('kysely_migration').select('name').orderBy('name').execute()).map((row) => row.name as string)),
      };
    },
  },
];

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

/** A webhook receiver that answers `status()` (503 while the older release runs, 200 after). */
async function receiver(status: () => number): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const answer = status();
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status: answer });
      res.statusCode = answer;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received };
}

const legacy = { model: 'kling-v1-6', prompt: 'an old film look', duration: 5, routing: { providers: ['kling-legacy'] } };
const onKling3api = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5, routing: { providers: ['kling3api'] } };
const TERMINAL = ['succeeded', 'failed', 'canceled'];

/**
 * A database `older` left by a release that stopped with work in every phase (see the file's
 * comment), on `backend`, with the simulators and clock that release used.
 */
async function leftByAnOlderRelease(backend: Backend, older: string) {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const database = await backend.database();
  const hook = { status: 503 };
  const hooks = await receiver(() => hook.status);
  const config = {
    database: { url: database.url },
    storage: { mode: 'copy', filesystem: { path: mkdtempSync(join(tmpdir(), 'kling-gw-upgrade-')) } },
    tenants: { acme: { budget: { amount: 100, currency: 'USD', period: 'month' } } },
    providers: { kling3api: { max_in_flight: 1 } },
    tasks: { deadline_ms: 3_600_000 },
  };
  const options = { clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config };
  const upstream = () => Object.fromEntries([...sandbox.simulators].map(([id, simulator]) => [id, simulator.tasks.length]));

  // The older release at work.
  const before = await startTestGateway({ ...options, owner: 'older-release' });
  let stopped = false;
  cleanups.push(async () => {
    if (!stopped) await before.close();
  });
  sandbox.simulators.get('kling-legacy')!.setOutcome('fail', 1);
  const failed = await before.finish((await before.create(legacy)).body.id);
  expect(failed.status).toBe('failed');
  const doneCreate = await before.create(legacy, { 'idempotency-key': 'order-done' });
  const done = await before.finish(doneCreate.body.id);
  expect(done).toMatchObject({ status: 'succeeded', outputs: [expect.objectContaining({ storage: 'stored' })] });
  const videoId = done.outputs[0].upstream_id as string;
  expect(videoId).toEqual(expect.any(String));
  const inDoubt = (await before.create(legacy)).body;
  expect(inDoubt.status).toBe('queued');
  const tracked = (await before.create({ ...onKling3api, webhook_url: hooks.url })).body;
  expect(tracked.status).toBe('processing');
  const queued = (await before.create(onKling3api, { 'idempotency-key': 'order-queued' })).body;
  expect(queued.status).toBe('queued');
  // Its first event was sent and refused (503): the delivery waits for its next try.
  await before.gateway.runOnce();
  for (let i = 0; i < 1_000 && hooks.received.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(hooks.received.map((received) => received.status)).toEqual([503]);
  const budgetBefore = (await before.request('GET', '/v1/usage')).body.budgets[0];
  expect(budgetBefore.reserved).toBeGreaterThan(0);
  await before.close();
  stopped = true;
  const creates = upstream();
  expect(creates).toMatchObject({ 'kling-legacy': 3, kling3api: 1 });

  // It was killed with a create on its way: the legacy task is in `submitting`, its attempt
  // `sending` with no answer recorded, under the dead process's lease.
  {
    const store = await openStore(database.url);
    const tasks = new TaskStore(store);
    await tasks.updateTask(inDoubt.id, { phase: 'submitting', status: 'queued', provider_task_id: null, lease_owner: 'older-release', lease_until: clock.now() + 30_000 });
    await tasks.updateAttempt(inDoubt.id, 1, { outcome: 'sending', latency_ms: null, provider_task_id: null, tracking_json: null, message: null, error_code: null, recovered_by: null });
    await store.close();
  }
  // What the older release's schema held: nothing of the migrations after `older`.
  await database.rollBackTo(older);
  expect((await database.migrations()).at(-1)).toBe(older);
  return { clock, database, hook, hooks, options, upstream, creates, failed, done, videoId, inDoubt, tracked, queued };
}

/**
 * What callers see once the current release runs on the database `left` (as replicas `replicas`,
 * all of whose workers run whenever the clock moves): the schema is current, every task ends once,
 * no create went twice, and reads, events, usage and budgets are right. A release before budgets
 * (0005) charged its tasks to none: the budget's period, first made by the current release, still
 * counts them, as it counts any spending of its period from before the budget.
 */
async function checkUpgraded(left: Awaited<ReturnType<typeof leftByAnOlderRelease>>, replicas: TestGateway[]) {
  const { clock, database, hooks, upstream, creates, failed, done, videoId, inDoubt, tracked, queued } = left;
  const [after] = replicas as [TestGateway];
  const all = Object.keys(await new CodeMigrationProvider('sqlite').getMigrations());
  expect(await database.migrations()).toEqual(all);
  const advance = async (ms: number) => {
    await clock.advance(ms);
    await Promise.all(replicas.map((replica) => replica.gateway.runOnce()));
  };
  const until = async (check: () => Promise<boolean>) => {
    for (let step = 0; step < 120 && !(await check()); step++) {
      await advance(1_000);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(await check()).toBe(true);
  };

  // Finished tasks read as they were, their stored output downloadable.
  expect((await after.get(done.id)).body).toMatchObject({ status: 'succeeded', cost: done.cost, outputs: done.outputs.map((output: object) => expect.objectContaining({ ...output, url: expect.any(String) })) });
  expect((await after.get(failed.id)).body).toMatchObject({ status: 'failed', error: failed.error });
  for (const replica of replicas) {
    const content = await fetch(`${replica.url}/v1/videos/${done.id}/content`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
    expect(content.status).toBe(200);
    expect(Buffer.from(await content.arrayBuffer()).equals(SAMPLE_MP4)).toBe(true);
  }
  // Its event stream (a task without status_version, on the older schema) tells its status and ends.
  expect((await (await openEventStream(after.url, done.id)).ended()).map((event) => event.status)).toEqual(['succeeded']);
  // An idempotent retry answers the same task, and sends nothing.
  expect((await after.create(legacy, { 'idempotency-key': 'order-done' })).body.id).toBe(done.id);
  expect((await replicas.at(-1)!.create(onKling3api, { 'idempotency-key': 'order-queued' })).body.id).toBe(queued.id);
  // The result id is still known as acme's: another tenant cannot lip-sync it.
  const borrowed = await after.request('POST', '/v1/videos', { model: 'kling-v1-6', video_id: videoId, lip_sync: { text: 'hello', voice_id: 'genshin_vindi2' } }, {}, OTHER_TENANT_KEY);
  expect(borrowed.status, JSON.stringify(borrowed.body)).toBe(422);

  // Work in flight ends, each task once; a stream opened meanwhile tells each status once.
  const following = await openEventStream(replicas.at(-1)!.url, tracked.id);
  await advance(31_000);
  await until(async () => (await Promise.all([inDoubt.id, tracked.id, queued.id].map(async (id) => (await after.get(id)).body.status))).every((status) => TERMINAL.includes(status)));
  for (const id of [inDoubt.id, tracked.id, queued.id]) {
    const ended = (await after.get(id)).body;
    expect(ended.status, `${id}: ${JSON.stringify(ended.error)}`).toBe('succeeded');
  }
  expect((await following.ended()).map((event) => event.status)).toEqual(['processing', 'succeeded']);
  const adopted = (await after.get(inDoubt.id)).body;
  expect(adopted.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'accepted', recovered_by: 'external_id' })]);
  // Each create was sent once: the one in doubt was found, not sent again; the queued one went once.
  expect(upstream()).toEqual({ ...creates, kling3api: 2 });

  // The event that waited is delivered, and the task's end; each once, the first with its first
  // id (events are delivered independently: in no set order).
  await until(async () => hooks.received.filter((received) => received.status === 200).length >= 2);
  await advance(120_000);
  const events = hooks.received.map((received) => ({ ...(JSON.parse(received.body) as { type: string; data: { id: string } }), id: received.headers['webhook-id'], status: received.status }));
  expect(events[0]).toMatchObject({ type: 'video.processing', status: 503 });
  expect(events.slice(1).map((event) => [event.type, event.status]).sort()).toEqual([
    ['video.processing', 200],
    ['video.succeeded', 200],
  ]);
  expect(events.find((event, index) => index > 0 && event.type === 'video.processing')!.id).toBe(events[0]!.id);
  expect(events.every((event) => event.data.id === tracked.id)).toBe(true);

  // Lists, usage and the budget add up: every task once, nothing left reserved, spend = costs.
  const list = (await after.request('GET', '/v1/videos?limit=100')).body.data as { id: string; status: string }[];
  expect(list.map((task) => task.id).sort()).toEqual([failed.id, done.id, inDoubt.id, tracked.id, queued.id].sort());
  expect(list.every((task) => TERMINAL.includes(task.status))).toBe(true);
  const costs = await Promise.all(list.map(async (task) => ((await after.get(task.id)).body.cost?.currency_amount as number | null) ?? 0));
  const spent = Math.round(costs.reduce((sum, amount) => sum + amount, 0) * 1e6) / 1e6;
  const usage = (await after.request('GET', '/v1/usage?group_by=provider,account')).body;
  expect(usage.budgets[0]).toMatchObject({ reserved: 0, spent });
  const reported = usage.data.reduce((sum: number, row: { currency_amount: number }) => sum + row.currency_amount, 0);
  expect(Math.round(reported * 1e6) / 1e6).toBe(spent);
  // Seconds of video delivered: the succeeded tasks' videos, old ones included (a legacy video
  // says its length; kling3api's do not, so the duration asked for counts).
  const seconds = (provider: string) => usage.data.find((row: { provider: string }) => row.provider === provider)?.video_seconds;
  expect({ legacy: seconds('kling-legacy'), kling3api: seconds('kling3api') }).toEqual({ legacy: 10, kling3api: 10 });
  expect(usage.data).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ provider: 'kling-legacy', account: 'default', tasks: 3 }),
      expect.objectContaining({ provider: 'kling3api', account: 'default', tasks: 2 }),
    ]),
  );

  // The slot counts came through: a new task takes the free kling3api slot at once.
  expect((await after.create({ ...onKling3api, prompt: 'after the upgrade' })).body.status).toBe('processing');
}

describe.each(BACKENDS.flatMap((backend) => OLDER.map((older) => ({ ...backend, older }))))('upgrading in place on $name from $older', (backend) => {
  it.skipIf(backend.skip)(
    'a database an older release left with work in every phase: each task ends once, no create is sent twice, and what callers read stays right',
    { timeout: 60_000 },
    async () => {
      const left = await leftByAnOlderRelease(backend, backend.older);
      // The upgrade: the current release starts on it.
      left.hook.status = 200;
      const logs = capturedLogs();
      const after = await startTestGateway({ ...left.options, owner: 'newer-release', logTo: logs.sink });
      cleanups.push(() => after.close());
      // The start says what it did to the database.
      const all = Object.keys(await new CodeMigrationProvider('sqlite').getMigrations());
      const migrated = logs
        .text()
        .split('\n')
        .filter((line) => line.includes('database migrated'))
        .map((line) => JSON.parse(line) as { msg: string; migrations: string[] });
      expect(migrated).toEqual([expect.objectContaining({ msg: 'database migrated to the current schema', migrations: all.slice(all.indexOf(backend.older) + 1) })]);
      await checkUpgraded(left, [after]);
    },
  );
});

describe.skipIf(!pgAvailable)('three replicas of the current release starting at once on a PostgreSQL database an older release left', () => {
  it.each(OLDER)('from %s: one of them migrates, all come up, and each task still ends once with no create sent twice', { timeout: 60_000 }, async (older) => {
    const left = await leftByAnOlderRelease(BACKENDS.find((backend) => backend.name === 'postgres')!, older);
    left.hook.status = 200;
    const replicas = await Promise.all(['replica-a', 'replica-b', 'replica-c'].map((owner) => startTestGateway({ ...left.options, owner })));
    cleanups.push(async () => {
      for (const replica of replicas) await replica.close();
    });
    await checkUpgraded(left, replicas);
  });
});
