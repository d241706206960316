/**
 * The embedded SQLite file cannot grow (its disk is full, `SQLITE_FULL`). Simulated on the
 * gateway's own connection: `max_page_count` holds the file at its size, and a filler table takes
 * the pages the file had free, so every write that needs a new page fails as on a full disk.
 * Raising the limit again is the operator freeing space.
 */
import SqliteDatabase from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { capturedLogs } from '../support/captured-logs.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { openStore } from '../../src/store/database.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  writesFail = false;
  fullRollsBack = false;
  await gw?.close();
  gw = undefined;
});

/**
 * Every statement that writes fails with SQLITE_FULL while `writesFail` is set, as on a disk with
 * no byte left (reads, and BEGIN/COMMIT/ROLLBACK, still work): SQLite's own answer, from the
 * statements of every connection in this process.
 */
let writesFail = false;
/**
 * With `writesFail`: the writes are taken (in memory) and the COMMIT fails instead, ending the
 * transaction, as on a real full disk in WAL mode: the pages go to the log at the commit, and
 * SQLite rolls the transaction back itself when the disk refuses them.
 */
let fullRollsBack = false;
const statementMethods = Object.getPrototypeOf(new SqliteDatabase(':memory:').prepare('SELECT 1')) as Record<string, (...args: unknown[]) => unknown>;
for (const method of ['run', 'get', 'all', 'iterate'] as const) {
  const original = statementMethods[method]!;
  statementMethods[method] = function (this: { readonly: boolean; source: string; database: SqliteDatabase.Database }, ...args: unknown[]) {
    const failsHere = fullRollsBack ? /^commit/i.test(this.source) && this.database.inTransaction : !this.readonly;
    if (writesFail && failsHere) {
      if (fullRollsBack) this.database.exec('ROLLBACK');
      throw new SqliteDatabase.SqliteError('database or disk is full', 'SQLITE_FULL');
    }
    return original.apply(this, args);
  };
}

// Long enough that the task's row needs pages of its own (overflow pages), which a full file has none of.
const request = { model: 'kling-v3', prompt: `a full disk ${'x'.repeat(1800)}`, duration: 5, routing: { providers: ['kling3api'] } };

/** Holds the SQLite file at its size, its free pages taken: writes that need a page fail with SQLITE_FULL. */
async function fillDatabase(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS test_filler (bytes BLOB)`.execute(db);
  const { rows } = await sql<{ page_count: number }>`PRAGMA page_count`.execute(db);
  await sql.raw(`PRAGMA max_page_count = ${rows[0]!.page_count}`).execute(db);
  for (let i = 0; i < 10_000; i++) {
    try {
      await sql`INSERT INTO test_filler (bytes) VALUES (zeroblob(3000))`.execute(db);
    } catch (error) {
      expect((error as { code?: string }).code).toBe('SQLITE_FULL');
      return;
    }
  }
  throw new Error('the database never filled');
}

/** Space freed on the disk. */
async function freeSpace(db: Kysely<any>): Promise<void> {
  await sql.raw('PRAGMA max_page_count = 1073741823').execute(db);
}

async function startOnFile(logs = capturedLogs()) {
  gw = await startTestGateway({ config: { database: { url: tempDatabaseUrl() } }, logTo: logs.sink });
  return { gateway: gw, db: gw.gateway.store.store.db as Kysely<any>, logs };
}

/** Creates (key `full-<n>`) until one is refused: that answer, and how many were made before it. */
async function createUntilRefused(gateway: TestGateway) {
  for (let made = 0; made < 50; made++) {
    const answer = await gateway.create(request, { 'idempotency-key': `full-${made}` });
    if (answer.status !== 202) return { refused: answer, made };
  }
  throw new Error('every create was taken');
}

it('answers a create the database has no room for with 503 and Retry-After, sends nothing, and takes it once space is freed', async () => {
  const { gateway, db, logs } = await startOnFile();
  await fillDatabase(db);

  // The pages the tables still have room in take a few more tasks; the first that needs a new page is refused.
  const { refused, made } = await createUntilRefused(gateway);
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(refused.body.type).toMatch(/retry-later$/);
  expect(refused.body.detail).toMatch(/database is full/);
  // Nothing of the refused create was sent or kept.
  expect(gateway.simulator('kling3api').tasks).toHaveLength(made);
  expect((await gateway.request('GET', '/v1/videos')).body.data).toHaveLength(made);
  expect(logs.text()).toMatch(/"level":"error"[^\n]*"msg":"the database is full/);

  await freeSpace(db);
  const taken = await gateway.create(request, { 'idempotency-key': `full-${made}` });
  expect(taken.status).toBe(202);
  expect(taken.headers.get('idempotent-replayed')).toBeNull();
  expect(gateway.simulator('kling3api').tasks).toHaveLength(made + 1);
});

it('answers a provider webhook it cannot write with 503, so the provider sends it again, and applies the one sent again', async () => {
  const { gateway } = await startOnFile();
  const created = await gateway.create({ ...request, routing: { providers: ['freepik'] } });
  expect(created.body.status).toBe('queued');
  const raw = JSON.stringify({ task_id: created.body.provider_task_id, status: 'COMPLETED', generated: ['https://cdn.example/a.mp4'] });
  const id = 'wh_full_1';
  const timestamp = String(Math.floor(gateway.clock.now() / 1000));
  const secret = gateway.endpoints.get('freepik')!.webhookSecret!;
  const send = () =>
    gateway.request('POST', '/v1/webhooks/freepik', raw, { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signFreepikWebhook(secret, id, timestamp, raw) }, null);

  writesFail = true;
  const refused = await send();
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
  expect((await gateway.get(created.body.id)).body.status).toBe('queued');

  writesFail = false;
  expect((await send()).status).toBe(200);
  expect((await gateway.get(created.body.id)).body.status).toBe('succeeded');
});

/** Moves the gateway's clock `ms` in steps of a second, letting the worker loops (`startWorkers`) run each one. */
async function runWorkersFor(gateway: TestGateway, ms: number, until?: () => Promise<boolean>): Promise<void> {
  for (let passed = 0; passed < ms; passed += 1_000) {
    if (until && (await until())) return;
    await gateway.clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

it('keeps its workers running while nothing can be written, says why, and finishes its tasks once space is freed', async () => {
  const logs = capturedLogs();
  const { gateway } = await startOnFile(logs);
  gateway.gateway.startWorkers();
  const created = await gateway.create(request);
  expect(created.status).toBe(202);
  writesFail = true;
  // A minute of worker passes (polls due, a result to record) with every write refused.
  await runWorkersFor(gateway, 60_000);
  expect((await gateway.request('GET', '/healthz')).status).toBe(200);
  // Still ready: reads (a task's status, its video) are served, and each write is refused at once
  // with 503 and Retry-After; out of rotation, a lone gateway, or replicas sharing the full
  // database, would leave a load balancer nowhere to send even those.
  expect((await gateway.request('GET', '/readyz')).status).toBe(200);
  expect((await gateway.get(created.body.id)).status).toBe(200);
  // The operator reads why the workers fail, not only that they did.
  expect(logs.text()).toMatch(/"level":"error"[^\n]*"worker":"tracking"[^\n]*"msg":"worker pass failed: the database is full/);

  writesFail = false;
  await runWorkersFor(gateway, 60_000, async () => (await gateway.get(created.body.id)).body.status === 'succeeded');
  expect((await gateway.get(created.body.id)).body.status).toBe('succeeded');
  expect(gateway.simulator('kling3api').tasks).toHaveLength(1);
});

/** The lines logged about worker `worker`'s passes (failed, still failing, succeeding again). */
function workerLines(text: string, worker: string): string[] {
  return text.split('\n').filter((line) => line.includes(`"worker":"${worker}"`) && /"msg":"worker pass/.test(line));
}

// Each worker loop's pass fails every tick (twice a second here, per worker) while the database
// stays full: every one logged its error with a full stack, thousands of lines an hour.
it('logs a worker failing pass after pass while the database stays full once in full, then once a minute with a count, and once when its passes succeed again', async () => {
  const logs = capturedLogs();
  const { gateway } = await startOnFile(logs);
  gateway.gateway.startWorkers();
  const created = await gateway.create(request);
  expect(created.status).toBe(202);
  writesFail = true;
  // Two and a half minutes of passes with every write refused.
  await runWorkersFor(gateway, 150_000);
  const failing = workerLines(logs.text(), 'tracking');
  // The first failure in full, with its stack; then one short line a minute, saying how many failed since.
  expect(failing[0]).toMatch(/"level":"error"[^\n]*"stack":[^\n]*"msg":"worker pass failed: the database is full/);
  const later = failing.slice(1);
  expect(later).toHaveLength(2);
  for (const line of later) {
    expect(line).not.toContain('"stack"');
    expect(line).toMatch(/"level":"error"[^\n]*"code":"SQLITE_FULL"[^\n]*"msg":"worker pass failed: the database is full[^"]* \(still failing: \d+ more passes failed since it was last logged, \d+ in a row\)"/);
  }
  const repeated = later.map((line) => JSON.parse(line) as { failed_since_logged: number; failed_in_a_row: number });
  expect(repeated[0]!.failed_since_logged).toBeGreaterThan(50);
  expect(repeated[1]!.failed_in_a_row).toBeGreaterThan(repeated[0]!.failed_in_a_row);

  writesFail = false;
  await runWorkersFor(gateway, 60_000, async () => (await gateway.get(created.body.id)).body.status === 'succeeded');
  expect((await gateway.get(created.body.id)).body.status).toBe('succeeded');
  const after = workerLines(logs.text(), 'tracking').slice(failing.length);
  expect(after).toHaveLength(1);
  expect(after[0]).toMatch(/"level":"info"[^\n]*"msg":"worker passes succeed again after \d+ failures"/);
  expect((JSON.parse(after[0]!) as { failed_in_a_row: number }).failed_in_a_row).toBeGreaterThan(repeated[1]!.failed_in_a_row);
});

/** Every write fails from the moment the provider takes the create (its attempt already written). */
function fillWhenAccepted(gateway: TestGateway): void {
  const tasks = gateway.simulator('kling3api').tasks as unknown[];
  const push = tasks.push.bind(tasks);
  tasks.push = (...items: unknown[]) => {
    writesFail = true;
    return push(...items);
  };
}

/**
 * A create the provider accepts with every write failing from then on, and the database kept full
 * for `seconds` of gateway time (past the submission's lease when longer than 12 s): the
 * create's answer and the upstream task's id.
 */
async function createdWhileFull(gateway: TestGateway, seconds: number) {
  fillWhenAccepted(gateway);
  const pending = gateway.create(request);
  for (let i = 0; i < 1_000 && gateway.simulator('kling3api').tasks.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const upstreamId = gateway.simulator('kling3api').tasks[0]!.id;
  for (let step = 0; step < seconds; step++) {
    await gateway.clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { created: await pending, upstreamId };
}

it('records a create the provider accepted while the database was full once space is freed within the submission', async () => {
  const { gateway } = await startOnFile();
  fillWhenAccepted(gateway);
  const pending = gateway.create(request);
  for (let i = 0; i < 1_000 && gateway.simulator('kling3api').tasks.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  await gateway.clock.advance(3_000);
  writesFail = false;
  await gateway.clock.advance(2_000);
  const created = await pending;
  expect(created.status).toBe(202);
  expect(created.body.provider_task_id).toBe(gateway.simulator('kling3api').tasks[0]!.id);
  const done = await gateway.finish(created.body.id);
  expect(done.status).toBe('succeeded');
  expect(gateway.simulator('kling3api').tasks).toHaveLength(1);
});

// A full disk lasts longer than a database restart: past the submission's lease the upstream id
// was given up on, and the task failed as if the gateway had stopped mid-create, its paid video abandoned.
it('keeps the upstream task of a create accepted while the database stays full past the submission, and tracks it once space is freed', async () => {
  const logs = capturedLogs();
  const { gateway } = await startOnFile(logs);
  // Half a minute full: longer than the provider's time limit and the margin (12 s here).
  const { created, upstreamId } = await createdWhileFull(gateway, 30);
  // The create is answered with the task as it is written (its create on its way), not held for as long as the disk is full.
  expect(created.status).toBe(202);
  expect(created.body.status).toBe('queued');
  // The operator is told which upstream task is waiting to be written.
  expect(logs.text()).toMatch(new RegExp(`"level":"error"[^\\n]*"provider_task_id":"${upstreamId}"`));
  // Worker passes while still full do not settle it as lost.
  gateway.gateway.startWorkers();
  await runWorkersFor(gateway, 20_000);

  writesFail = false;
  await runWorkersFor(gateway, 60_000, async () => (await gateway.get(created.body.id)).body.status === 'succeeded');
  const done = (await gateway.get(created.body.id)).body;
  expect(done).toMatchObject({ status: 'succeeded', provider_task_id: upstreamId });
  expect(done.attempts).toHaveLength(1);
  expect(gateway.simulator('kling3api').tasks).toHaveLength(1);
});

it('stops within its drain while the database is still full, saying which accepted upstream task it could not record', async () => {
  const logs = capturedLogs();
  gw = await startTestGateway({ config: { database: { url: tempDatabaseUrl() }, server: { drain_timeout_ms: 200 } }, logTo: logs.sink });
  const gateway = gw;
  const { created, upstreamId } = await createdWhileFull(gateway, 15);
  expect(created.status).toBe(202);
  await gateway.gateway.close();
  gw = undefined;
  expect(logs.text()).toMatch(new RegExp(`"level":"error"[^\\n]*"provider_task_id":"${upstreamId}"[^\\n]*"msg":"the gateway closed its database before it could record`));
  await Promise.all([...gateway.simulators.values()].map((simulator) => simulator.close()));
});

it("answers 503 with Retry-After, not 500, when PostgreSQL says its disk is full (53100)", async () => {
  gw = await startTestGateway();
  const store = gw.gateway.store;
  store.createTask = async () => {
    throw Object.assign(new Error('could not extend file "base/16384/16397": No space left on device'), { code: '53100' });
  };
  const refused = await gw.create(request);
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(refused.body.detail).toMatch(/database is full/);
  expect(gw.simulator('kling3api').tasks).toHaveLength(0);
});

// On a real full disk SQLite ends the transaction itself; the ROLLBACK that followed failed ("no
// transaction is active"), and that error, not the full disk, made the answer: 500.
it('answers 503 with Retry-After when SQLite ends the transaction itself on a full disk, and takes the create once space is freed', async () => {
  const logs = capturedLogs();
  const { gateway } = await startOnFile(logs);
  writesFail = true;
  fullRollsBack = true;
  const refused = await gateway.create(request, { 'idempotency-key': 'rolled-back' });
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(refused.body.detail).toMatch(/database is full/);
  expect(logs.text()).not.toContain('no transaction is active');
  expect(gateway.simulator('kling3api').tasks).toHaveLength(0);

  writesFail = false;
  const taken = await gateway.create(request, { 'idempotency-key': 'rolled-back' });
  expect(taken.status).toBe(202);
  expect(gateway.simulator('kling3api').tasks).toHaveLength(1);
});

it('records, during its graceful stop, an accepted create the full database refused, once space is freed before the drain ends', async () => {
  const database = tempDatabaseUrl();
  gw = await startTestGateway({ config: { database: { url: database }, server: { drain_timeout_ms: 5_000 } } });
  const gateway = gw;
  const { created, upstreamId } = await createdWhileFull(gateway, 15);
  const stopping = gateway.gateway.close();
  writesFail = false;
  await new Promise((resolve) => setTimeout(resolve, 20));
  await gateway.clock.advance(2_000);
  await stopping;
  gw = undefined;
  const next = await startTestGateway({ config: { database: { url: database } }, endpoints: gateway.endpoints, simulators: gateway.simulators });
  try {
    expect((await next.get(created.body.id)).body).toMatchObject({ status: 'processing', provider_task_id: upstreamId });
  } finally {
    await next.close();
    await Promise.all([...gateway.simulators.values()].map((simulator) => simulator.close()));
  }
});

// Found by a review: only the process writing an accepted create down left its task alone. Another
// process sharing the database (a `WORKERS` worker, a replica) saw its lease run out once space
// returned, settled it first as lost and, on kling3api (which cannot be asked), failed it
// `interrupted` while its video rendered and billed.
it("tracks a create another process accepted while the database was full, when this process's recovery reaches it first once space is freed", async () => {
  // Two processes on one SQLite file (as `WORKERS` opens it), sharing simulators and clock.
  const url = tempDatabaseUrl();
  const store = await openStore(url, { sharedByProcesses: true });
  const db = store.db as Kysely<any>;
  const logs = capturedLogs();
  const sender = await startTestGateway({ config: { database: { url } }, store, owner: 'sender', logTo: logs.sink });
  const other = await startTestGateway({ config: { database: { url } }, store, endpoints: sender.endpoints, simulators: sender.simulators, clock: sender.clock, owner: 'other' });
  try {
    const { created, upstreamId } = await createdWhileFull(sender, 30);
    expect(created.body.status).toBe('queued');
    await freeSpace(db);
    writesFail = false;
    // The other process's passes run first at each step, before the sender's next try of its writes.
    for (let step = 0; step < 60; step++) {
      const task = (await other.get(created.body.id)).body;
      if (['succeeded', 'failed'].includes(task.status)) break;
      await other.gateway.runOnce();
      await sender.clock.advance(1_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const done = (await other.get(created.body.id)).body;
    expect(done).toMatchObject({ status: 'succeeded', provider_task_id: upstreamId, error: null });
    expect(done.attempts).toHaveLength(1);
    expect(done.attempts[0]).toMatchObject({ outcome: 'accepted', message: null });
    // The sender says what it did, as a warning: the task is tracked, nothing is lost.
    expect(logs.text()).toMatch(new RegExp(`"level":"warn"[^\\n]*"provider_task_id":"${upstreamId}"[^\\n]*"msg":"task accepted upstream after its submission lease was taken over`));
    expect(logs.text()).not.toContain('tracked by nobody');
    expect(sender.simulator('kling3api').tasks).toHaveLength(1);
  } finally {
    await other.gateway.close();
    await sender.close();
    await store.close();
  }
});
