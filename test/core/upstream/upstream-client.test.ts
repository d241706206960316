/**
 * The HTTP client every adapter calls through, against nock (and a closed local port for a
 * refused connection): the request that leaves, how each kind of answer and failure comes back
 * as an `UpstreamError`, what is recorded per call, and that the API key never leaks.
 */
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { classifyCreateFailure } from '../../../src/core/tasks/failover.js';
import type { MappedUpstreamError } from '../../../src/core/upstream/upstream-error.js';
import {
  HttpUpstreamClient,
  parseRetryAfter,
  type UpstreamCallRecord,
  type UpstreamClientOptions,
} from '../../../src/core/upstream/upstream-client.js';
import { withClientTimerHeld } from '../../support/client-timer.js';
import { silentServer } from '../../support/silent-server.js';
import { upstreamFailure } from '../../support/upstream-failure.js';
import { REFUSED_PORT } from '../../support/refused-port.js';

const BASE = 'https://upstream.example';
const API_KEY = 'sk_live_9f8e7d6c5b4a';

/** A provider as the client sees it: id, auth and error mapping. */
const fakeProvider = {
  id: 'fake',
  authHeaders: (apiKey: string) => ({ authorization: `Bearer ${apiKey}`, 'x-api-key': apiKey }),
  mapHttpError: (status: number, body: unknown): MappedUpstreamError => {
    const code = (body as { code?: string } | null)?.code;
    if (status === 402) return { code: 'insufficient_credits', message: 'fake: out of credits', providerCode: code ?? 'credits' };
    if (status === 400) return { code: 'invalid_request', message: 'fake: bad request', providerCode: code ?? 'bad_request' };
    return { code: 'provider_error', message: `fake answered ${status}`, ...(code ? { providerCode: code } : {}) };
  },
};

function client(options: Partial<UpstreamClientOptions> = {}) {
  const calls: UpstreamCallRecord[] = [];
  const http = new HttpUpstreamClient({
    provider: fakeProvider,
    baseUrl: BASE,
    apiKey: API_KEY,
    timeoutMs: 2_000,
    onCall: (record) => calls.push(record),
    ...options,
  });
  return { http, calls };
}

/** A local port with nothing listening on it (not one just freed, which another test file may take meanwhile). */
async function closedPort(): Promise<number> {
  return REFUSED_PORT;
}

beforeAll(() => {
  nock.disableNetConnect();
  // Real connections only to loopback (closed ports, a resetting server) and to an unresolvable
  // `.invalid` name (RFC 6761), for the transport failures nock cannot play faithfully.
  nock.enableNetConnect((host) => host.startsWith('127.0.0.1') || host.includes('.invalid'));
});

afterEach(() => {
  nock.cleanAll();
});

afterAll(() => {
  nock.enableNetConnect();
});

describe('the request that leaves', () => {
  it('joins the base URL (with a path and a trailing slash) and the request path', async () => {
    const scope = nock(BASE).get('/api/v2/tasks/t1').reply(200, { ok: true });
    const { http } = client({ baseUrl: `${BASE}/api/v2/` });
    const response = await http.send({ method: 'GET', path: '/tasks/t1', operation: 'status' });
    expect(response.data).toEqual({ ok: true });
    expect(scope.isDone()).toBe(true);
  });

  it('sends the auth headers, a JSON body with its content type, and the gateway user agent', async () => {
    const seen: Record<string, unknown> = {};
    nock(BASE)
      .post('/v1/videos')
      .reply(async (request: Request) => {
        seen.authorization = request.headers.get('authorization');
        seen.apiKey = request.headers.get('x-api-key');
        seen.contentType = request.headers.get('content-type');
        seen.userAgent = request.headers.get('user-agent');
        seen.accept = request.headers.get('accept');
        seen.body = await request.json();
        return [201, { id: 'up_1' }];
      });
    const { http } = client();
    const body = { prompt: 'a fox', duration: 5, nested: { list: [1, 2] } };
    const response = await http.send({ method: 'POST', path: '/v1/videos', body, operation: 'submit' });
    expect(response.status).toBe(201);
    expect(seen).toEqual({
      authorization: `Bearer ${API_KEY}`,
      apiKey: API_KEY,
      contentType: 'application/json',
      userAgent: 'kling-gateway/0.1',
      accept: 'application/json',
      body,
    });
  });

  it('sends the query string, encoded, and no content type without a body', async () => {
    let contentType: string | null = 'unset';
    const scope = nock(BASE)
      .get('/status')
      .query({ task_id: 'a b&c', page: '2' })
      .reply((request: Request) => {
        contentType = request.headers.get('content-type');
        return [200, { status: 'IN_PROGRESS' }];
      });
    const { http } = client();
    await http.send({ method: 'GET', path: '/status', query: { task_id: 'a b&c', page: '2' }, operation: 'status' });
    expect(scope.isDone()).toBe(true);
    expect(contentType).toBeNull();
  });
});

describe('answers', () => {
  it('returns a 2xx answer with its status, lower-cased headers and parsed body', async () => {
    nock(BASE).get('/t').reply(200, { data: { task_id: 't1' } }, { 'X-Request-Id': 'r-1' });
    const { http } = client();
    const response = await http.send({ method: 'GET', path: '/t', operation: 'status' });
    expect(response.status).toBe(200);
    expect(response.data).toEqual({ data: { task_id: 't1' } });
    expect(response.headers['x-request-id']).toBe('r-1');
  });

  it('returns a 2xx body that is not JSON as text, for the adapter to judge', async () => {
    nock(BASE).post('/v').reply(200, 'OK, queued');
    const { http } = client();
    const response = await http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' });
    expect(response.data).toBe('OK, queued');
  });

  it('turns an error answer into an UpstreamError through the provider mapping', async () => {
    nock(BASE).post('/v').reply(402, { code: 'NO_CREDITS', message: 'top up' });
    const { http } = client();
    const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(error).toMatchObject({
      provider: 'fake',
      operation: 'submit',
      url: '/v',
      code: 'insufficient_credits',
      message: 'fake: out of credits',
      statusCode: 402,
      providerCode: 'NO_CREDITS',
      responseBody: { code: 'NO_CREDITS', message: 'top up' },
      transport: undefined,
      retryAfterMs: undefined,
      mayHaveCreated: false,
    });
  });

  it('keeps the path and query of the call in the error, never the base URL', async () => {
    nock(BASE).get('/status').query({ id: '7' }).reply(500, {});
    const { http } = client();
    const error = await upstreamFailure(http.send({ method: 'GET', path: '/status', query: { id: '7' }, operation: 'status' }));
    expect(error.url).toBe('/status?id=7');
  });

  it('cuts a long error body to 2048 characters', async () => {
    nock(BASE).get('/t').reply(502, `<html>${'x'.repeat(10_000)}</html>`);
    const { http } = client();
    const error = await upstreamFailure(http.send({ method: 'GET', path: '/t', operation: 'status' }));
    expect(typeof error.responseBody).toBe('string');
    expect(error.responseBody).toBe(`<html>${'x'.repeat(2042)}…`);
  });

  it('cuts a long JSON error body to 2048 characters of its JSON', async () => {
    const body = { errors: Array.from({ length: 500 }, (_, i) => ({ field: `f${i}`, reason: 'invalid' })) };
    nock(BASE).post('/v').reply(400, body);
    const { http } = client();
    const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(error.responseBody).toBe(`${JSON.stringify(body).slice(0, 2048)}…`);
  });

  it('reads Retry-After in seconds', async () => {
    nock(BASE).post('/v').reply(429, { code: 'rate_limited' }, { 'Retry-After': '7' });
    const { http } = client();
    const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(error.statusCode).toBe(429);
    expect(error.retryAfterMs).toBe(7_000);
  });

  it('reads Retry-After as an HTTP date against the gateway clock, not the wall clock', async () => {
    const clockNow = Date.UTC(2031, 5, 1, 12, 0, 0);
    const retryAt = new Date(clockNow + 90_000).toUTCString();
    nock(BASE).get('/t').reply(503, {}, { 'Retry-After': retryAt });
    const { http } = client({ clockNow: () => clockNow });
    const error = await upstreamFailure(http.send({ method: 'GET', path: '/t', operation: 'status' }));
    expect(error.retryAfterMs).toBe(90_000);
  });
});

describe('transport failures', () => {
  it('a refused connection is transport "refused": nothing left, safe to fail over', async () => {
    const port = await closedPort();
    const { http, calls } = client({ baseUrl: `http://127.0.0.1:${port}` });
    const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(error).toMatchObject({
      transport: 'refused',
      code: 'provider_error',
      message: 'fake refused the connection',
      statusCode: undefined,
    });
    expect(classifyCreateFailure(error, false).outcome).toBe('failed');
    expect(calls.map((call) => call.outcome)).toEqual(['refused']);
  });

  it('no answer within timeoutMs is transport "timeout": the request may have been accepted', async () => {
    nock(BASE).post('/v').delay(2_000).reply(200, { id: 'late' });
    const { http, calls } = client({ timeoutMs: 50 });
    const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(error).toMatchObject({ transport: 'timeout', code: 'timeout', message: 'fake did not answer within 50 ms' });
    expect(classifyCreateFailure(error, false).outcome).toBe('ambiguous');
    expect(calls.map((call) => call.outcome)).toEqual(['timeout']);
  });

  it('no connection (TLS handshake included) within connectTimeoutMs is "connect_timeout": nothing was sent, so it fails over', async () => {
    // TCP connects, but the TLS handshake is never answered: the HTTP request cannot have left.
    const silent = await silentServer();
    try {
      const { http, calls } = client({ baseUrl: `https://127.0.0.1:${silent.port}`, timeoutMs: 5_000, connectTimeoutMs: 100 });
      const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: { prompt: 'x' }, operation: 'submit' }));
      expect(error).toMatchObject({
        transport: 'connect_timeout',
        code: 'provider_error',
        message: 'fake could not be connected to within 100 ms; nothing was sent',
      });
      expect(classifyCreateFailure(error, false)).toMatchObject({ failover: true, outcome: 'failed', reason: 'connect_timeout' });
      expect(calls.map((call) => call.outcome)).toEqual(['connect_timeout']);
      expect(silent.received()).not.toContain('POST /v');
    } finally {
      await silent.close();
    }
  });

  it('the connect limit never cuts a request already sent: no answer is still an ambiguous "timeout"', async () => {
    const silent = await silentServer();
    try {
      const { http } = client({ baseUrl: `http://127.0.0.1:${silent.port}`, timeoutMs: 300, connectTimeoutMs: 100 });
      // Both limits run out only once the server has the request: with real ones, a loaded machine
      // could let the 100 ms connect limit run out before the connection was seen to be made.
      const error = await withClientTimerHeld(async (runOut) => {
        const failing = upstreamFailure(http.send({ method: 'POST', path: '/v', body: { prompt: 'x' }, operation: 'submit' }));
        await vi.waitFor(() => expect(silent.received()).toContain('POST /v'), { timeout: 10_000 });
        await runOut(300);
        return failing;
      });
      expect(error).toMatchObject({ transport: 'timeout', code: 'timeout' });
      expect(classifyCreateFailure(error, false)).toMatchObject({ failover: false, outcome: 'ambiguous' });
      expect(silent.received()).toContain('POST /v');
    } finally {
      await silent.close();
    }
  });

  it('a host that does not resolve is transport "refused"', async () => {
    // A generous time limit: a slow resolver must not turn this into a timeout.
    const { http } = client({ baseUrl: 'http://kling-gateway-test.invalid', timeoutMs: 15_000 });
    const error = await upstreamFailure(http.send({ method: 'GET', path: '/t', operation: 'status' }));
    expect(error.transport).toBe('refused');
    expect(error.message).toBe('fake refused the connection');
  });

  it('when the caller aborts, rethrows the caller’s reason (not an UpstreamError) and records "aborted"', async () => {
    const controller = new AbortController();
    const reason = new Error('client went away');
    nock(BASE)
      .post('/v')
      .delay(2_000)
      .reply(() => [200, {}]);
    const { http, calls } = client({ timeoutMs: 5_000 });
    const sending = http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }, controller.signal);
    queueMicrotask(() => controller.abort(reason));
    await expect(sending).rejects.toBe(reason);
    expect(calls.map((call) => call.outcome)).toEqual(['aborted']);
  });

  // Regression: see the commit that fixed it.
  it('a 2xx create answer too large to read is not failed over', async () => {
    nock(BASE).post('/v').reply(200, 'x'.repeat(5 * 1024 * 1024));
    const { http } = client();
    const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(error.transport).not.toBe('reset');
    expect(classifyCreateFailure(error, false).failover).toBe(false);
  });
});

describe('redirects (never followed)', () => {
  it('a 303 See Other to a create is not failed over: it says the upstream acted on the request and points at the result', async () => {
    nock(BASE).post('/v').reply(303, '', { location: '/v/task-1' });
    const { http } = client();
    const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(error.statusCode).toBe(303);
    expect(classifyCreateFailure(error, false)).toMatchObject({ failover: false, outcome: 'ambiguous' });
  });

  it.each([301, 302, 307, 308])('a %i to a create moved it elsewhere without acting on it: failed over', async (status) => {
    nock(BASE).post('/v').reply(status, '', { location: 'https://elsewhere.example/v' });
    const { http } = client();
    const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(classifyCreateFailure(error, false)).toMatchObject({ failover: true, outcome: 'failed' });
  });
});

describe('onCall records', () => {
  it('records each call once: provider, operation, method, path, status, outcome, duration, context', async () => {
    nock(BASE).get('/t').query({ id: '1' }).reply(200, {});
    nock(BASE).post('/v').reply(400, { code: 'bad_prompt' });
    const ticks = [1_000, 1_250, 2_000, 2_040];
    const { http, calls } = client({ now: () => ticks.shift() ?? 0 });
    const bound = http.withContext({ task_id: 'task_1', request_id: 'req_1' });
    await bound.send({ method: 'GET', path: '/t', query: { id: '1' }, operation: 'status' });
    await upstreamFailure(bound.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(calls).toEqual([
      {
        provider: 'fake',
        operation: 'status',
        method: 'GET',
        path: '/t',
        status: 200,
        outcome: 'ok',
        durationMs: 250,
        context: { task_id: 'task_1', request_id: 'req_1' },
      },
      {
        provider: 'fake',
        operation: 'submit',
        method: 'POST',
        path: '/v',
        status: 400,
        outcome: 'invalid_request',
        durationMs: 40,
        context: { task_id: 'task_1', request_id: 'req_1' },
      },
    ]);
  });

  it.each([
    [429, 'rate_limited'],
    [401, 'unauthorized'],
    [403, 'unauthorized'],
    [402, 'insufficient_credits'],
    [500, 'server_error'],
    [503, 'server_error'],
    [404, 'provider_error'],
  ])('records an error answer %i with outcome %s, so the metrics tell throttling, a refused key and an outage apart', async (status, outcome) => {
    nock(BASE).post('/v').reply(status, {});
    const { http, calls } = client();
    await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(calls.map((call) => [call.status, call.outcome])).toEqual([[status, outcome]]);
  });

  it('withContext adds to the context and leaves the original client unbound', async () => {
    nock(BASE).get('/t').times(2).reply(200, {});
    const { http, calls } = client();
    await http.withContext({ request_id: 'r' }).withContext({ task_id: 't' }).send({ method: 'GET', path: '/t', operation: 'status' });
    await http.send({ method: 'GET', path: '/t', operation: 'status' });
    expect(calls.map((call) => call.context)).toEqual([{ request_id: 'r', task_id: 't' }, {}]);
  });
});

describe('the API key never leaks', () => {
  it('is in no call record and no error, for an error answer, a timeout and a refused connection', async () => {
    nock(BASE).post('/v').reply(401, { code: 'unauthorized' });
    nock(BASE).post('/v').delay(2_000).reply(200, {});
    const port = await closedPort();
    // The answer gets the default timeout: on a loaded machine a first call can take over 50 ms.
    const answering = client();
    const timingOut = client({ timeoutMs: 50 });
    const refusedClient = client({ baseUrl: `http://127.0.0.1:${port}` });
    const errors = [
      await upstreamFailure(answering.http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' })),
      await upstreamFailure(timingOut.http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' })),
      await upstreamFailure(refusedClient.http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' })),
    ];
    expect(errors.map((error) => error.transport ?? error.statusCode)).toEqual([401, 'timeout', 'refused']);
    for (const error of errors) {
      expect(error.message).not.toContain(API_KEY);
      expect(JSON.stringify({ ...error, stack: error.stack })).not.toContain(API_KEY);
    }
    expect(JSON.stringify([...answering.calls, ...timingOut.calls, ...refusedClient.calls])).not.toContain(API_KEY);
  });
});

describe('a signed token the call sent', () => {
  const header = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url');
  const sent = `${header}.${Buffer.from('{"iss":"access-1","exp":2}').toString('base64url')}.nGnHntGD4_-anyPDEcx_ktLG33htO99LNPmhrhH7st0`;
  const other = `${header}.${Buffer.from('{"path":"/v.mp4"}').toString('base64url')}.Qm8vZr2T1kXp0aJcW7sYd4uLfE9hBn3gHq6tVy5oRiU`;
  const auth = { headers: async () => ({ authorization: `Bearer ${sent}` }), secrets: ['secret-key-1'] };

  it('is scrubbed from an answer that quotes it, and another JWT in an answer stays whole', async () => {
    nock(BASE).post('/v').reply(401, { message: `token ${sent} expired` });
    nock(BASE).get('/t').reply(200, { url: `https://cdn.example/v.mp4?token=${other}` });
    const { http } = client({ auth });
    const error = await upstreamFailure(http.send({ method: 'POST', path: '/v', body: {}, operation: 'submit' }));
    expect(JSON.stringify(error.responseBody)).not.toContain(sent.split('.')[2]);
    const answer = await http.send({ method: 'GET', path: '/t', operation: 'status' });
    expect(answer.data).toEqual({ url: `https://cdn.example/v.mp4?token=${other}` });
  });
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 0, 1, 0, 0, 0);

  it.each<[string | undefined, number | undefined]>([
    [undefined, undefined],
    ['', undefined],
    ['0', 0],
    ['1', 1_000],
    ['120', 120_000],
    ['1.5', 1_500],
    ['-5', 0],
    ['soon', undefined],
    // An absurd figure does not switch the provider off for good: an hour at most.
    ['3600', 3_600_000],
    ['3601', 3_600_000],
    ['9999999999999', 3_600_000],
    ['1e400', undefined],
  ])('%j → %j', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });

  it('reads an HTTP date as the time from now until then', () => {
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
  });

  it('is an hour at most for an HTTP date further away', () => {
    expect(parseRetryAfter('Fri, 01 Jan 2027 00:00:00 GMT', now)).toBe(3_600_000);
  });

  it('is 0 for an HTTP date in the past', () => {
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0);
  });
});
