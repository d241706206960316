/**
 * The client's time limit on an answer (`timeoutMs`): a gateway, or a proxy before it, that takes
 * the connection and never answers fails the call with `NoAnswerError` instead of holding it for
 * minutes; a long poll's own window, an event stream and a download are not cut by it.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CreateAbortedError, GatewayClient, GatewayUnreachableError, NoAnswerError } from '../../packages/client/src/index.js';
import { withClientTimerHeld } from '../support/client-timer.js';
import { loopbackServer } from '../support/raw-answer.js';

/** Short, so each call that runs into it waits a fraction of a second. */
const LIMIT_MS = 250;

describe('client time limit on answers', () => {
  let gateway: { base: string; close: () => Promise<void> };
  const createKeys: string[] = [];
  const task = (id: string) => ({ id, status: 'succeeded' });

  beforeAll(async () => {
    gateway = await loopbackServer((req, res) => {
      req.resume();
      const url = new URL(req.url!, 'http://x');
      if (req.method === 'POST' && url.pathname === '/v1/videos') {
        // Took the create; the answer never comes.
        createKeys.push(String(req.headers['idempotency-key']));
        return;
      }
      if (url.pathname === '/v1/videos/vid_stalled') {
        // Headers and half a body, then nothing.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"id":"vid_stalled",');
        return;
      }
      if (url.pathname === '/v1/videos/vid_held') {
        // A long poll holds on purpose for longer than the limit, within its window.
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(task('vid_held'))), LIMIT_MS + 250);
        return;
      }
      if (url.pathname === '/v1/videos/vid_slow/events') {
        // The stream starts at once; its first event comes after the limit.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': connected\n\n');
        setTimeout(() => res.end(`event: task.succeeded\ndata: ${JSON.stringify(task('vid_slow'))}\n\n`), LIMIT_MS + 250);
        return;
      }
      if (url.pathname === '/openapi.json') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ paths: { '/v1/videos/{id}/content': { get: {} } } }));
        return;
      }
      if (url.pathname === '/v1/videos/vid_stored') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...task('vid_stored'), outputs: [{ url: `${gateway.base}/files/vid_stored.mp4`, storage: 'stored' }] }));
        return;
      }
      if (url.pathname === '/v1/videos/vid_stalled/events' || url.pathname === '/v1/videos/vid_stored/content') {
        // An error status, then half its problem document, then nothing.
        res.writeHead(503, { 'content-type': 'application/problem+json' });
        res.write('{"type":"about:blank",');
        return;
      }
      res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404 }));
    });
  });

  afterAll(async () => {
    await gateway.close();
  });

  const client = () => new GatewayClient({ baseUrl: gateway.base, apiKey: 'key-1', timeoutMs: LIMIT_MS });

  it('a create the gateway took and never answered fails with NoAnswerError, which names the limit', async () => {
    // The limit runs out once the gateway has the create: with a real 0.25 s, a loaded machine
    // could let it run out before the create was even sent.
    const error = await withClientTimerHeld(async (runOut) => {
      const creating = client()
        .createVideo({ model: 'kling-v3', prompt: 'a fox' }, { idempotencyKey: 'key-never-answered' })
        .catch((caught: unknown) => caught);
      await vi.waitFor(() => expect(createKeys).toContain('key-never-answered'), { timeout: 10_000 });
      await runOut(LIMIT_MS);
      return creating;
    });
    expect(error).toBeInstanceOf(NoAnswerError);
    // The create may exist: callers that resend on an unreachable gateway (with the same key) do so here too.
    expect(error).toBeInstanceOf(GatewayUnreachableError);
    expect((error as Error).message).toBe(`${gateway.base} did not answer within 0.25 s`);
    expect(createKeys).toContain('key-never-answered');
  });

  it('a JSON answer whose body stalls after its headers is no answer either', async () => {
    const error = await client().getVideo('vid_stalled').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NoAnswerError);
  });

  it.each([
    ['an event stream', (gatewayClient: GatewayClient) => gatewayClient.videoEvents('vid_stalled').next()],
    ['a download', (gatewayClient: GatewayClient) => gatewayClient.downloadOutput('vid_stored')],
  ])('%s answered with an error whose body stalls is no answer either, not a call held forever', async (_what, call) => {
    const error = await call(client()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NoAnswerError);
    expect((error as Error).message).toBe(`${gateway.base} did not answer within 0.25 s`);
  }, 5_000);

  it("a long poll may hold for its window on top of the limit", async () => {
    await expect(client().getVideo('vid_held', { wait: 1 })).resolves.toMatchObject({ id: 'vid_held' });
    // Without the window, the same wait is past the limit.
    await expect(client().getVideo('vid_held')).rejects.toBeInstanceOf(NoAnswerError);
  });

  it('an event stream that started is not cut by the limit', async () => {
    // Time passes once the stream has started: with a real 0.25 s, a loaded machine could let the
    // limit run out before the stream's start was read.
    let started = false;
    const watching = new GatewayClient({
      baseUrl: gateway.base,
      apiKey: 'key-1',
      timeoutMs: LIMIT_MS,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        started = true;
        return response;
      },
    });
    const events = await withClientTimerHeld(async (runOut) => {
      const reading = (async () => {
        const seen = [];
        for await (const event of watching.videoEvents('vid_slow')) seen.push(event);
        return seen;
      })();
      await vi.waitFor(() => expect(started).toBe(true), { timeout: 10_000 });
      // Past the limit, to the first event.
      await runOut(LIMIT_MS + 250);
      return reading;
    });
    expect(events.map((event) => [event.event, event.task.id])).toEqual([['task.succeeded', 'vid_slow']]);
  });

  it("the caller's own abort wins over the limit, and 0 means no limit", async () => {
    const stop = new AbortController();
    const stopped = client().createVideo({ model: 'kling-v3', prompt: 'a fox' }, { signal: stop.signal }).catch((caught: unknown) => caught);
    const reason = new Error('caller stopped');
    stop.abort(reason);
    // The create's own error for an abort, whose cause is the caller's reason (not NoAnswerError).
    const error = await stopped;
    expect(error).toBeInstanceOf(CreateAbortedError);
    expect((error as CreateAbortedError).cause).toBe(reason);

    const unlimited = new GatewayClient({ baseUrl: gateway.base, apiKey: 'key-1', timeoutMs: 0 });
    await expect(unlimited.getVideo('vid_held')).resolves.toMatchObject({ id: 'vid_held' });
    expect(() => new GatewayClient({ baseUrl: gateway.base, apiKey: 'key-1', timeoutMs: -1 })).toThrow('timeoutMs is -1');
  });
});
