/**
 * The benchmark's create baseline (`bench/bare-create-server.mjs`) against the Freepik simulator:
 * it must do the work it is compared for — refuse bad keys and bodies, make the very upstream
 * create the gateway made, answer `202` with the upstream's task, and take its tasks' signed
 * webhooks (refusing forged ones) — or the floor it reports would be a floor of doing nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { CreateVideoRequest } from '../../src/core/model/canonical.js';
import { matchOffering, resolveRequest } from '../../src/core/model/capabilities.js';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { toFreepikRequest } from '../../src/providers/freepik/freepik-request.js';
import { freepikProvider } from '../../src/providers/freepik/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const API_KEY = 'sim-freepik-key';
const WEBHOOK_SECRET = 'sim-freepik-webhook-secret';
const GATEWAY_KEY = 'bare-test-key';
const QUEUED_MS = 1_000;
const PROCESSING_MS = 2_000;
const CREATE = { model: 'kling-v3', quality: 'pro', prompt: 'A red fox trots through fresh snow at dawn', duration: 5, aspect_ratio: '16:9' };

let clock: ManualClock;
let simulator: ProviderSimulator;
let directory: string;
let server: ChildProcess;
let url: string;

beforeAll(async () => {
  // Webhook timestamps come from this clock; the bare server checks them against the real one.
  clock = new ManualClock(Date.now());
  simulator = freepikProvider.createSimulator({ clock, apiKey: API_KEY, webhookSecret: WEBHOOK_SECRET, timing: { queuedMs: QUEUED_MS, processingMs: PROCESSING_MS } });
  const baseUrl = await simulator.listen(0);
  const resolved = resolveRequest(CreateVideoRequest.parse(CREATE));
  const { offering } = matchOffering(freepikProvider.offerings, resolved);
  if (!offering) throw new Error('no Freepik offering for the benchmark request');
  const upstream = toFreepikRequest(resolved.request, offering);
  directory = mkdtempSync(join(tmpdir(), 'bare-create-'));
  server = spawn(process.execPath, [join(ROOT, 'bench/bare-create-server.mjs')], {
    cwd: ROOT,
    env: {
      ...process.env,
      BARE_DATABASE: join(directory, 'bare.db'),
      BARE_KEY: GATEWAY_KEY,
      BARE_UPSTREAM: JSON.stringify({ url: `${baseUrl}${upstream.path}`, headers: { 'x-freepik-api-key': API_KEY }, body: upstream.body }),
      BARE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  url = await new Promise<string>((resolve, reject) => {
    server.once('exit', (code) => reject(new Error(`the bare create server exited (code ${code})`)));
    createInterface({ input: server.stdout! }).once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
  });
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  await simulator?.close();
  rmSync(directory, { recursive: true, force: true });
});

async function create(body: unknown, key = GATEWAY_KEY): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function storedStatus(id: string): string | undefined {
  const db = new Database(join(directory, 'bare.db'), { readonly: true });
  try {
    return (db.prepare('SELECT status FROM tasks WHERE id = ?').get(id) as { status: string } | undefined)?.status;
  } finally {
    db.close();
  }
}

/** Waits (in real time: the webhook crosses HTTP) until the stored status is `status`. */
async function untilStored(id: string, status: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (storedStatus(id) !== status) {
    if (Date.now() > deadline) throw new Error(`task ${id} is ${storedStatus(id)}, not ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('bare create server', () => {
  it('refuses an unknown key and an invalid body, and sends nothing upstream for them', async () => {
    const before = simulator.requests.length;
    expect((await create(CREATE, 'not-the-key')).status).toBe(401);
    const invalid = await create({ ...CREATE, duration: 99 });
    expect(invalid.status).toBe(400);
    expect(invalid.body.errors).toEqual([expect.objectContaining({ path: 'duration' })]);
    expect(simulator.requests.length).toBe(before);
  });

  it('makes the upstream create with its own webhook URL, answers 202, and follows its signed webhooks to the end', async () => {
    const answer = await create(CREATE);
    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ object: 'video', status: 'queued', provider: 'freepik', model: 'kling-v3' });
    const providerTaskId = answer.body.provider_task_id as string;
    const sent = simulator.tasks.find((task) => task.id === providerTaskId);
    expect(sent?.body).toMatchObject({ webhook_url: `${url}/v1/webhooks/freepik` });
    const id = answer.body.id as string;
    expect(storedStatus(id)).toBe('queued');

    await clock.advance(QUEUED_MS);
    await untilStored(id, 'processing');
    await clock.advance(PROCESSING_MS);
    await untilStored(id, 'succeeded');
  });

  it('refuses a webhook whose signature does not match', async () => {
    const answer = await create(CREATE);
    const body = JSON.stringify({ task_id: answer.body.provider_task_id, status: 'COMPLETED', generated: [] });
    const forged = await fetch(`${url}/v1/webhooks/freepik`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': 'msg_forged',
        'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
        'webhook-signature': `v1,${Buffer.alloc(32).toString('base64')}`,
      },
      body,
    });
    expect(forged.status).toBe(401);
    expect(storedStatus(answer.body.id as string)).toBe('queued');
  });
});
