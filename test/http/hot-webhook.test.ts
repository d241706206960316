/**
 * The hot webhook (provider webhooks ahead of express): it takes only the plain case, and answers
 * it with the bytes, metrics and log line express would have: receipts, problems, the body time
 * limit. Every other request goes to express untouched.
 */
import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { InboundWebhooks } from '../../src/core/tasks/inbound-webhooks.js';
import { withHotWebhooks } from '../../src/http/hot-webhook.js';
import { WEBHOOK_BODY_LIMIT } from '../../src/http/webhook-body-budget.js';
import { RequestRecording } from '../../src/http/middleware.js';
import { StopGate } from '../../src/http/stop-gate.js';
import { WebhookBodyBudget } from '../../src/http/webhook-body-budget.js';
import { createLogger } from '../../src/observability/logger.js';
import { GatewayMetrics } from '../../src/observability/metrics.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { comparable, headerOf, loopbackServer, rawExchange, rawRequest, type RawAnswer } from '../support/raw-answer.js';

const rawPost = (base: string, path: string, body: string | undefined, headers: Record<string, string> = {}) => rawRequest(base, path, { method: 'POST', headers, body });

interface LogLine {
  level: string;
  msg?: string;
  request_id?: string;
  occurrence_id?: string;
  task_id?: string;
  req?: { method: string; url: string };
  res?: { status: number };
}

function logSink(lines: LogLine[]) {
  return new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
}

describe('the hot webhook decides what it takes', () => {
  const received: { provider: string; token?: string; body: string }[] = [];
  let expressCalls = 0;
  const gate = new StopGate();
  let base: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const inbound = {
      isSigned: (provider: string) => provider === 'freepik',
      receiveSigned: async (provider: string, webhook: { rawBody: Buffer }, _id?: string, token?: string) => {
        received.push({ provider, ...(token ? { token } : {}), body: webhook.rawBody.toString() });
        return { received: true, matched: true };
      },
    } as unknown as InboundWebhooks;
    const listener = withHotWebhooks(
      (req, res) => {
        expressCalls++;
        req.resume();
        res.writeHead(299).end('express');
      },
      {
        inbound,
        recording: new RequestRecording(new GatewayMetrics({ defaultMetrics: false }), createLogger('silent'), new Set()),
        logger: createLogger('silent'),
        gate,
        bodyTimeoutMs: 10_000,
        clock: new ManualClock(0),
        etag: () => undefined,
        storeTrouble: () => undefined,
        budget: new WebhookBodyBudget(64 * 1024 * 1024),
      },
    );
    ({ base, close } = await loopbackServer(listener));
  });
  afterAll(() => close());
  afterEach(() => {
    received.length = 0;
    expressCalls = 0;
  });

  it('takes a plain webhook, with or without a token, and hands over its exact bytes', async () => {
    const body = '{"task_id":"t1","status":"COMPLETED","note":"ünïcødé"}';
    const answer = await rawPost(base, '/v1/webhooks/freepik/att_1-2', body, { 'content-type': 'application/json' });
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('{"received":true,"matched":true}');
    expect(await rawPost(base, '/v1/webhooks/freepik', '', {})).toMatchObject({ status: 200 });
    expect(received).toEqual([
      { provider: 'freepik', token: 'att_1-2', body },
      { provider: 'freepik', body: '' },
    ]);
    expect(expressCalls).toBe(0);
  });

  it.each([
    ['another method', '/v1/webhooks/freepik', {}, 'PUT'],
    ['a query', '/v1/webhooks/freepik?x=1', {}, 'POST'],
    ['a trailing slash', '/v1/webhooks/freepik/', {}, 'POST'],
    ['other letter case', '/V1/webhooks/freepik', {}, 'POST'],
    ['an escape', '/v1/webhooks/free%70ik', {}, 'POST'],
    ['a deeper path', '/v1/webhooks/freepik/a/b', {}, 'POST'],
    ['a chunked body', '/v1/webhooks/freepik', { 'transfer-encoding': 'chunked' }, 'POST'],
    ['a compressed body', '/v1/webhooks/freepik', { 'content-encoding': 'gzip' }, 'POST'],
    ['a body over the limit', '/v1/webhooks/freepik', { 'content-length': String(WEBHOOK_BODY_LIMIT + 1) }, 'POST'],
  ] as [string, string, Record<string, string>, string][])('leaves %s to express', async (_what, path, headers, method) => {
    const answer = await new Promise<number>((resolve, reject) => {
      const request = httpRequest(base, { method, headers, path }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', reject);
      if (headers['content-length']) request.write(Buffer.alloc(16));
      else request.end(headers['transfer-encoding'] ? '{}' : undefined);
    });
    expect(answer).toBe(299);
    expect(received).toEqual([]);
    expect(expressCalls).toBe(1);
  });

  it('leaves every webhook to express once the gateway is stopping', async () => {
    gate.close();
    expect((await rawPost(base, '/v1/webhooks/freepik', '{}')).status).toBe(299);
    expect(received).toEqual([]);
  });
});

describe('the hot webhook against express on a real gateway', () => {
  let gw: TestGateway;
  let expressOnly: Server;
  let expressBase: string;
  const lines: LogLine[] = [];

  beforeEach(() => {
    lines.length = 0;
  });
  beforeAll(async () => {
    gw = await startTestGateway({ logTo: logSink(lines) });
    // The same app without the hot paths in front: what express alone answers.
    expressOnly = gw.gateway.app.listen(0, '127.0.0.1');
    expressOnly.keepAliveTimeout = gw.config.server.keep_alive_timeout_ms;
    await new Promise((resolve) => expressOnly.once('listening', resolve));
    expressBase = `http://127.0.0.1:${(expressOnly.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    expressOnly.closeAllConnections();
    await new Promise((resolve) => expressOnly.close(resolve));
    await gw.close();
  });

  /** A signed Freepik webhook about `taskId` (its upstream id), with a fresh webhook id unless given. */
  const signed = (providerTaskId: string, status: string, id = `wh_${Math.random().toString(16).slice(2)}`) => {
    const raw = JSON.stringify({ task_id: providerTaskId, status });
    const timestamp = String(Math.floor(gw.clock.now() / 1000));
    const signature = signFreepikWebhook(gw.endpoints.get('freepik')!.webhookSecret!, id, timestamp, raw);
    return { raw, headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature } };
  };

  /** The same request to both servers: the answers must be the same bytes (request id and date aside). */
  async function expectSameAnswer(path: string, make: () => { raw: string; headers: Record<string, string> }): Promise<RawAnswer> {
    const handle = vi.spyOn(gw.gateway.app as unknown as { handle: (...args: unknown[]) => void }, 'handle');
    try {
      const first = make();
      const hot = await rawPost(gw.url, path, first.raw, { ...first.headers, 'x-request-id': 'hot-1' });
      expect(handle).not.toHaveBeenCalled();
      const second = make();
      const viaExpress = await rawPost(expressBase, path, second.raw, { ...second.headers, 'x-request-id': 'exp-1' });
      expect(hot.status).toBe(viaExpress.status);
      // A problem's instance is its request's occurrence (each answer's own; the two ids are the same length).
      const sameBody = (answer: RawAnswer) => answer.body.replace(/"instance":"urn:request:[0-9a-f-]{36}"/, '"instance":"…"');
      expect(sameBody(hot)).toBe(sameBody(viaExpress));
      const sameHeaders = (answer: RawAnswer) => comparable(answer).map(([name, value]) => [name, name.toLowerCase() === 'etag' && answer.body.includes('"instance"') ? '…' : value]);
      expect(sameHeaders(hot)).toEqual(sameHeaders(viaExpress));
      expect(headerOf(hot, 'x-request-id')).toBe('hot-1');
      return hot;
    } finally {
      handle.mockRestore();
    }
  }

  const requestLines = (id: string) => lines.filter((line) => line.request_id === id && line.msg === 'request completed');
  const counted = async (route: string, status: number) => {
    const { body } = await gw.gateway.engine.metrics.exposition();
    const match = new RegExp(`kling_gateway_http_requests_total\\{method="POST",route="${route.replace(/\//g, '\\/')}",status="${status}"\\} (\\d+)`).exec(body);
    return Number(match?.[1] ?? 0);
  };

  it('a receipt that changes the task: the same answer, metrics and log line, and the task moves', async () => {
    const first = await gw.create({ model: 'kling-v3', prompt: 'a kingfisher diving', duration: 5, routing: { providers: ['freepik'] } });
    const second = await gw.create({ model: 'kling-v3', prompt: 'a kingfisher diving', duration: 5, routing: { providers: ['freepik'] } });
    const tasks = [first.body, second.body];
    const before = await counted('/v1/webhooks/:provider', 200);
    const answer = await expectSameAnswer('/v1/webhooks/freepik', () => signed(tasks.shift().provider_task_id, 'COMPLETED'));
    expect(JSON.parse(answer.body)).toEqual({ received: true, matched: true });
    expect(await counted('/v1/webhooks/:provider', 200)).toBe(before + 2);
    const [hotLine] = requestLines('hot-1');
    const [expressLine] = requestLines('exp-1');
    expect(hotLine).toMatchObject({ req: { method: 'POST', url: '/v1/webhooks/freepik' }, res: { status: 200 } });
    // Each line names the task its webhook was about.
    expect([hotLine?.task_id, expressLine?.task_id]).toEqual([first.body.id, second.body.id]);
    const unlike = { request_id: '…', occurrence_id: '…', task_id: '…', time: '…', responseTime: '…' };
    expect({ ...hotLine, ...unlike }).toEqual({ ...expressLine, ...unlike });
    for (const id of [first.body.id, second.body.id]) expect((await gw.gateway.store.getTask(id))?.provider_status).toBe('COMPLETED');
  });

  it('a replay: the same duplicate receipt', async () => {
    const created = await gw.create({ model: 'kling-v3', prompt: 'a heron in reeds', duration: 5, routing: { providers: ['freepik'] } });
    const webhook = signed(created.body.provider_task_id, 'IN_PROGRESS', 'wh_replayed');
    expect((await rawPost(gw.url, '/v1/webhooks/freepik', webhook.raw, webhook.headers)).status).toBe(200);
    const answer = await expectSameAnswer('/v1/webhooks/freepik', () => webhook);
    expect(JSON.parse(answer.body)).toEqual({ received: true, duplicate: true });
  });

  it('problems: a bad signature (401), an unknown provider and an unknown callback token (404), with their log lines', async () => {
    const created = await gw.create({ model: 'kling-v3', prompt: 'a heron in reeds', duration: 5, routing: { providers: ['freepik'] } });
    const forged = () => ({ ...signed(created.body.provider_task_id, 'COMPLETED'), raw: JSON.stringify({ task_id: created.body.provider_task_id, status: 'FAILED' }) });
    const refused = await expectSameAnswer('/v1/webhooks/freepik', forged);
    expect(refused.status).toBe(401);
    const [refusedLine] = requestLines('hot-1');
    expect(JSON.parse(refused.body)).toMatchObject({ type: expect.stringMatching(/bad-signature$/), instance: `urn:request:${String(refusedLine?.occurrence_id)}` });
    expect((await gw.gateway.store.getTask(created.body.id))?.provider_status).not.toBe('FAILED');
    expect(requestLines('hot-1')).toEqual([expect.objectContaining({ level: 'warn', res: { status: 401 } })]);
    expect(lines.filter((line) => line.msg === 'webhook rejected').map((line) => line.request_id)).toEqual(['hot-1', 'exp-1']);

    expect((await expectSameAnswer('/v1/webhooks/nobody', () => signed('x', 'COMPLETED'))).status).toBe(404);
    const tokenRoute404 = await counted('/v1/webhooks/:provider/:token', 404);
    const callback = await expectSameAnswer('/v1/webhooks/kling-legacy/tok_unknown', () => ({ raw: '{"task_status":"succeed"}', headers: {} }));
    expect(callback.status).toBe(404);
    expect(await counted('/v1/webhooks/:provider/:token', 404)).toBe(tokenRoute404 + 2);
    // The token is a secret: the log line shows the route.
    expect(requestLines('hot-1').at(-1)?.req?.url).toBe('/v1/webhooks/kling-legacy/[token]');
  });

  it('a callback path in other letter case (express routes it too): its token is not in the log line either', async () => {
    const answer = await rawPost(gw.url, '/V1/Webhooks/kling-legacy/tok_secret_in_path', '{"task_status":"succeed"}', { 'content-type': 'application/json', 'x-request-id': 'case-1' });
    expect(answer.status).toBe(404);
    expect(requestLines('case-1')).toHaveLength(1);
    expect(requestLines('case-1')[0]?.req?.url).toBe('/V1/Webhooks/kling-legacy/[token]');
    expect(JSON.stringify(lines)).not.toContain('tok_secret_in_path');
  });

  it('a callback in the absolute form of a request line (express routes it by its path): its token is not in the log line', async () => {
    const answer = await rawExchange(gw.url, `POST http://gateway.example/v1/webhooks/kling-legacy/tok_absolute_form HTTP/1.1\r\nHost: gateway.example\r\nContent-Type: application/json\r\nContent-Length: 2\r\nx-request-id: abs-1\r\nConnection: close\r\n\r\n{}`);
    expect(answer).toMatch(/^HTTP\/1\.1 404 /);
    expect(requestLines('abs-1')[0]?.req?.url).toBe('http://gateway.example/v1/webhooks/kling-legacy/[token]');
    expect(JSON.stringify(lines)).not.toContain('tok_absolute_form');
  });

  it('a retry-later (503 with Retry-After) while the create it may be about is being recorded', async () => {
    const spy = vi.spyOn(gw.gateway.store, 'isSubmittingTo' as never).mockResolvedValue(true as never);
    try {
      const answer = await expectSameAnswer('/v1/webhooks/freepik', () => signed('not-recorded-yet', 'COMPLETED'));
      expect(answer.status).toBe(503);
      expect(headerOf(answer, 'retry-after')).toBe('5');
    } finally {
      spy.mockRestore();
    }
  });

  it('a body that does not arrive within the time limit: the same 408, and the connection closed', async () => {
    const slowPost = (base: string) =>
      new Promise<RawAnswer>((resolve, reject) => {
        const request = httpRequest(base, { method: 'POST', path: '/v1/webhooks/freepik', headers: { 'content-length': '100', 'x-request-id': 'slow-1' } }, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, rawHeaders: response.rawHeaders, body: Buffer.concat(chunks).toString('utf8') }));
        });
        request.on('error', reject);
        request.write('{"task_id":', () => setImmediate(() => gw.clock.advance(gw.config.server.body_timeout_ms)));
      });
    const hot = await slowPost(gw.url);
    const viaExpress = await slowPost(expressBase);
    expect(hot.status).toBe(408);
    expect(headerOf(hot, 'connection')).toBe('close');
    // The same request id sent to both, yet two occurrences: their instances (so ETags) differ.
    const occurrenceAside = (answer: RawAnswer) => ({
      body: answer.body.replace(/"instance":"urn:request:[0-9a-f-]{36}"/, '"instance":"…"'),
      headers: comparable(answer).map(([name, value]) => [name, name.toLowerCase() === 'etag' ? '…' : value]),
    });
    expect(hot.body).not.toBe(viaExpress.body);
    expect(occurrenceAside(hot)).toEqual(occurrenceAside(viaExpress));
  });
});
