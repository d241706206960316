/**
 * `waitForVideo`'s `pollWindowSeconds` is the longest single `?wait=` of its long polls. The
 * gateway takes whole seconds only (`?wait=2.5` is a 400), so a window given with a fraction is
 * asked as the whole seconds within it, not sent as it is: a wait that fell back to polling (a
 * proxy that buffers event streams) failed then with a validation error about a query parameter
 * the caller never wrote. A window that is no number at all is refused when the wait is asked for:
 * it was sent as no `wait`, so every poll was answered at once and the client sent poll after poll
 * until the task ended.
 */
import { afterEach, expect, it } from 'vitest';
import { GatewayClient } from '../../packages/client/src/index.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const body = { model: 'kling-v3', prompt: 'a fox waited for in polls', duration: 5, routing: { providers: ['kling3api'] } } as const;

it('asks a window given with a fraction as its whole seconds, and waits to the end of the task', async () => {
  gw = await startTestGateway();
  const created = await gw.create(body);
  expect(created.body.status).not.toBe('succeeded');
  const waits: string[] = [];
  const client = new GatewayClient({
    baseUrl: gw.url,
    apiKey: TENANT_KEY,
    fetch: (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const wait = url.searchParams.get('wait');
      if (wait !== null) waits.push(wait);
      return fetch(input, init);
    },
  });
  const waited = client.waitForVideo(created.body.id, { transport: 'poll', pollWindowSeconds: 2.5, timeoutMs: 60_000 });
  const outcome = waited.then(
    (task) => ({ task }),
    (error: unknown) => ({ error }),
  );
  // The gateway's clock moves on only here: its held polls answer once the task ends.
  const finished = await gw.finish(created.body.id);
  const result = await outcome;
  expect(result).toEqual({ task: expect.objectContaining({ id: created.body.id, status: finished.status }) });
  expect(waits.length).toBeGreaterThan(0);
  expect(waits.every((wait) => wait === '2')).toBe(true);
});

it('refuses a window that is no number, rather than polling without one', async () => {
  gw = await startTestGateway();
  const created = await gw.create(body);
  let polls = 0;
  const client = new GatewayClient({
    baseUrl: gw.url,
    apiKey: TENANT_KEY,
    fetch: (input, init) => {
      polls += 1;
      return fetch(input, init);
    },
  });
  await expect(client.waitForVideo(created.body.id, { transport: 'poll', pollWindowSeconds: Number.NaN, timeoutMs: 3_000 })).rejects.toThrow(TypeError);
  expect(polls).toBe(0);
});

it('refuses a timeoutMs that is no number (Number of an unset variable), rather than polling without a window', async () => {
  gw = await startTestGateway();
  const created = await gw.create(body);
  const waits: (string | null)[] = [];
  // Ends the wait should it poll on: NaN was no deadline and no `?wait=`, so poll after poll, each answered at once.
  const stop = new AbortController();
  const client = new GatewayClient({
    baseUrl: gw.url,
    apiKey: TENANT_KEY,
    fetch: (input, init) => {
      waits.push(new URL(input instanceof Request ? input.url : String(input)).searchParams.get('wait'));
      if (waits.length >= 20) stop.abort(new Error('polled 20 times'));
      return fetch(input, init);
    },
  });
  const waited = client.waitForVideo(created.body.id, { transport: 'poll', timeoutMs: Number.NaN, signal: stop.signal });
  await expect(waited).rejects.toThrow(new TypeError('timeoutMs is NaN: give milliseconds (Infinity for no limit)'));
  expect(waits).toEqual([]);
});
