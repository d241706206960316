/**
 * The embedded SQLite file cannot grow (its disk is full, `SQLITE_FULL`). Simulated on the
 * gateway's own connection: `max_page_count` holds the file at its size, and a filler table takes
 * the pages the file had free, so every write that needs a new page fails as on a full disk.
 * Raising the limit again is the operator freeing space.
 */
import { sql, type Kysely } from 'kysely';
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { capturedLogs } from '../support/captured-logs.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

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
