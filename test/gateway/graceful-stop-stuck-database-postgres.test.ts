/**
 * SIGTERM while PostgreSQL has stopped answering: its host went silent mid-failover, or a route
 * drops every packet, so the connections stay open and no query ever returns. The stop waited on
 * the worker passes, the dispatcher and the store's close with no bound, so the process never
 * ended and a supervisor had to SIGKILL it. What an operator sees now: the process ends within
 * its drain (`server.drain_timeout_ms`) plus a few seconds, logs what it left running, and every
 * task it had accepted is still in the database for the next start (or another replica).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { intoLogLines, startGatewayProcess } from '../support/gateway-process.js';
import { hangingRelay, type HangingRelay } from '../support/hanging-relay.js';
import { adminQuery, dropSchema, newSchemaName, POSTGRES_URL, postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const DRAIN_MS = 2_000;
const HEADERS = { authorization: 'Bearer dev-key', 'content-type': 'application/json' };
const request = { model: 'kling-v3', prompt: 'a database that stops answering', duration: 5, routing: { providers: ['kling3api'] } };

describe.skipIf(!available)('SIGTERM with PostgreSQL not answering', () => {
  let child: ChildProcess | undefined;
  let relay: HangingRelay | undefined;
  let schema: string | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child!.once('exit', resolve));
    }
    await relay?.close();
    if (schema) await dropSchema(schema);
    child = relay = schema = undefined;
  });

  it.each(['1', '2'])('ends within its drain plus a few seconds, saying what it left, and keeps every task it accepted (WORKERS=%s)', { timeout: 90_000 }, async (workers) => {
    schema = newSchemaName();
    const server = new URL(POSTGRES_URL);
    relay = await hangingRelay(server.hostname, Number(server.port || 5432));
    server.port = String(relay.port);
    server.searchParams.set('schema', schema);
    const dir = mkdtempSync(join(tmpdir(), 'kg-stuck-db-'));
    const shipped = readFileSync(new URL('../../config.yaml', import.meta.url), 'utf8');
    writeFileSync(join(dir, 'config.yaml'), shipped.replace(/# drain_timeout_ms: \d+/, `drain_timeout_ms: ${DRAIN_MS}`));
    const lines: { level?: number | string; msg?: string; abandoned?: string[] }[] = [];
    const started = await startGatewayProcess(
      {
        WORKERS: workers,
        HOST: '127.0.0.1',
        CONFIG_FILE: join(dir, 'config.yaml'),
        DATABASE_URL: server.toString(),
        STORAGE_PATH: join(dir, 'outputs'),
        GATEWAY_API_KEYS: 'dev:dev-key',
        SANDBOX_PROCESSING_MS: '600000',
        LOG_LEVEL: 'info',
      },
      intoLogLines(lines),
    );
    child = started.child;
    const created = await fetch(`${started.url}/v1/videos`, { method: 'POST', headers: HEADERS, body: JSON.stringify(request) });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };

    relay.hang();
    // A create on its way into the silent database, and the worker passes' queries behind it.
    const stuck = fetch(`${started.url}/v1/videos`, { method: 'POST', headers: HEADERS, body: JSON.stringify(request) }).then(
      (answer) => answer.status,
      () => 'no answer',
    );
    await expect.poll(() => relay!.heldBytes() > 0, { timeout: 10_000 }).toBe(true);

    const signalledAt = Date.now();
    child.kill('SIGTERM');
    const exit = await new Promise<number | null | 'still running'>((resolve) => {
      const timer = setTimeout(() => resolve('still running'), 40_000);
      child!.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    const tookMs = Date.now() - signalledAt;
    expect(exit).toBe(0);
    // The drain, the listener's close (a few seconds for answers being written), the bound after it
    // (and, with WORKERS, the primary's own store close after the workers'), and a start's slack.
    expect(tookMs).toBeLessThan(DRAIN_MS + 4_000 + 5_000 + (workers === '1' ? 0 : 5_000) + 4_000);
    // The create caught in the database was never answered as made (nor refused as not made).
    expect(await stuck).not.toBe(202);
    const abandoned = lines.find((line) => line.msg?.includes('left running'));
    expect(abandoned?.abandoned?.length).toBeGreaterThan(0);
    expect(abandoned?.abandoned).toContain('the database connections');

    // Nothing accepted was lost: the task is in the database for the next start.
    expect((await adminQuery(`SELECT id FROM ${schema}.tasks WHERE id = $1`, [id])).rowCount).toBe(1);
  });
});

describe.skipIf(!available)('a stop while PostgreSQL does not answer the write of an accepted create', () => {
  const replicas = usePostgresReplicas();
  let relay: HangingRelay | undefined;
  // Registered after the replicas' hooks, so it runs first: the stores close once the relay has let go of their connections.
  afterEach(async () => {
    await relay?.close();
    relay = undefined;
  });

  // The stop ended (bounded) with the write still waiting on the silent database: the upstream id
  // only this process knew was in no log line, and kling3api's task could never be found again.
  it('logs the upstream id of a create the provider accepted that the database never took', async () => {
    const server = new URL(POSTGRES_URL);
    relay = await hangingRelay(server.hostname, Number(server.port || 5432));
    server.port = String(relay.port);
    const logs = capturedLogs();
    const sender = await replicas.replica('sender', { server: { drain_timeout_ms: 500 } }, { url: server.toString() }, {}, logs.sink);
    // The database goes silent as kling3api takes the create (its attempt already written).
    const upstream = replicas.simulators.get('kling3api')!.tasks as unknown as { id: string }[];
    const push = upstream.push.bind(upstream);
    upstream.push = (...items: { id: string }[]) => {
      relay!.hang();
      return push(...items);
    };
    const answer = sender.create(request).catch(() => 'no answer');
    await expect.poll(() => upstream.length > 0 && relay!.heldBytes() > 0, { timeout: 10_000 }).toBe(true);

    const closing = Date.now();
    await sender.gateway.close();
    expect(Date.now() - closing).toBeLessThan(500 + 4_000 + 5_000 + 4_000);
    const line = logs
      .text()
      .split('\n')
      .find((each) => each.includes(upstream[0]!.id) && each.includes('stopping before the database recorded'));
    expect(line).toMatch(/"answer":"accepted"/);
    expect(line).toMatch(/"level":"error"/);
    expect(line).toMatch(/"provider":"kling3api"/);
    void answer;
  });
});
