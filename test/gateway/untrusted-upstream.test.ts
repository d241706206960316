/**
 * Upstream content is not trusted further than it must be: a signed webhook cannot make a task
 * succeed with a non-http(s) result URL, made-up status words add no metrics series, and an
 * upstream that echoes its key back (in any encoding, or cut short) never gets it to a tenant,
 * a task event or a log line.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { postFreepikWebhook } from '../support/freepik-webhook.js';
import { OTHER_TENANT_KEY, startTestGateway, TENANT_WEBHOOK_SECRET, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
let upstream: Server | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  upstream = undefined;
});

const request = { model: 'kling-v3', prompt: 'untrusted', duration: 5 };

describe('result URLs', () => {
  it.each([['javascript:alert(document.cookie)'], ['data:text/html,<script>alert(1)</script>'], ['file:///etc/passwd'], ['//evil.example/x.mp4']])(
    'a signed webhook reporting %s fails the task as a provider error',
    async (url) => {
      gw = await startTestGateway();
      const created = await gw.create(request);
      expect(created.body.provider).toBe('freepik');
      const answer = await postFreepikWebhook(gw, { task_id: created.body.provider_task_id, status: 'COMPLETED', generated: [url] });
      expect(answer.status).toBe(200);
      const task = (await gw.get(created.body.id)).body;
      expect(task.status).toBe('failed');
      expect(task.error.code).toBe('provider_error');
      expect(task.error.message).toMatch(/not http\(s\)/);
      expect(task.outputs).toEqual([]);
      expect(JSON.stringify(task)).not.toContain(url.slice(0, 12));
    },
  );
});

describe('status words', () => {
  it('a signed webhook with a made-up status word and a result URL leaves the task processing, with the word kept and no output', async () => {
    gw = await startTestGateway();
    const created = await gw.create(request);
    expect(created.body.provider).toBe('freepik');
    const answer = await postFreepikWebhook(gw, {
      task_id: created.body.provider_task_id,
      status: 'ALMOST_DONE',
      generated: ['https://cdn.example.com/result.mp4'],
    });
    expect(answer.status).toBe(200);
    const task = (await gw.get(created.body.id)).body;
    expect(task.status).toBe('queued');
    expect(task.provider_status).toBe('ALMOST_DONE');
    expect(task.outputs).toEqual([]);
  });
});

describe('an unknown status word heard at the deadline', () => {
  it('is counted and logged like any other, and the task fails with timeout keeping the word', async () => {
    const logs = capturedLogs();
    gw = await startTestGateway({ logTo: logs.sink, config: { tasks: { deadline_ms: 600_000 } } });
    const created = await gw.create({ ...request, routing: { providers: ['kling3api'] } });
    expect(created.body.status).toBe('processing');
    // The one status poll is the deadline's last look, and it hears a word kling3api never documented.
    gw.simulator('kling3api').injectFault({
      on: 'status',
      status: 200,
      body: { code: 200, message: 'success', data: { task_id: created.body.provider_task_id, status: 'RENDERING', consumed_credits: 400 } },
    });
    await gw.advance(600_001);
    const task = (await gw.get(created.body.id)).body;
    expect(task).toMatchObject({ status: 'failed', provider_status: 'RENDERING', error: { code: 'timeout' } });
    expect(gw.simulator('kling3api').requests.filter((call) => call.method === 'GET')).toHaveLength(1);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('kling_gateway_unknown_upstream_status_total{provider="kling3api"} 1');
    const warned = logs.text().split('\n').filter((line) => line.includes('unknown upstream status'));
    expect(warned).toHaveLength(1);
    expect(JSON.parse(warned[0]!)).toMatchObject({ task_id: created.body.id, provider: 'kling3api', provider_status: 'RENDERING' });
  });
});

describe('a status answer that carries no word', () => {
  it.each([
    ['kling3api', 'IN_PROGRESS', 'processing', (id: string) => ({ code: 200, message: 'success', data: { task_id: id, consumed_credits: 400 } })],
    ['kling-legacy', 'submitted', 'queued', (id: string) => ({ code: 0, message: 'SUCCEED', data: { task_id: id, task_status: '   ' } })],
  ])('%s: keeps the last word heard in provider_status (not a blank), counts it as unknown, and the deadline names that word', async (provider, word, status, answer) => {
    gw = await startTestGateway({ config: { tasks: { deadline_ms: 300_000 }, sandbox: { queued_ms: 600_000 } } });
    const created = await gw.create({ ...request, routing: { providers: [provider] } });
    expect([created.body.status, created.body.provider_status]).toEqual([status, word]);
    gw.simulator(provider).injectFault({ on: 'status', status: 200, body: answer(created.body.provider_task_id), times: 1_000 });
    const polls = () => gw!.simulator(provider).requests.filter((call) => call.method === 'GET').length;
    for (let i = 0; i < 12 && polls() < 2; i++) await gw.advance(10_000);
    expect(polls()).toBeGreaterThanOrEqual(2);
    const running = (await gw.get(created.body.id)).body;
    expect([running.status, running.provider_status]).toEqual([status, word]);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`kling_gateway_unknown_upstream_status_total\\{provider="${provider}"\\} [1-9]`));
    await gw.advance(300_000);
    const ended = (await gw.get(created.body.id)).body;
    expect(ended).toMatchObject({ status: 'failed', provider_status: word, error: { code: 'timeout' } });
    expect(ended.error.message).toContain(`(last upstream status: ${word})`);
  });
});

describe('metrics labels', () => {
  it('made-up upstream status words add no series', async () => {
    gw = await startTestGateway();
    const created = await gw.create(request);
    for (let i = 0; i < 25; i++) {
      const answer = await postFreepikWebhook(gw, { task_id: created.body.provider_task_id, status: `MADE_UP_${i}_${'x'.repeat(i)}`, generated: [] });
      expect(answer.status).toBe(200);
    }
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    const series = metrics.split('\n').filter((line) => line.startsWith('kling_gateway_unknown_upstream_status_total{'));
    expect(series).toEqual(['kling_gateway_unknown_upstream_status_total{provider="freepik"} 25']);
    expect(metrics).not.toContain('MADE_UP');
    // The tenant sees the word, bounded.
    expect((await gw.get(created.body.id)).body.provider_status.length).toBeLessThanOrEqual(64);
  });
});

describe('an upstream that echoes its key', () => {
  const LIVE_KEY = 'k3a-LiveKey_7c1e9b2a4d6f8e0a';
  const forms = [
    LIVE_KEY,
    LIVE_KEY.toLowerCase(),
    LIVE_KEY.toUpperCase(),
    encodeURIComponent(`${LIVE_KEY}/`),
    Buffer.from(LIVE_KEY).toString('base64'),
    Buffer.from(`Bearer ${LIVE_KEY}`).toString('base64url'),
    Buffer.from(LIVE_KEY).toString('hex'),
    LIVE_KEY.slice(0, 10),
  ];

  it('never shows any form of it in the task, its events or the logs', async () => {
    upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 400, error: `key ${forms.join(' , ')} rejected`, message: `invalid key ${forms.join(' | ')}` }));
      });
    });
    await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve));
    const logs = capturedLogs();
    gw = await startTestGateway({
      logTo: logs.sink,
      config: { routing: { allow_fallbacks: false } },
      endpointOverrides: { kling3api: { baseUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, apiKey: LIVE_KEY, simulated: false } },
    });
    const created = await gw.create({ ...request, routing: { providers: ['kling3api'] } });
    const task = created.body.status === 'failed' ? created.body : await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    const shown = JSON.stringify([created.body, task, (await gw.request('GET', '/v1/videos')).body]);
    expect(shown).toContain('[redacted]');
    for (const form of forms) {
      expect(shown.includes(form), `the task shows ${form.slice(0, 4)}…`).toBe(false);
      expect(logs.text().includes(form), `the logs show ${form.slice(0, 4)}…`).toBe(false);
    }
    for (const attempt of task.attempts) expect((attempt.message ?? '').length).toBeLessThanOrEqual(500);
    expect(task.error.message.length).toBeLessThanOrEqual(500);
  });
});

/** An upstream at `endpoint` that refuses every call with a 400 quoting the request (headers and body) back. */
async function quotingUpstream(received: { authorization: string[]; bodies: string[] }): Promise<string> {
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.authorization.push(req.headers.authorization ?? '');
      received.bodies.push(body);
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 1201, message: `bad request: ${body} sent with ${req.headers.authorization}`, request_id: 'r1' }));
    });
  });
  await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
}

describe('an upstream that quotes the request it refused', () => {
  it('never shows the signed token the call carried (a bearer credential for its lifetime) in the task or the logs', async () => {
    const received = { authorization: [] as string[], bodies: [] as string[] };
    const baseUrl = await quotingUpstream(received);
    const logs = capturedLogs();
    gw = await startTestGateway({
      logTo: logs.sink,
      config: { routing: { allow_fallbacks: false } },
      endpointOverrides: { 'kling-legacy': { baseUrl, apiKey: '', accessKey: 'legacy-access-key-5d1c', secretKey: 'legacy-secret-key-9e2f', simulated: false } },
    });
    const created = await gw.create({ model: 'kling-v1', prompt: 'quoted', routing: { providers: ['kling-legacy'] } });
    const task = created.body.status === 'failed' ? created.body : await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    const token = /^Bearer (\S+)$/.exec(received.authorization[0]!)![1]!;
    const signature = token.split('.')[2]!;
    const shown = JSON.stringify([created.body, task, (await gw.request('GET', '/v1/videos')).body]);
    expect(shown).toContain('bad request');
    for (const [where, text] of [['the task', shown], ['the logs', logs.text()]] as const) {
      expect(text.includes(token), `${where} show the token`).toBe(false);
      expect(text.includes(signature), `${where} show the token's signature`).toBe(false);
    }
  });

  it("never shows the task's callback token (it lets anyone report the task's outcome) in the task or the logs", async () => {
    const received = { authorization: [] as string[], bodies: [] as string[] };
    const baseUrl = await quotingUpstream(received);
    const logs = capturedLogs();
    gw = await startTestGateway({
      logTo: logs.sink,
      config: { routing: { allow_fallbacks: false } },
      endpointOverrides: { 'kling-legacy': { baseUrl, apiKey: '', accessKey: 'legacy-access-key-5d1c', secretKey: 'legacy-secret-key-9e2f', simulated: false } },
    });
    const created = await gw.create({ model: 'kling-v1', prompt: 'quoted', routing: { providers: ['kling-legacy'] } });
    const task = created.body.status === 'failed' ? created.body : await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    const callbackUrl = (JSON.parse(received.bodies[0]!) as { callback_url: string }).callback_url;
    const callbackToken = /\/v1\/webhooks\/kling-legacy\/([^/?]+)$/.exec(callbackUrl)![1]!;
    const shown = JSON.stringify([created.body, task, (await gw.request('GET', '/v1/videos')).body]);
    expect(shown).toContain('bad request');
    expect(shown.includes(callbackToken), 'the task shows the callback token').toBe(false);
    expect(logs.text().includes(callbackToken), 'the logs show the callback token').toBe(false);
  });
});

describe('an upstream reached through a base URL with credentials (sent as Basic auth)', () => {
  it('never shows them in the task or the logs when it quotes the request back', async () => {
    const received = { authorization: [] as string[], bodies: [] as string[] };
    const baseUrl = (await quotingUpstream(received)).replace('//', '//reseller:basic-pass-4b9d2e@');
    const logs = capturedLogs();
    gw = await startTestGateway({
      logTo: logs.sink,
      config: { routing: { allow_fallbacks: false } },
      endpointOverrides: { freepik: { baseUrl, apiKey: 'fpk-live-key-61a0c3', simulated: false } },
    });
    const created = await gw.create({ ...request, routing: { providers: ['freepik'] } });
    const task = created.body.status === 'failed' ? created.body : await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    expect(received.authorization[0]).toBe(`Basic ${Buffer.from('reseller:basic-pass-4b9d2e').toString('base64')}`);
    const shown = JSON.stringify([created.body, task, (await gw.request('GET', '/v1/videos')).body]);
    expect(shown).toContain('bad request');
    for (const [where, text] of [['the task', shown], ['the logs', logs.text()]] as const) {
      expect(text.includes(received.authorization[0]!.slice('Basic '.length)), `${where} show the Basic credential`).toBe(false);
    }
  });
});

describe('an upstream that quotes the callback URL in a later answer', () => {
  it("never shows the task's callback token when a status answer quotes it", async () => {
    let callbackUrl = '';
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        if (req.method === 'POST') {
          callbackUrl = (JSON.parse(body) as { callback_url: string }).callback_url;
          res.end(JSON.stringify({ code: 0, message: 'SUCCEED', request_id: 'r1', data: { task_id: 'up-1', task_status: 'submitted' } }));
          return;
        }
        res.end(
          JSON.stringify({ code: 0, message: 'SUCCEED', request_id: 'r2', data: { task_id: 'up-1', task_status: 'failed', task_status_msg: `callback to ${callbackUrl} was refused` } }),
        );
      });
    });
    await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve));
    const logs = capturedLogs();
    gw = await startTestGateway({
      logTo: logs.sink,
      config: { routing: { allow_fallbacks: false } },
      endpointOverrides: {
        'kling-legacy': { baseUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, apiKey: '', accessKey: 'legacy-access-key-5d1c', secretKey: 'legacy-secret-key-9e2f', simulated: false },
      },
    });
    const created = await gw.create({ model: 'kling-v1', prompt: 'quoted later', routing: { providers: ['kling-legacy'] } });
    expect(created.status).toBe(202);
    const task = await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    expect(task.error.message).toContain('was refused');
    const callbackToken = /\/v1\/webhooks\/kling-legacy\/([^/?]+)$/.exec(callbackUrl)![1]!;
    const shown = JSON.stringify([task, (await gw.request('GET', '/v1/videos')).body]);
    expect(shown.includes(callbackToken), 'the task shows the callback token').toBe(false);
    expect(logs.text().includes(callbackToken), 'the logs show the callback token').toBe(false);
  });
});

describe('an upstream answer with a "__proto__" key', () => {
  it('is read as the JSON says: the key is data, and what it holds never becomes the status or the result of the task', async () => {
    let polls = 0;
    upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        if (req.method === 'POST') {
          res.end(JSON.stringify({ data: { task_id: 'up-1', status: 'CREATED', generated: [] } }));
          return;
        }
        polls += 1;
        // Written by hand: a JavaScript object literal cannot carry an own "__proto__" key.
        res.end('{"data":{"task_id":"up-1","__proto__":{"status":"COMPLETED","generated":["https://cdn.example/hidden.mp4"]}}}');
      });
    });
    await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve));
    gw = await startTestGateway({
      config: { routing: { allow_fallbacks: false } },
      endpointOverrides: { freepik: { baseUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, apiKey: 'fpk-live-key-3e8a1d', simulated: false } },
    });
    const created = await gw.create({ ...request, routing: { providers: ['freepik'] } });
    expect(created.status).toBe(202);
    await gw.advanceUntil(async () => polls >= 1, 5_000);
    // One more pass: what the poll's answer led to is written.
    await gw.advance(1_000);
    const task = (await gw.get(created.body.id)).body;
    // The answer names no status of its own: what sits under "__proto__" is a key's value like
    // any other (as the same body by webhook, or to any JSON reader), not the task's status.
    expect(task.status).toBe('queued');
    expect(task.outputs).toEqual([]);
    expect(JSON.stringify(task)).not.toContain('hidden.mp4');
  });
});

describe('an upstream that quotes what the tenant sent', () => {
  it("does not let a tenant read another tenant's secret one character at a time through what the scrubber redacts", async () => {
    // The provider refuses the prompt quoting it, as validation errors often do.
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        const prompt = (JSON.parse(body) as { prompt?: string }).prompt ?? '';
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 400, message: `prompt not accepted: ${prompt}` }));
      });
    });
    await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve));
    gw = await startTestGateway({
      config: { routing: { allow_fallbacks: false } },
      endpointOverrides: { kling3api: { baseUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, apiKey: 'k3a-LiveKey_7c1e9b2a4d6f8e0a', simulated: false } },
    });
    // Tenant "other" knows how a whsec_ secret begins (8 characters take a few thousand guesses)
    // and tries each candidate for the next character of tenant acme's secret.
    const known = TENANT_WEBHOOK_SECRET.slice(0, 8);
    const right = TENANT_WEBHOOK_SECRET[8]!;
    const wrong = right === 'Q' ? 'R' : 'Q';
    const created = await gw.request(
      'POST',
      '/v1/videos',
      { model: 'kling-v3', prompt: `probe ${known}${wrong} probe ${known}${right} end`, duration: 5, routing: { providers: ['kling3api'] } },
      {},
      OTHER_TENANT_KEY,
    );
    const task = created.body.status === 'failed' ? created.body : await gw.finish(created.body.id);
    expect(task.status).toBe('failed');
    const message: string = task.error.message;
    expect(message).toContain('prompt not accepted: probe [redacted]');
    // Whichever candidate was right, both read the same: the redaction does not show how far the secret matched.
    expect(message).toMatch(/probe \[redacted\] probe \[redacted\] end$/);
  });
});

describe('a signed webhook that carries the upstream key', () => {
  it('never shows the key in the task, though a signed webhook is not an answer the client scrubbed', async () => {
    gw = await startTestGateway();
    const created = await gw.create(request);
    expect(created.body.provider).toBe('freepik');
    const key = gw.endpoints.get('freepik')!.apiKey;
    const url = `http://cdn.example/result.mp4?api_key=${key}`;
    const answer = await postFreepikWebhook(gw, { task_id: created.body.provider_task_id, status: 'COMPLETED', generated: [url] });
    expect(answer.status).toBe(200);
    const task = (await gw.get(created.body.id)).body;
    const shown = JSON.stringify([task, (await gw.request('GET', '/v1/videos')).body]);
    expect(shown.includes(key), 'the task shows the upstream key').toBe(false);
  });
});
