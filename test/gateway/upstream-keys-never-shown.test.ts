/**
 * Each adapter's upstream key, whichever way its upstream fails (a 401 quoting the key, a 500
 * quoting every request header back as JSON, a refused connection), reaches no one: not the
 * task (its error and attempts), not the task list, not the outbound webhook the tenant
 * receives, not the logs, and not the pages anyone can read (/healthz, /readyz, /metrics,
 * /openapi.json, the console).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { REFUSED_URL } from '../support/refused-port.js';

const PROVIDERS = [
  { id: 'freepik', key: 'fpk-live-9a41c7e2b5d8', model: 'kling-v3' },
  { id: 'kling3api', key: 'k3a-live-5e8b2d1f7c04', model: 'kling-v3' },
  { id: 'kling-legacy', key: 'klg-live-3c7f9a0e6b12', model: 'kling-v1' },
] as const;

type Failure = 'a 401 quoting the key' | 'a 500 quoting every header' | 'a refused connection';
const FAILURES: Failure[] = ['a 401 quoting the key', 'a 500 quoting every header', 'a refused connection'];

const servers: Server[] = [];
let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
});

async function listening(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The base URL of an upstream failing as `failure` says. */
async function failingUpstream(failure: Failure, received: string[]): Promise<string> {
  if (failure === 'a refused connection') return REFUSED_URL;
  const server = createServer((req, res) => {
    received.push(JSON.stringify(req.headers));
    req.resume();
    req.on('end', () => {
      if (failure === 'a 401 quoting the key') {
        const sent = req.headers['x-freepik-api-key'] ?? req.headers.authorization;
        res.writeHead(401, { 'content-type': 'text/plain' });
        res.end(`invalid credentials: ${sent}`);
        return;
      }
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'internal', message: `failed handling ${req.method} ${req.url} with ${JSON.stringify(req.headers)}`, request_headers: req.headers }));
    });
  });
  servers.push(server);
  return listening(server);
}

/** A receiver of the tenant's webhooks, keeping their bodies. */
async function webhookTarget(): Promise<{ url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      bodies.push(body);
      res.end();
    });
  });
  servers.push(server);
  return { url: `${await listening(server)}/hooks`, bodies };
}

describe.each(PROVIDERS)('the $id key', ({ id, key, model }) => {
  it.each(FAILURES)('is shown nowhere after %s', async (failure) => {
    const logs = capturedLogs();
    const received: string[] = [];
    const target = await webhookTarget();
    gw = await startTestGateway({
      clock: new ManualClock(Date.now()),
      logTo: logs.sink,
      config: { routing: { allow_fallbacks: false } },
      endpointOverrides: { [id]: { baseUrl: await failingUpstream(failure, received), apiKey: key, simulated: false } },
    });
    const created = await gw.create({ model, prompt: 'keys stay home', duration: 5, routing: { providers: [id] }, webhook_url: target.url });
    const task = created.body.status === 'failed' ? created.body : await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    await gw.advanceUntil(async () => target.bodies.some((body) => body.includes('video.failed')), 100);

    const pages = await Promise.all(['/healthz', '/readyz', '/metrics', '/openapi.json', '/console/'].map(async (path) => (await fetch(`${gw!.url}${path}`)).text()));
    const shown: [string, string][] = [
      ['the task', JSON.stringify([created.body, task])],
      ['the task list', JSON.stringify((await gw.request('GET', '/v1/videos')).body)],
      ['the webhooks', target.bodies.join('\n')],
      ['the logs', logs.text()],
      ['the pages', pages.join('\n')],
    ];
    for (const [where, text] of shown) expect(text.includes(key.slice(0, 8)), `${where} show the key`).toBe(false);
    if (failure === 'a refused connection') return;
    // The upstream had the key and quoted it: what the tenant reads of its answer went without it.
    expect(received.join('\n')).toContain(key);
    if (failure === 'a 500 quoting every header') expect(task.error.message).toContain('[redacted]');
  });
});
