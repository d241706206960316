/**
 * The create baseline of `npm run bench`: the least a server on the gateway's own stack does for
 * `POST /v1/videos` while keeping the guarantees a create needs, so the benchmark can say how far
 * the gateway is from that floor, not only from calling the upstream directly. Express, its JSON
 * body parser, a bearer-key check, a zod check of the canonical fields the benchmark sends, one
 * better-sqlite3 transaction writing the task and its attempt before the request leaves, the
 * upstream create through axios on a keep-alive pool, a second transaction writing what the
 * upstream accepted, and the task's JSON sent back with `202`. Its tasks' Freepik webhooks are
 * verified (Standard Webhooks HMAC, timestamp window, replay by `webhook-id`) and written the same
 * way. What it leaves out, and the gateway does: routing and failover, limits and budgets,
 * idempotency, usage lines, polling as a safety net, copying results into storage, metrics and
 * logs. Plain JavaScript run by node, in a process of its own, like the gateway's compiled build.
 *
 *   BARE_DATABASE=<file> BARE_KEY=<key> BARE_UPSTREAM=<json: {url, headers, body}>
 *   BARE_WEBHOOK_SECRET=<secret> node bench/bare-create-server.mjs
 *
 * `BARE_UPSTREAM` is the upstream create the gateway made for the same request (its URL, auth
 * headers and body); this server sends that body with its own `webhook_url`. Listens on a free
 * loopback port and prints `{"url": …}`.
 */
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import axios from 'axios';
import Database from 'better-sqlite3';
import express from 'express';
import { z } from 'zod';

const key = process.env.BARE_KEY ?? 'bench-secret-key';
const upstream = JSON.parse(process.env.BARE_UPSTREAM ?? '{}');
const webhookSecret = process.env.BARE_WEBHOOK_SECRET ?? '';

const db = new Database(process.env.BARE_DATABASE ?? ':memory:');
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.exec(`
  CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, status TEXT NOT NULL,
    provider_task_id TEXT, provider_status TEXT, request TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS tasks_provider_task ON tasks (provider_task_id) WHERE provider_task_id IS NOT NULL;
  CREATE TABLE IF NOT EXISTS attempts (task_id TEXT NOT NULL, seq INTEGER NOT NULL, outcome TEXT NOT NULL,
    http_status INTEGER, latency_ms INTEGER, at INTEGER NOT NULL, PRIMARY KEY (task_id, seq));
  CREATE TABLE IF NOT EXISTS inbound_webhooks (webhook_id TEXT PRIMARY KEY, received_at INTEGER NOT NULL);
`);
const insertTask = db.prepare('INSERT INTO tasks (id, tenant, status, request, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)');
const insertAttempt = db.prepare("INSERT INTO attempts (task_id, seq, outcome, at) VALUES (?, 1, 'pending', ?)");
const acceptTask = db.prepare('UPDATE tasks SET status = ?, provider_task_id = ?, provider_status = ?, updated_at = ? WHERE id = ?');
const settleAttempt = db.prepare('UPDATE attempts SET outcome = ?, http_status = ?, latency_ms = ? WHERE task_id = ? AND seq = 1');
const rememberWebhook = db.prepare('INSERT INTO inbound_webhooks (webhook_id, received_at) VALUES (?, ?) ON CONFLICT DO NOTHING');
const reportStatus = db.prepare('UPDATE tasks SET status = ?, provider_status = ?, updated_at = ? WHERE provider_task_id = ?');
const begin = db.transaction((task, request, now) => {
  insertTask.run(task.id, task.tenant, 'queued', request, now, now);
  insertAttempt.run(task.id, now);
});
const accept = db.transaction((id, answer, latencyMs, now) => {
  const accepted = answer.status >= 200 && answer.status < 300 && typeof answer.data?.data?.task_id === 'string';
  if (accepted) acceptTask.run(STATUS[answer.data.data.status] ?? 'queued', answer.data.data.task_id, answer.data.data.status, now, id);
  else acceptTask.run('failed', null, null, now, id);
  settleAttempt.run(accepted ? 'accepted' : 'rejected', answer.status, latencyMs, id);
  return accepted;
});
const report = db.transaction((webhookId, task, now) => {
  if (rememberWebhook.run(webhookId, now).changes === 0) return;
  reportStatus.run(STATUS[task.status] ?? 'processing', task.status, now, task.task_id);
});

const STATUS = { CREATED: 'queued', IN_PROGRESS: 'processing', COMPLETED: 'succeeded', FAILED: 'failed' };
const digest = (text) => createHash('sha256').update(text).digest('hex');
const tenants = new Map([[digest(key), 'bench']]);
const CreateRequest = z.strictObject({
  model: z.enum(['kling-v3', 'kling-v3-omni']),
  quality: z.enum(['pro', 'std']).default('pro'),
  prompt: z.string().min(1).max(2500),
  duration: z.number().int().min(3).max(15).default(5),
  aspect_ratio: z.enum(['16:9', '9:16', '1:1']).default('16:9'),
  routing: z.strictObject({ providers: z.array(z.string()).max(3), allow_fallbacks: z.boolean() }).optional(),
});
const agent = new http.Agent({ keepAlive: true, scheduling: 'lifo' });
const client = axios.create({ httpAgent: agent, validateStatus: () => true, maxRedirects: 0, timeout: 10_000 });

function verified(req) {
  const id = req.header('webhook-id');
  const timestamp = req.header('webhook-timestamp');
  const signatures = (req.header('webhook-signature') ?? '').split(' ');
  if (!id || !/^\d{1,12}$/.test(timestamp ?? '') || Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const expected = createHmac('sha256', webhookSecret).update(`${id}.${timestamp}.`).update(req.body).digest();
  return signatures.some((entry) => {
    const given = Buffer.from(entry.startsWith('v1,') ? entry.slice(3) : '', 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

const app = express();
app.disable('x-powered-by');
let selfUrl = '';
app.post('/v1/videos', express.json(), async (req, res) => {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.header('authorization') ?? '');
  const tenant = match?.[1] ? tenants.get(digest(match[1])) : undefined;
  if (!tenant) {
    res.status(401).json({ title: 'Unauthorized' });
    return;
  }
  const parsed = CreateRequest.safeParse(req.body);
  if (!parsed.success) {
    res.status(400).json({ title: 'Invalid request', errors: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })) });
    return;
  }
  const now = Date.now();
  const task = { id: `vid_${randomUUID().replaceAll('-', '')}`, tenant };
  begin(task, JSON.stringify(parsed.data), now);
  let answer;
  try {
    answer = await client.post(upstream.url, { ...upstream.body, webhook_url: `${selfUrl}/v1/webhooks/freepik` }, { headers: upstream.headers });
  } catch {
    answer = { status: 0, data: undefined };
  }
  const accepted = accept(task.id, answer, Date.now() - now, Date.now());
  const data = answer.data?.data;
  res.status(accepted ? 202 : 502).json({
    id: task.id,
    object: 'video',
    status: accepted ? (STATUS[data.status] ?? 'queued') : 'failed',
    ...parsed.data,
    provider: 'freepik',
    provider_task_id: accepted ? data.task_id : null,
    created_at: new Date(now).toISOString(),
  });
});
app.post('/v1/webhooks/freepik', express.raw({ type: () => true }), (req, res) => {
  if (!Buffer.isBuffer(req.body) || !verified(req)) {
    res.status(401).json({ title: 'Bad signature' });
    return;
  }
  report(req.header('webhook-id'), JSON.parse(req.body.toString('utf8')), Date.now());
  res.status(200).json({ received: true });
});

const server = app.listen(0, '127.0.0.1', () => {
  selfUrl = `http://127.0.0.1:${server.address().port}`;
  process.stdout.write(`${JSON.stringify({ url: selfUrl })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
