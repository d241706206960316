/**
 * A query the gateway refuses names the parameter at fault, on every route that reads one: an
 * unknown parameter by its own name (a GET has no body to blame), and a parameter given more
 * than once as such (not as a value of the wrong kind).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw.close();
});

const ROUTES = ['/v1/videos', '/v1/videos/vid_unknown', '/v1/videos/vid_unknown/content', '/v1/usage'];
/** A valid value of one parameter each route reads. */
const PARAMETER: Record<string, [name: string, value: string]> = {
  '/v1/videos': ['status', 'queued'],
  '/v1/videos/vid_unknown': ['wait', '1'],
  '/v1/videos/vid_unknown/content': ['index', '0'],
  '/v1/usage': ['format', 'csv'],
};
/** What each route answers a request it takes: a task that does not exist is a 404. */
const ANSWERED: Record<string, number> = {
  '/v1/videos': 200,
  '/v1/videos/vid_unknown': 404,
  '/v1/videos/vid_unknown/content': 404,
  '/v1/usage': 200,
  '/v1/videos/vid_unknown/events': 404,
  '/v1/videos/vid_unknown/webhooks': 404,
  '/v1/videos/vid_unknown/cancel': 404,
  '/v1/models': 200,
  '/v1/providers': 200,
};

describe.each(ROUTES)('GET %s', (route) => {
  it.each([['colour=red', 'colour'], ['filter%5B%5D=x', 'filter[]']])('an unknown parameter (%s) is named by its own path', async (query, name) => {
    const answer = await gw.request('GET', `${route}?${query}`);
    expect(answer.status).toBe(400);
    expect(answer.body.type).toMatch(/\/validation$/);
    expect(answer.body.errors).toEqual([{ path: name, message: expect.stringMatching(/^unknown query parameter \(allowed: .+\)$/) }]);
  });

  it('a parameter given twice is named, and says so', async () => {
    const [name, value] = PARAMETER[route]!;
    const answer = await gw.request('GET', `${route}?${name}=${value}&${name}=${value}`);
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ path: name, message: 'given more than once; give it once' }]);
  });

  it('a valid value is still read (the refusal is about the repeat alone)', async () => {
    const [name, value] = PARAMETER[route]!;
    const answer = await gw.request('GET', `${route}?${name}=${value}`);
    expect(answer.status).toBe(ANSWERED[route]);
  });
});

describe.each([
  ['GET', '/v1/videos/vid_unknown/events'],
  ['GET', '/v1/videos/vid_unknown/webhooks'],
  ['POST', '/v1/videos/vid_unknown/cancel'],
  ['GET', '/v1/models'],
  ['GET', '/v1/providers'],
])('%s %s, which takes no query', (method, route) => {
  it('refuses a parameter, named, rather than ignoring it', async () => {
    const answer = await gw.request(method, `${route}?colour=red`);
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ path: 'colour', message: 'unknown query parameter (this route takes none)' }]);
  });

  it('answers as before without one', async () => {
    const answer = await gw.request(method, route);
    expect(answer.status).toBe(ANSWERED[route]);
  });
});

describe.each([['/v1/videos'], ['/v1/videos/quote']])('POST %s, which takes its request in the body', (route) => {
  const body = { model: 'kling-v3', prompt: 'a query beside the body', duration: 5 };
  const taskCount = async () => (await gw.request('GET', '/v1/videos?limit=100')).body.data.length as number;
  const upstreamCalls = () => [...gw.simulators.values()].reduce((sum, simulator) => sum + simulator.requests.length, 0);

  // Ignored before: `POST /v1/videos?duration=10` made a 5-second video as if the query were read.
  it.each([['duration=10', 'duration'], ['routing%5Bproviders%5D=kling3api', 'routing[providers]'], ['dry_run=true', 'dry_run']])(
    'refuses a query parameter (%s), named, and creates nothing',
    async (query, name) => {
      const [tasks, calls] = [await taskCount(), upstreamCalls()];
      const answer = await gw.request('POST', `${route}?${query}`, body);
      expect(answer.status).toBe(400);
      expect(answer.headers.get('content-type')).toContain('application/problem+json');
      expect(answer.body.errors).toEqual([{ path: name, message: 'unknown query parameter (this route takes none)' }]);
      expect(await taskCount()).toBe(tasks);
      expect(upstreamCalls()).toBe(calls);
    },
  );

  it('answers as before without one', async () => {
    const answer = await gw.request('POST', route, body);
    expect([200, 202]).toContain(answer.status);
  });
});

describe('a number in the query is written in decimal digits', () => {
  /** Each route's whole-number parameter. */
  const NUMBERS: [route: string, name: string][] = [
    ['/v1/videos/vid_unknown', 'wait'],
    ['/v1/videos', 'limit'],
    ['/v1/videos/vid_unknown/content', 'index'],
  ];

  // Read as numbers before: an empty or blank value as 0 (`?wait=` answered at once, `?index=`
  // served the first output), `0x3` as 3, `1e1` as 10.
  it.each(NUMBERS.flatMap(([route, name]) => ['', '%20', '0x3', '1e1', '%2B2', 'Infinity'].map((value) => [route, name, value] as const)))(
    '%s?%s=%s is refused, naming the parameter and what was given',
    async (route, name, value) => {
      const answer = await gw.request('GET', `${route}?${name}=${value}`);
      expect(answer.status).toBe(400);
      expect(answer.body.errors).toEqual([{ path: name, message: `expected a whole number in decimal digits, got ${JSON.stringify(decodeURIComponent(value))}` }]);
    },
  );

  // Decimal digits all the same: refused for their length, not called something they are not.
  it.each(NUMBERS.flatMap(([route, name]) => ['99999999999999999999', '0000000000000005', '-12345678901234567', '1.0000000000000000001'].map((value) => [route, name, value] as const)))(
    '%s?%s=%s is refused for having too many digits',
    async (route, name, value) => {
      const answer = await gw.request('GET', `${route}?${name}=${value}`);
      expect(answer.status).toBe(400);
      expect(answer.body.errors).toEqual([{ path: name, message: `must be a number of at most 15 digits (before and after the point), got ${JSON.stringify(value)}` }]);
    },
  );

  it.each([
    ['/v1/videos/vid_unknown?wait=61', 'wait', /^must be at most 60$/],
    ['/v1/videos/vid_unknown?wait=-1', 'wait', /^must be at least 0$/],
    ['/v1/videos/vid_unknown?wait=1.5', 'wait', /^must be an integer$/],
    ['/v1/videos?limit=0', 'limit', /^must be at least 1$/],
  ])('%s is still refused for its range', async (path, name, message) => {
    const answer = await gw.request('GET', path);
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ path: name, message: expect.stringMatching(message) }]);
  });

  it('reads digits as before', async () => {
    expect((await gw.request('GET', '/v1/videos?limit=007')).status).toBe(200);
    expect((await gw.request('GET', '/v1/videos/vid_unknown?wait=0')).status).toBe(404);
  });
});
