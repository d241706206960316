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
    ['DELETE', '/v1/videos', 'GET, HEAD, POST'],
    ['PUT', '/v1/videos/task_1', 'GET, HEAD'],
    ['DELETE', '/v1/videos/task_1', 'GET, HEAD'],
    ['GET', '/v1/videos/task_1/cancel', 'POST'],
    ['PATCH', '/v1/models', 'GET, HEAD'],
    ['POST', '/v1/usage', 'GET, HEAD'],
    ['GET', '/v1/webhooks/freepik', 'POST'],
    ['POST', '/healthz', 'GET, HEAD'],
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
    expect(answer.headers.get('allow')).toBe('POST');
    expect(answer.headers.get('www-authenticate')).toBeNull();
    expect(answer.body).toMatchObject({ status: 405, detail: `${path} does not take ${method}; it takes POST` });
  });

  it('GET /v1/videos/quote reads a task named "quote" (the read route), so PUT there takes GET and POST', async () => {
    const answer = await gw.request('PUT', '/v1/videos/quote');
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('GET, HEAD, POST');
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
