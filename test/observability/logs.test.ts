import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROVIDERS } from '../../src/providers/registry.js';
import { OTHER_TENANT_KEY, TENANT_KEY, TENANT_WEBHOOK_SECRET, startTestGateway, type TestGateway } from '../support/harness.js';

describe('logs', () => {
  const lines: Record<string, unknown>[] = [];
  let raw = '';
  let gw: TestGateway;
  let taskId: string;

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        raw += chunk.toString();
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    gw = await startTestGateway({ logTo: sink });
    gw.simulator('freepik').injectFault({ kind: 'unauthorized', status: 401 });
    const created = await gw.create({ model: 'kling-v3', prompt: 'logged', duration: 5 }, { 'x-request-id': 'req-logs-1', 'idempotency-key': 'idem-secret-ish' });
    taskId = created.body.id;
    await gw.finish(taskId);
    await gw.request('GET', '/v1/videos', undefined, {}, 'wrong-key-value');
  });
  afterAll(async () => {
    await gw.close();
  });

  it('never contains a gateway key, an upstream key or a webhook secret', () => {
    const secrets = [TENANT_KEY, 'wrong-key-value', TENANT_WEBHOOK_SECRET];
    for (const endpoint of gw.endpoints.values()) {
      secrets.push(endpoint.apiKey);
      if (endpoint.webhookSecret) secrets.push(endpoint.webhookSecret);
    }
    expect(raw.length).toBeGreaterThan(0);
    for (const secret of secrets) expect(raw.includes(secret), `log contains ${secret.slice(0, 4)}…`).toBe(false);
  });

  it('writes one structured line per request, with its request id', () => {
    const request = lines.find((line) => line.request_id === 'req-logs-1' && line.msg === 'request completed');
    expect(request).toMatchObject({ level: 'info', req: { method: 'POST', url: '/v1/videos' }, res: { status: 202 } });
  });

  it('puts the task id on the line of a request about one task: its create, reads, cancel and content', async () => {
    const create = lines.find((line) => line.request_id === 'req-logs-1' && line.msg === 'request completed');
    expect(create).toMatchObject({ task_id: taskId });
    const paths = [`/v1/videos/${taskId}`, `/v1/videos/${taskId}?wait=1`, `/v1/videos/${taskId}/cancel`, `/v1/videos/${taskId}/content`];
    for (const [index, path] of paths.entries()) {
      await gw.request(path.endsWith('/cancel') ? 'POST' : 'GET', path, undefined, { 'x-request-id': `req-logs-task-${index}` });
    }
    for (const [index, path] of paths.entries()) {
      const line = lines.find((entry) => entry.request_id === `req-logs-task-${index}` && entry.msg === 'request completed');
      expect(line, path).toMatchObject({ task_id: taskId });
    }
  });

  it("leaves the task id off the line of a 404: an id no task has, or another tenant's task", async () => {
    const asked = [
      { path: '/v1/videos/vid_nosuchtask0000', key: TENANT_KEY },
      { path: `/v1/videos/${taskId}`, key: OTHER_TENANT_KEY },
      { path: `/v1/videos/${taskId}?wait=1`, key: OTHER_TENANT_KEY },
      { path: `/v1/videos/${taskId}/content`, key: OTHER_TENANT_KEY },
    ];
    for (const [index, { path, key }] of asked.entries()) {
      const answer = await gw.request('GET', path, undefined, { 'x-request-id': `req-logs-404-${index}` }, key);
      expect(answer.status, path).toBe(404);
    }
    for (const [index, { path }] of asked.entries()) {
      const line = lines.find((entry) => entry.request_id === `req-logs-404-${index}` && entry.msg === 'request completed');
      expect(line, path).toMatchObject({ req: { url: path }, res: { status: 404 } });
      expect(line, path).not.toHaveProperty('task_id');
    }
  });

  it("puts the task id on a provider callback's line, its token hidden", async () => {
    const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk' });
    const token = (await gw.gateway.store.getTask(created.body.id))!.callback_token!;
    const answer = await gw.request(
      'POST',
      `/v1/webhooks/kling-legacy/${token}`,
      JSON.stringify({ task_id: created.body.provider_task_id, task_status: 'processing' }),
      { 'x-request-id': 'req-logs-callback' },
      null,
    );
    expect(answer.status).toBe(200);
    const line = lines.find((entry) => entry.request_id === 'req-logs-callback' && entry.msg === 'request completed');
    expect(line).toMatchObject({ task_id: created.body.id, req: { url: '/v1/webhooks/kling-legacy/[token]' } });
    expect(raw).not.toContain(token);
  });

  it('writes one line per upstream call, with the task and request ids', () => {
    const upstream = lines.filter((line) => line.msg === 'upstream call' && line.task_id === taskId);
    expect(upstream.map((line) => `${line.provider}:${(line.upstream as { operation: string }).operation}:${line.outcome}`)).toEqual(
      expect.arrayContaining(['freepik:submit:unauthorized', 'kling3api:submit:ok', 'kling3api:status:ok']),
    );
    const submit = upstream.find((line) => line.provider === 'kling3api' && (line.upstream as { operation: string }).operation === 'submit');
    expect(submit).toMatchObject({ request_id: 'req-logs-1', upstream: { method: 'POST', path: '/api/generate', status: 200 } });
    expect(typeof submit?.duration_ms).toBe('number');
  });

  it("redacts every provider's auth headers wherever headers are logged", () => {
    const before = lines.length;
    for (const provider of PROVIDERS) {
      const headers = provider.authHeaders(`upstream-key-of-${provider.id}`);
      gw.gateway.engine.logger.warn({ provider: provider.id, headers, req: { headers } }, 'headers by mistake');
    }
    const logged = lines.slice(before);
    expect(logged).toHaveLength(PROVIDERS.length);
    for (const provider of PROVIDERS) {
      expect(raw).not.toContain(`upstream-key-of-${provider.id}`);
      const line = logged.find((entry) => entry.provider === provider.id) as { headers: Record<string, string> };
      for (const name of Object.keys(provider.authHeaders('k'))) expect(line.headers[name]).toBe('[redacted]');
    }
  });
});
