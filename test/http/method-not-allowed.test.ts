/**
 * A route that exists, asked with a method it does not take: `405` with the methods it does take
 * in `Allow` (RFC 9110 §15.5.6), as problem details, and nothing changed. A path that is no route
 * at all stays `404`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

describe('a method the route does not take', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw.close();
  });

  it.each([
    ['DELETE', '/v1/videos', 'GET, HEAD, OPTIONS, POST'],
    ['PUT', '/v1/videos/task_1', 'GET, HEAD, OPTIONS'],
    ['DELETE', '/v1/videos/task_1', 'GET, HEAD, OPTIONS'],
    ['GET', '/v1/videos/task_1/cancel', 'OPTIONS, POST'],
    ['PATCH', '/v1/models', 'GET, HEAD, OPTIONS'],
    ['POST', '/v1/usage', 'GET, HEAD, OPTIONS'],
    ['GET', '/v1/webhooks/freepik', 'OPTIONS, POST'],
    ['POST', '/healthz', 'GET, HEAD, OPTIONS'],
    ['DELETE', '/openapi.json', 'GET, HEAD, OPTIONS'],
    ['POST', '/docs/', 'GET, HEAD, OPTIONS'],
    ['PUT', '/console/index.html', 'GET, HEAD, OPTIONS'],
    ['POST', '/', 'GET, HEAD, OPTIONS'],
  ])('%s %s: 405 with Allow: %s', async (method, path, allow) => {
    const answer = await gw.request(method, path);
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe(allow);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.headers.get('x-request-id')).toBeTruthy();
    expect(answer.body).toMatchObject({ status: 405, title: 'Method not allowed', detail: `${path} does not take ${method}; it takes ${allow}` });
  });

  it.each([
    ['GET', '/v1/webhooks/freepik'],
    ['GET', '/v1/webhooks/freepik/att_1'],
    ['PUT', '/v1/webhooks/kling-legacy/token_1'],
  ])('%s %s without a gateway key: 405 with Allow: POST (a webhook route takes no gateway key)', async (method, path) => {
    const answer = await gw.request(method, path, undefined, {}, null);
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('OPTIONS, POST');
    expect(answer.headers.get('www-authenticate')).toBeNull();
    expect(answer.body).toMatchObject({ status: 405, detail: `${path} does not take ${method}; it takes OPTIONS, POST` });
  });

  it('GET /v1/videos/quote reads a task named "quote" (the read route), so PUT there takes GET and POST', async () => {
    const answer = await gw.request('PUT', '/v1/videos/quote');
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('GET, HEAD, OPTIONS, POST');
  });

  it('creates nothing: DELETE with a create body leaves the task list as it was', async () => {
    const before = (await gw.request('GET', '/v1/videos')).body.data.length;
    const answer = await gw.request('PUT', '/v1/videos', { model: 'kling-v3', prompt: 'a lighthouse at dusk' });
    expect(answer.status).toBe(405);
    expect((await gw.request('GET', '/v1/videos')).body.data).toHaveLength(before);
  });

  it('a path that is no route stays 404, and a key is still asked for first', async () => {
    expect((await gw.request('DELETE', '/v1/nothing-here')).status).toBe(404);
    expect((await gw.request('GET', '/v1/videos/a/b/c')).status).toBe(404);
    expect((await gw.request('DELETE', '/v1/videos', undefined, {}, null)).status).toBe(401);
  });
});

describe('OPTIONS', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw.close();
  });

  const corsHeaders = (headers: Headers) => [...headers.keys()].filter((name) => name.startsWith('access-control-'));

  it.each([
    ['/v1/videos', 'GET, HEAD, OPTIONS, POST'],
    ['/v1/videos/task_1', 'GET, HEAD, OPTIONS'],
    ['/v1/videos/task_1/cancel', 'OPTIONS, POST'],
    ['/v1/videos/quote', 'GET, HEAD, OPTIONS, POST'],
    ['/v1/webhooks/kling-legacy/token_1', 'OPTIONS, POST'],
    ['/healthz', 'GET, HEAD, OPTIONS'],
    ['/openapi.json', 'GET, HEAD, OPTIONS'],
    ['/docs', 'GET, HEAD, OPTIONS'],
    ['/docs/index.html', 'GET, HEAD, OPTIONS'],
    ['/docs/swagger-ui.css', 'GET, HEAD, OPTIONS'],
    ['/console/', 'GET, HEAD, OPTIONS'],
    ['/console/index.html', 'GET, HEAD, OPTIONS'],
    ['/', 'GET, HEAD, OPTIONS'],
    ['/V1/Videos/', 'GET, HEAD, OPTIONS, POST'],
  ])('OPTIONS %s without a key: 204, Allow: %s, a request id, no CORS headers', async (path, allow) => {
    const answer = await gw.request('OPTIONS', path, undefined, { origin: 'https://elsewhere.example', 'access-control-request-method': 'POST' }, null);
    expect(answer.status).toBe(204);
    expect(answer.headers.get('allow')).toBe(allow);
    expect(answer.headers.get('x-request-id')).toBeTruthy();
    expect(answer.body).toBeUndefined();
    expect(corsHeaders(answer.headers)).toEqual([]);
  });

  it('every path of the API document answers OPTIONS with exactly its documented methods (HEAD with GET), and takes them', async () => {
    const paths = (await gw.request('GET', '/openapi.json', undefined, {}, null)).body.paths as Record<string, Record<string, unknown>>;
    for (const [template, item] of Object.entries(paths)) {
      const path = template.replace(/\{[^}]+\}/g, 'x1');
      const documented = Object.keys(item).filter((key) => ['get', 'put', 'post', 'delete', 'patch'].includes(key)).map((key) => key.toUpperCase());
      const expected = [...documented, ...(documented.includes('GET') ? ['HEAD'] : []), 'OPTIONS'].sort().join(', ');
      // /v1/videos/quote is also a task id: its Allow adds the read's methods.
      if (path === '/v1/videos/quote') continue;
      const answer = await gw.request('OPTIONS', path, undefined, {}, null);
      expect(answer.status, path).toBe(204);
      expect(answer.headers.get('allow'), path).toBe(expected);
      // And each documented method reaches its route: never the 405 of a table that drifted from the routes.
      for (const method of documented) {
        expect((await gw.request(method, path, method === 'POST' ? {} : undefined)).status, `${method} ${path}`).not.toBe(405);
      }
    }
  });

  it('is counted in the HTTP metrics under the route it matched (its template, never the path), as other methods are', async () => {
    const paths = ['/v1/videos/task_metrics', '/v1/videos/quote', '/v1/webhooks/kling-legacy/token_metrics', '/console/index.html', '/V1/Videos/'];
    for (const path of paths) expect((await gw.request('OPTIONS', path, undefined, {}, null)).status).toBe(204);
    const exposition = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    const routes = [...exposition.matchAll(/^kling_gateway_http_requests_total\{method="OPTIONS",route="([^"]*)",status="204"\}/gm)].map(([, route]) => route);
    expect(routes).toEqual(expect.arrayContaining(['/v1/videos/:id', '/v1/videos/quote', '/v1/webhooks/kling-legacy/:token', '/console/*file', '/v1/videos']));
    expect(routes).not.toContain('unmatched');
    expect(routes.filter((route) => /_metrics|Videos/.test(route!))).toEqual([]);
  });

  it('names every answer no single express route gave by its route template in the metrics: a 405, a refusal before routing, a static file, a page of several paths', async () => {
    const asked: [method: string, path: string, withKey: boolean][] = [
      ['DELETE', '/v1/videos', true],
      ['GET', '/v1/videos', false],
      ['GET', '/docs/', false],
      ['GET', '/docs/index.html', false],
      ['GET', '/console/app.js', false],
      ['GET', '/no-such-route', false],
    ];
    const statuses = [];
    for (const [method, path, withKey] of asked) statuses.push((await gw.request(method, path, undefined, {}, withKey ? undefined : null)).status);
    expect(statuses).toEqual([405, 401, 200, 200, 200, 404]);
    const exposition = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    const counted = (method: string, status: number) =>
      [...exposition.matchAll(new RegExp(`^kling_gateway_http_requests_total\\{method="${method}",route="([^"]*)",status="${status}"\\}`, 'gm'))].map(([, route]) => route);
    expect(counted('DELETE', 405)).toEqual(['/v1/videos']);
    expect(counted('GET', 401)).toContain('/v1/videos');
    expect(counted('GET', 200)).toEqual(expect.arrayContaining(['/docs', '/docs/index.html', '/console/*file']));
    expect(counted('GET', 200).filter((route) => route!.includes(','))).toEqual([]);
    expect(counted('GET', 404)).toContain('unmatched');
    expect(exposition).not.toContain('no-such-route');
  });

  it.each([['/nothing'], ['/v1/nothing'], ['/v1/webhooks/nope'], ['/v1/videos/a/b/c'], ['/docs/nothing'], ['/console/nothing.js']])(
    'OPTIONS %s, no route, is a 404 problem',
    async (path) => {
      const answer = await gw.request('OPTIONS', path, undefined, {}, null);
      expect(answer.status).toBe(404);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(answer.headers.get('allow')).toBeNull();
      expect(answer.body).toMatchObject({ status: 404, detail: `no route for OPTIONS ${path}` });
    },
  );
});
