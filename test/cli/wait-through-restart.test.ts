/**
 * `kling-gateway wait` (and `generate --wait`) while the gateway restarts — a deploy, a crash and
 * its restart, a proxy answering 502/503 meanwhile — for longer than the client's own few polls:
 * the command says the gateway is away and goes on following the task (pausing 2, 4, 8, 16 s),
 * instead of ending with "try again later" while the video is still being made.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { loopbackServer } from '../support/raw-answer.js';

const ID = 'vid_restart';

describe('kling-gateway wait through a gateway restart', () => {
  let server: { base: string; close: () => Promise<void> };
  /** Polls (`?wait=`) answered 503 before the gateway is back. */
  let awayFor = 0;
  let polls = 0;
  /** What the gateway answers meanwhile: 503 (restarting), or 429 (too many requests). */
  let awayStatus = 503;

  const task = (status: string) => ({
    id: ID,
    object: 'video',
    status,
    model: 'kling-v3',
    quality: 'pro',
    operation: 'text-to-video',
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: status === 'succeeded' ? '2026-01-01T00:00:05.000Z' : '2026-01-01T00:00:01.000Z',
    completed_at: status === 'succeeded' ? '2026-01-01T00:00:05.000Z' : null,
    provider: 'freepik',
    provider_task_id: 'up-1',
    provider_status: status === 'succeeded' ? 'COMPLETED' : 'IN_PROGRESS',
    outputs: [],
    error: null,
    cost: { credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' },
    attempts: [],
    warnings: [],
    metadata: {},
    request: { model: 'kling-v3', prompt: 'through a restart' },
  });

  beforeAll(async () => {
    server = await loopbackServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      const url = new URL(req.url ?? '/', 'http://x');
      const away = () =>
        res
          .writeHead(awayStatus, { 'content-type': 'application/problem+json', 'retry-after': '0' })
          .end(
            JSON.stringify(
              awayStatus === 429
                ? { type: 'about:blank', title: 'Too many requests', status: 429, detail: 'slow down' }
                : { type: 'about:blank', title: 'Service unavailable', status: 503, detail: 'the gateway is restarting' },
            ),
          );
      if (url.pathname === `/v1/videos/${ID}/events`) return away();
      if (url.pathname === `/v1/videos/${ID}` && url.searchParams.has('wait')) {
        polls += 1;
        if (polls <= awayFor) return away();
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(task('succeeded')));
        return;
      }
      if (url.pathname === `/v1/videos/${ID}`) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(task('processing')));
        return;
      }
      res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404 }));
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  function wait(args: string[], pauses: number[]) {
    return runCliCaptured(['wait', ID, '--no-download', ...args], {
      env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
      pause: async (ms) => void pauses.push(ms),
    });
  }

  it('says the gateway is away, keeps following, and ends with the task once it is back', async () => {
    // The client's own polls give up after four in a row; this outage outlasts two rounds of them.
    polls = 0;
    awayFor = 8;
    const pauses: number[] = [];
    const result = await wait([], pauses);
    expect([result.code, result.stdout]).toEqual([0, expect.stringMatching(new RegExp(`^${ID}\\s+succeeded$`, 'm'))]);
    expect(pauses).toEqual([2_000, 4_000]);
    expect(result.stderr).toContain(`the gateway is away (Service unavailable (503): the gateway is restarting); still following video ${ID}, again in 2 s`);
  });

  it('a gateway answering 429 (too many requests) for longer than the client\'s own polls is waited out too, not exit 9', async () => {
    polls = 0;
    awayFor = 8;
    awayStatus = 429;
    const pauses: number[] = [];
    const result = await wait([], pauses).finally(() => (awayStatus = 503));
    expect([result.code, result.stdout]).toEqual([0, expect.stringMatching(new RegExp(`^${ID}\\s+succeeded$`, 'm'))]);
    expect(pauses).toEqual([2_000, 4_000]);
    expect(result.stderr).toContain(`the gateway is away (Too many requests (429): slow down); still following video ${ID}, again in 2 s`);
  });

  it('gives up on a gateway that stays away, naming the task to follow again', async () => {
    polls = 0;
    awayFor = Number.POSITIVE_INFINITY;
    const pauses: number[] = [];
    const result = await wait([], pauses);
    expect(result.code).toBe(9);
    expect(pauses).toEqual([2_000, 4_000, 8_000, 16_000]);
    expect(result.stderr).toContain(`video ${ID} goes on at the gateway; follow it with: kling-gateway wait ${ID}`);
  });

  it('pauses for the gateway within --timeout, then says the time ran out (exit 8), not past it', async () => {
    polls = 0;
    awayFor = Number.POSITIVE_INFINITY;
    const pauses: number[] = [];
    // Each pause moves the clock on by what it was asked for.
    const result = await runCliCaptured(['wait', ID, '--no-download', '--timeout', '3'], {
      env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
      pause: async (ms) => {
        pauses.push(ms);
        vi.setSystemTime(Date.now() + ms);
      },
    }).finally(() => vi.useRealTimers());
    expect(result.code).toBe(8);
    expect(pauses.reduce((sum, ms) => sum + ms, 0)).toBeLessThanOrEqual(3_000);
  });
});
