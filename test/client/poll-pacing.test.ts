/**
 * How `waitForVideo` paces its long polls (transport `poll`): a poll answered 503 is sent again only
 * after the `Retry-After` the gateway named, and every poll asks the gateway to hold it
 * (`?wait=` of at least 1 s), also when less than a second of the wait is left: a poll without
 * `wait` is answered at once, and the client would send poll after poll until its time ran out.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { GatewayClient, WaitTimeoutError } from '../../packages/client/src/index.js';
import { withClientTimerHeld } from '../support/client-timer.js';
import { succeededTask } from '../support/fake-task-gateway.js';
import { loopbackServer } from '../support/raw-answer.js';

describe('waitForVideo poll pacing', () => {
  let server: { base: string; close: () => Promise<void> };
  /** Each poll: when it came (ms since the test began) and its `wait` parameter (null: none). */
  let polls: { at: number; wait: string | null }[] = [];
  let startedAt = 0;
  /** Polls answered 503 with `Retry-After: 1` before the task is answered. */
  let busyFor = 0;
  let status = 'processing';

  beforeAll(async () => {
    server = await loopbackServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      const url = new URL(req.url ?? '/', 'http://x');
      polls.push({ at: Date.now() - startedAt, wait: url.searchParams.get('wait') });
      if (polls.length <= busyFor) {
        res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '1' }).end(JSON.stringify({ type: 'about:blank', title: 'Service unavailable', status: 503 }));
        return;
      }
      const task = { ...succeededTask(server.base, 'vid_paced'), status, ...(status === 'succeeded' ? {} : { completed_at: null, outputs: [] }) };
      // A long poll held by the gateway: answered at once here (the task does not change).
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(task));
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  const client = () => new GatewayClient({ baseUrl: server.base, apiKey: 'test-key-123' });

  it("a poll answered 503 with Retry-After: 1 is sent again no sooner than 1 s later", async () => {
    polls = [];
    busyFor = 1;
    status = 'succeeded';
    startedAt = Date.now();
    const task = await client().waitForVideo('vid_paced', { transport: 'poll', timeoutMs: 10_000 });
    expect(task.status).toBe('succeeded');
    expect(polls).toHaveLength(2);
    expect(polls[1]!.at - polls[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('with less than a second left, the poll still asks the gateway to hold it (wait=1), never a poll without wait', async () => {
    polls = [];
    busyFor = 0;
    status = 'processing';
    startedAt = Date.now();
    // The wait's timer runs out only once a poll was answered: with a real 400 ms, a loaded machine
    // could let it run out before the first poll was answered, and the read the wait then makes
    // to report the task (no `wait`: it is not a poll) came in as a poll without wait.
    const error = await withClientTimerHeld(async (runOut) => {
      let ended = false;
      const waiting = client()
        .waitForVideo('vid_paced', { transport: 'poll', timeoutMs: 400 })
        .catch((caught: unknown) => caught)
        .finally(() => (ended = true));
      // A second poll is sent once the first was answered (or the wait already ended on its own clock).
      await vi.waitFor(() => expect(ended || polls.length >= 2).toBe(true), { timeout: 10_000 });
      await runOut(400);
      return waiting;
    });
    expect(error).toBeInstanceOf(WaitTimeoutError);
    expect(polls.length).toBeGreaterThan(0);
    expect(polls.map((poll) => poll.wait)).toEqual(polls.map(() => '1'));
  });
});
