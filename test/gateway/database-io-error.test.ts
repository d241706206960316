/**
 * The embedded SQLite file's disk refuses a write: an I/O error (`SQLITE_IOERR_WRITE` from a disk
 * quota, EDQUOT, or a file past its size limit, EFBIG; `SQLITE_IOERR_FSYNC` from a failing disk)
 * or a file system remounted read-only. Injected on the gateway's own connection as SQLite
 * reports it (better-sqlite3 gives the extended code): every statement that writes fails, or the
 * COMMIT fails and SQLite ends the transaction itself. Clearing it is the operator's repair.
 */
import SqliteDatabase from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { capturedLogs } from '../support/captured-logs.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  failure = undefined;
  atCommit = false;
  await gw?.close();
  gw = undefined;
});

/** The code every write fails with while set. */
let failure: { code: string; message: string } | undefined;
/** With `failure`: the COMMIT fails instead, and SQLite rolls the transaction back itself. */
let atCommit = false;
const statementMethods = Object.getPrototypeOf(new SqliteDatabase(':memory:').prepare('SELECT 1')) as Record<string, (...args: unknown[]) => unknown>;
for (const method of ['run', 'get', 'all', 'iterate'] as const) {
  const original = statementMethods[method]!;
  statementMethods[method] = function (this: { readonly: boolean; source: string; database: SqliteDatabase.Database }, ...args: unknown[]) {
    const failsHere = atCommit ? /^commit/i.test(this.source) && this.database.inTransaction : !this.readonly;
    if (failure && failsHere) {
      if (atCommit) this.database.exec('ROLLBACK');
      throw new SqliteDatabase.SqliteError(failure.message, failure.code);
    }
    return original.apply(this, args);
  };
}

const IO_ERRORS = [
  { code: 'SQLITE_IOERR_WRITE', message: 'disk I/O error' },
  { code: 'SQLITE_IOERR_FSYNC', message: 'disk I/O error' },
  { code: 'SQLITE_READONLY', message: 'attempt to write a readonly database' },
];

const request = { model: 'kling-v3', prompt: 'a failing disk', duration: 5, routing: { providers: ['kling3api'] } };

async function startOnFile(logs = capturedLogs()) {
  gw = await startTestGateway({ config: { database: { url: tempDatabaseUrl() } }, logTo: logs.sink });
  return { gateway: gw, logs };
}

for (const error of IO_ERRORS) {
  for (const where of ['statement', 'commit'] as const) {
    it(`answers a create its disk refuses (${error.code} at the ${where}) with 503 and Retry-After, sends nothing, and takes it with the same Idempotency-Key once the disk takes writes`, async () => {
      const { gateway, logs } = await startOnFile();
      failure = error;
      atCommit = where === 'commit';
      const refused = await gateway.create(request, { 'idempotency-key': 'io-1' });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('30');
      expect(refused.body.type).toMatch(/retry-later$/);
      expect(refused.body.detail).toMatch(/could not read or write its disk/);
      expect(gateway.simulator('kling3api').tasks).toHaveLength(0);
      // The operator reads it as an error, with SQLite's code.
      expect(logs.text()).toMatch(new RegExp(`"level":"error"[^\\n]*"msg":"the database's disk refused a read or write \\(${error.code}\\)`));
      expect(logs.text()).not.toMatch(/"msg":"unhandled error"/);

      failure = undefined;
      atCommit = false;
      const taken = await gateway.create(request, { 'idempotency-key': 'io-1' });
      expect(taken.status).toBe(202);
      expect(taken.headers.get('idempotent-replayed')).toBeNull();
      expect(gateway.simulator('kling3api').tasks).toHaveLength(1);
    });
  }
}

it('answers a provider webhook its disk refuses with 503 and Retry-After, so the provider sends it again, and applies the one sent again', async () => {
  const { gateway } = await startOnFile();
  const created = await gateway.create({ ...request, routing: { providers: ['freepik'] } });
  expect(created.body.status).toBe('queued');
  const raw = JSON.stringify({ task_id: created.body.provider_task_id, status: 'COMPLETED', generated: ['https://cdn.example/a.mp4'] });
  const id = 'wh_io_1';
  const timestamp = String(Math.floor(gateway.clock.now() / 1000));
  const secret = gateway.endpoints.get('freepik')!.webhookSecret!;
  const send = () =>
    gateway.request('POST', '/v1/webhooks/freepik', raw, { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signFreepikWebhook(secret, id, timestamp, raw) }, null);

  failure = IO_ERRORS[0];
  const refused = await send();
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toBe('30');
  expect((await gateway.get(created.body.id)).body.status).toBe('queued');

  failure = undefined;
  expect((await send()).status).toBe(200);
  expect((await gateway.get(created.body.id)).body.status).toBe('succeeded');
  expect(gateway.simulator('freepik').tasks).toHaveLength(1);
});

it('keeps its workers running while its disk refuses writes, says why with the code, and finishes its tasks once the disk takes them', async () => {
  const { gateway, logs } = await startOnFile();
  gateway.gateway.startWorkers();
  const created = await gateway.create(request);
  expect(created.status).toBe(202);
  failure = IO_ERRORS[1];
  for (let step = 0; step < 10; step++) {
    await gateway.clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(logs.text()).toMatch(/"level":"error"[^\n]*"worker":"tracking"[^\n]*"msg":"worker pass failed: the database's disk refused a read or write \(SQLITE_IOERR_FSYNC\)/);

  failure = undefined;
  for (let step = 0; step < 60 && (await gateway.get(created.body.id)).body.status !== 'succeeded'; step++) {
    await gateway.clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect((await gateway.get(created.body.id)).body.status).toBe('succeeded');
  expect(gateway.simulator('kling3api').tasks).toHaveLength(1);
});

// Damage no wait repairs: a 500 and an "unhandled error", not a 503 asking to come back later.
for (const error of [
  { code: 'SQLITE_CORRUPT', message: 'database disk image is malformed' },
  { code: 'SQLITE_IOERR_DATA', message: 'disk I/O error' },
  { code: 'SQLITE_IOERR_CORRUPTFS', message: 'disk I/O error' },
  { code: 'SQLITE_NOTADB', message: 'file is not a database' },
  { code: 'SQLITE_READONLY_DBMOVED', message: 'attempt to write a readonly database' },
]) {
  it(`answers a create that meets a damaged or replaced database file (${error.code}) with 500, not as a passing trouble`, async () => {
    const { gateway, logs } = await startOnFile();
    failure = error;
    const refused = await gateway.create(request);
    expect(refused.status).toBe(500);
    expect(refused.headers.get('retry-after')).toBeNull();
    expect(logs.text()).toMatch(new RegExp(`"level":"error"[^\\n]*"code":"${error.code}"[^\\n]*"msg":"unhandled error"`));
    expect(gateway.simulator('kling3api').tasks).toHaveLength(0);
  });
}

it("answers 503 with Retry-After, not 500, when PostgreSQL reports an I/O error (58030)", async () => {
  gw = await startTestGateway();
  gw.gateway.store.createTask = async () => {
    throw Object.assign(new Error('could not write to file "pg_wal/xlogtemp.123": Input/output error'), { code: '58030' });
  };
  const refused = await gw.create(request);
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toBe('30');
  expect(refused.body.detail).toMatch(/could not read or write its disk/);
  expect(gw.simulator('kling3api').tasks).toHaveLength(0);
});
