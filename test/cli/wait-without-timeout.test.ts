/**
 * `kling-gateway wait` and `generate --wait` without `--timeout` follow the task until it ends:
 * the gateway ends every task by its own deadline (`tasks.deadline_ms`, which may be set past
 * the default 30 minutes), so the command has no limit of its own. It gave up after the client's
 * default 30 minutes with exit 8 ("still processing after 1800 s") while the video was being made.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, expect, it, vi } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { loopbackServer } from '../support/raw-answer.js';
import { succeededTask } from '../support/fake-task-gateway.js';

const ID = 'vid_long';

afterEach(() => {
  vi.useRealTimers();
});

it('wait without --timeout goes on past 30 minutes until the task ends', async () => {
  // Only the wall clock is the test's: the gateway moves it 40 minutes on at the first poll.
  vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-01-01T00:00:00.000Z') });
  const done = succeededTask('http://unused.test', ID);
  const running = { ...done, status: 'processing', completed_at: null, provider_status: 'IN_PROGRESS', outputs: [] };
  let polls = 0;
  const gateway = await loopbackServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (body: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    // A proxy that cuts event streams: the command polls.
    if (url.pathname === `/v1/videos/${ID}/events`) {
      res.writeHead(503, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Service unavailable', status: 503 }));
      return;
    }
    if (url.pathname === `/v1/videos/${ID}` && url.searchParams.has('wait')) {
      polls += 1;
      if (polls === 1) {
        vi.setSystemTime(Date.now() + 40 * 60_000);
        json(running);
        return;
      }
      json({ ...done, status: 'failed', error: { code: 'provider_error', message: 'ended at last' }, outputs: [] });
      return;
    }
    json(running);
  });
  try {
    const result = await runCliCaptured(['wait', ID, '--no-download'], {
      env: { KLING_GATEWAY_URL: gateway.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
      pause: async () => undefined,
    });
    // Followed to its end (failed: exit 6), not given up on while it ran.
    expect([result.code, result.stderr]).toEqual([6, expect.stringContaining(`video ${ID} failed: provider_error: ended at last`)]);
    expect(polls).toBe(2);
  } finally {
    await gateway.close();
  }
});
