/**
 * The `route` label of the HTTP metrics names the route, never the path a client wrote. Express
 * routes a path in any letter case (`/V1/VIDEOS` is `/v1/videos`), so a label built from the
 * path as sent would open a new series for every spelling of a route: anyone (the webhook routes
 * need no key) could multiply the series of every route by the letter cases of its path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

describe('the route label of a path written in another letter case', () => {
  let gw: TestGateway;
  let exposition: string;

  /** Every request is sent twice: as the route is written, and in another letter case. */
  const spellings: [method: string, canonical: string, other: string, key: 'tenant' | 'none'][] = [
    ['GET', '/v1/videos', '/V1/VIDEOS', 'tenant'],
    ['GET', '/v1/videos/missing', '/v1/Videos/missing', 'tenant'],
    ['GET', '/v1/videos/missing/events', '/V1/videos/missing/events', 'tenant'],
    ['GET', '/v1/usage', '/v1/USAGE', 'tenant'],
    ['GET', '/v1/models', '/V1/models', 'tenant'],
    ['POST', '/v1/webhooks/freepik', '/V1/WebHooks/freepik', 'none'],
    ['POST', '/v1/webhooks/kling-legacy/no-such-token', '/v1/WEBHOOKS/kling-legacy/no-such-token', 'none'],
  ];

  beforeAll(async () => {
    gw = await startTestGateway();
    for (const [method, canonical, other, key] of spellings) {
      for (const path of [canonical, other]) {
        // A body with its length: the plain webhook case, which may be answered ahead of express.
        const body = method === 'POST' ? '{}' : undefined;
        await gw.request(method, path, body, {}, key === 'none' ? null : undefined);
      }
    }
    exposition = (await gw.request('GET', '/metrics', undefined, {}, null)).body;
  });

  afterAll(async () => {
    await gw.close();
  });

  it('is the route as registered, whatever the letter case of the path', () => {
    const routes = new Set([...exposition.matchAll(/^kling_gateway_http_requests_total\{method="[A-Z]+",route="([^"]*)"/gm)].map((match) => match[1]!));
    expect([...routes]).toEqual(expect.arrayContaining(['/v1/videos', '/v1/videos/:id', '/v1/usage', '/v1/models']));
    expect([...routes].filter((route) => route !== route.toLowerCase())).toEqual([]);
  });

  it('counts both spellings of a route on one series', () => {
    const count = (method: string, route: string) => {
      const lines = [...exposition.matchAll(new RegExp(`^kling_gateway_http_requests_total\\{method="${method}",route="${route.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}",status="\\d+"\\} (\\d+)$`, 'gm'))];
      return lines.reduce((sum, line) => sum + Number(line[1]), 0);
    };
    expect(count('GET', '/v1/videos')).toBe(2);
    expect(count('GET', '/v1/videos/:id')).toBe(2);
    expect(count('GET', '/v1/usage')).toBe(2);
    expect(count('GET', '/v1/models')).toBe(2);
  });
});
