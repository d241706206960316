/**
 * Later copies (SPEC §7, keeping results): an output given up on because the gateway's OWN storage
 * failed (a full disk) is copied again after its task succeeded, with a long back-off, until the
 * provider's URL dies (a day when the provider documents no lifetime). The task stays `succeeded`
 * and sends no second event; once the storage takes the copy the output reads `stored` with the
 * gateway's own URL and `/content` serves the copy. The disk is made full by failing node's
 * `fdatasync` for the storage's temporary files, as a full disk answers it.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { outputKey } from '../../src/core/tasks/result-custody.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openStore } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { capturedLogs } from '../support/captured-logs.js';
import { TENANT_KEY, startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';
import { closeWebhookReceivers, webhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

const postgres = await postgresAvailable();

const injected = vi.hoisted(() => ({ full: false, failures: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  return {
    ...actual,
    fdatasync: (fd: number, callback: any) => {
      if (!injected.full) return actual.fdatasync(fd, callback);
      injected.failures++;
      const error = Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
      setImmediate(() => callback(error));
    },
  };
});

let gw: TestGateway | undefined;
const receivers: WebhookReceiver[] = [];
afterEach(async () => {
  injected.full = false;
  injected.failures = 0;
  await closeWebhookReceivers(receivers);
  await gw?.close();
  gw = undefined;
});

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function filesUnder(directory: string): string[] {
  return readdirSync(directory, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

/** A gateway whose disk is full, and a task that succeeded with its output not stored for it. */
async function succeededWhileFull(options: { database?: string; retentionDays?: number } = {}) {
  const directory = mkdtempSync(join(tmpdir(), 'kling-gw-recopy-'));
  const logs = capturedLogs();
  const receiver = await webhookReceiver(false);
  receivers.push(receiver);
  gw = await startTestGateway({
    config: {
      storage: { mode: 'copy', max_attempts: 3, filesystem: { path: directory }, ...(options.retentionDays !== undefined ? { retention_days: options.retentionDays } : {}) },
      webhooks: { allow_private_targets: true },
      ...(options.database ? { database: { url: options.database } } : {}),
    },
    logTo: logs.sink,
  });
  injected.full = true;
  const created = await gw.create({ model: 'kling-v3', prompt: 'a full disk', routing: { providers: ['kling3api'] }, webhook_url: receiver.url });
  const done = await gw.finish(created.body.id, 5_000);
  return { directory, logs, receiver, done, gateway: gw };
}

async function eventsOf(id: string): Promise<string[]> {
  const deliveries = await gw!.request<any>('GET', `/v1/videos/${id}/webhooks`);
  return deliveries.body.data.map((delivery: any) => delivery.type);
}

it('copies an output again once the full disk has room: GET then shows it stored, /content serves the copy, and no second event is sent', async () => {
  const { directory, logs, done } = await succeededWhileFull();
  expect(done.status).toBe('succeeded');
  const upstreamUrl = done.outputs[0].upstream_url;
  // kling3api documents no lifetime of its results: later copies go on for a day.
  const until = new Date(gw!.clock.now() + 24 * HOUR).toISOString().slice(0, 13);
  expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', url: upstreamUrl, sha256: null });
  expect(done.outputs[0].storage_error).toMatch(/^the gateway's storage could not write the copy \(gave up after 3 tries; copied again later, until /);
  expect(done.outputs[0].storage_error).toContain(until);
  expect(await eventsOf(done.id)).toContain('video.succeeded');
  const events = await eventsOf(done.id);

  // Still full at the first later copy (a minute on): it stays not stored, and is due again.
  const before = injected.failures;
  await gw!.advance(MINUTE);
  expect(injected.failures).toBeGreaterThan(before);
  const still = (await gw!.get(done.id)).body;
  expect(still.status).toBe('succeeded');
  expect(still.outputs[0]).toMatchObject({ storage: 'not_stored', url: upstreamUrl });
  expect(still.outputs[0].storage_error).toMatch(/gave up after 3 tries and 1 later try; copied again later, until /);

  // Room again: the next later copy (two minutes on) stores it.
  injected.full = false;
  await gw!.advance(MINUTE);
  expect((await gw!.get(done.id)).body.outputs[0].storage).toBe('not_stored');
  await gw!.advance(MINUTE);
  const recovered = (await gw!.get(done.id)).body;
  expect(recovered.status).toBe('succeeded');
  expect(recovered.outputs[0]).toMatchObject({ storage: 'stored', storage_error: null, upstream_url: upstreamUrl });
  expect(recovered.outputs[0].url).toContain(`/v1/videos/${done.id}/content`);
  expect(recovered.outputs[0].sha256).toMatch(/^[0-9a-f]{64}$/);

  // The content route serves the gateway's copy, whole, as any stored output.
  const content = await fetch(`${gw!.url}/v1/videos/${done.id}/content`, { headers: { authorization: `Bearer ${TENANT_KEY}` }, redirect: 'manual' });
  expect(content.status).toBe(200);
  const body = Buffer.from(await content.arrayBuffer());
  expect(createHash('sha256').update(body).digest('hex')).toBe(recovered.outputs[0].sha256);
  expect(content.headers.get('etag')).toBe(`"${recovered.outputs[0].sha256}"`);
  const files = filesUnder(directory);
  expect(files).toHaveLength(1);
  expect(files[0]).not.toContain('.partial');

  // A replica that gave the first copy up and stalled past its lease before deleting what that
  // copy may have left deletes the first copy's key: the later copy was stored under its own.
  const firstKey = outputKey({ tenant: 'acme', id: done.id, createdAt: Date.parse(done.created_at) }, 0, 'video/mp4');
  expect(files[0]!.endsWith(firstKey)).toBe(false);
  await rm(join(directory, firstKey), { force: true });
  expect((await fetch(`${gw!.url}/v1/videos/${done.id}/content`, { headers: { authorization: `Bearer ${TENANT_KEY}` } })).status).toBe(200);

  // No second event: the task's deliveries are what they were.
  expect(await eventsOf(done.id)).toEqual(events);
  expect(logs.text()).toContain("output recovered: stored by a later copy after the gateway's storage had failed");
  const metrics = await (await fetch(`${gw!.url}/metrics`)).text();
  expect(metrics).toMatch(/output_copies_total\{outcome="recovered"\} 1/);
  expect(metrics).toMatch(/output_copies_total\{outcome="recopy_failed"\} 1/);

  // Nothing is copied again after.
  const failures = injected.failures;
  injected.full = true;
  await gw!.advance(2 * HOUR);
  expect(injected.failures).toBe(failures);
});

it('gives up for good once the day without a documented lifetime is over: the output stays not_stored with why, and no file is left', async () => {
  const { directory, done } = await succeededWhileFull();
  const started = gw!.clock.now();
  // Later copies double from a minute up to an hour: about 29 in a day.
  let tries = 0;
  while (gw!.clock.now() - started < 25 * HOUR) {
    const before = injected.failures;
    await gw!.advance(30 * MINUTE);
    if (injected.failures > before) tries++;
  }
  const after = (await gw!.get(done.id)).body;
  expect(after.status).toBe('succeeded');
  expect(after.outputs[0]).toMatchObject({ storage: 'not_stored', url: done.outputs[0].upstream_url });
  expect(after.outputs[0].storage_error).toMatch(/^the gateway's storage could not write the copy \(gave up after 3 tries and \d+ later tries\)$/);
  expect(after.outputs[0].storage_error).not.toContain('copied again later');
  // Back-off: far fewer tries than one a minute, at most one per half-hour step.
  expect(tries).toBeGreaterThan(5);
  expect(tries).toBeLessThanOrEqual(50);
  // None after the end, even with room.
  injected.full = false;
  await gw!.advance(2 * HOUR);
  expect((await gw!.get(done.id)).body.outputs[0].storage).toBe('not_stored');
  expect(filesUnder(directory)).toEqual([]);
});

it('does not copy again an output of a task whose retention ended first', async () => {
  // Half an hour of retention: over before the disk has room.
  const { directory, done } = await succeededWhileFull({ retentionDays: 1 / 48 });
  await gw!.advance(HOUR);
  injected.full = false;
  await gw!.advance(HOUR);
  await gw!.advance(HOUR);
  const after = (await gw!.get(done.id)).body;
  expect(after.outputs[0].storage).toBe('not_stored');
  expect(after.outputs[0].storage_error).toContain("not copied again: the 0.0208-day retention of the task's copies ended first");
  expect(filesUnder(directory)).toEqual([]);
});

it('takes up a later copy whose replica died holding it (killed mid-copy), once its lease ends', async () => {
  const database = tempDatabaseUrl();
  const { directory, done } = await succeededWhileFull({ database });
  injected.full = false;
  // Another process claims the later copy and dies (kill -9): its lease stays on the task.
  const store = await openStore(database);
  try {
    const claimed = await new TaskStore(store).claimDueForRecopy(gw!.clock.now() + MINUTE, 'a-replica-that-died', 30_000, 10);
    expect(claimed.map((row) => row.id)).toEqual([done.id]);
  } finally {
    await store.close();
  }
  await gw!.advance(MINUTE);
  // Held by the dead replica's lease: not copied yet.
  expect((await gw!.get(done.id)).body.outputs[0].storage).toBe('not_stored');
  await gw!.advance(MINUTE);
  const after = (await gw!.get(done.id)).body;
  expect(after.outputs[0]).toMatchObject({ storage: 'stored', storage_error: null });
  expect(filesUnder(directory)).toHaveLength(1);
});

describe.skipIf(!postgres)('later copies on PostgreSQL replicas', () => {
  const replicas = usePostgresReplicas();

  it('are made by exactly one replica when both run their passes at once', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'kling-gw-recopy-pg-'));
    const config = { storage: { mode: 'copy', max_attempts: 3, filesystem: { path: directory } } };
    const a = await replicas.replica('replica-a', config, { maxConnections: 3 });
    const b = await replicas.replica('replica-b', config, { maxConnections: 3 });
    injected.full = true;
    const created = await a.create({ model: 'kling-v3', prompt: 'a full disk on two replicas', routing: { providers: ['kling3api'] } });
    const done = await a.finish(created.body.id, 5_000);
    expect(done.outputs[0].storage).toBe('not_stored');
    injected.full = false;
    for (let step = 0; step < 3; step++) {
      await replicas.clock.advance(MINUTE);
      await Promise.all([a.gateway.runOnce(), b.gateway.runOnce()]);
    }
    const after = (await b.get(done.id)).body;
    expect(after.outputs[0]).toMatchObject({ storage: 'stored', storage_error: null });
    const recovered = async (replica: TestGateway) => Number(/output_copies_total\{outcome="recovered"\} (\d+)/.exec(await (await fetch(`${replica.url}/metrics`)).text())?.[1] ?? 0);
    expect((await recovered(a)) + (await recovered(b))).toBe(1);
    expect(filesUnder(directory)).toHaveLength(1);
    const content = await fetch(`${b.url}/v1/videos/${done.id}/content`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
    expect(content.status).toBe(200);
    expect(createHash('sha256').update(Buffer.from(await content.arrayBuffer())).digest('hex')).toBe(after.outputs[0].sha256);
  });
});
