/**
 * With `WORKERS`, a worker counts a tenant's creates of the minute by asking the primary
 * (rate-limiter-flexible's `RateLimiterCluster`), which gives up after 5 s without an answer. A
 * primary that busy (a burst of creates on a loaded machine, a stop under way) made a create
 * answer 500 "Something went wrong": nothing was made, and the same create sent again shortly
 * would go through, which is a 503 with Retry-After, as when the database cannot be reached.
 */
import express from 'express';
import { fork } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { problemHandler } from '../../src/http/middleware.js';
import { createRateLimit, type CreateLimiter } from '../../src/http/tenant-limits.js';
import { storeTrouble } from '../../src/store/database.js';

const LIMITS = { creates_per_minute: 10, open_streams: 1, open_waits: 1 };

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

/** The create route behind `createRateLimit` with `limiter`; resolves with its URL. */
async function createRoute(limiter: CreateLimiter): Promise<string> {
  const app = express();
  app.use((req, _res, next) => {
    req.tenant = 'acme';
    next();
  });
  app.post('/v1/videos', createRateLimit(limiter, () => LIMITS), (_req, res) => {
    res.status(202).json({ id: 'vid_made' });
  });
  app.use(problemHandler(createLogger('silent'), storeTrouble));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  close = () => new Promise((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

it('answers 503 with Retry-After, not 500, when the primary counting the creates does not answer in time', async () => {
  const url = await createRoute({
    // As the store's limiter rejects when the primary (RateLimiterCluster) gave up waiting.
    take: async () => {
      throw Object.assign(new Error('the count of acme was not answered in time', { cause: new Error('RateLimiterCluster timeout: no answer from master in time') }), { unanswered: true });
    },
    giveBack: async () => undefined,
  });
  const answer = await fetch(`${url}/v1/videos`, { method: 'POST' });
  const body = (await answer.json()) as { status: number; detail: string };
  expect(answer.status).toBe(503);
  expect(answer.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
  expect(body).toMatchObject({ status: 503 });
  expect(body.detail).toMatch(/send the create again/i);
});

it('still answers 500 for any other failure of the count', async () => {
  const url = await createRoute({
    take: async () => {
      throw new Error('a bug');
    },
    giveBack: async () => undefined,
  });
  expect((await fetch(`${url}/v1/videos`, { method: 'POST' })).status).toBe(500);
});

it('still lets a create through, and refuses one past the limit with 429, when the count answers', async () => {
  let taken = 0;
  const url = await createRoute({
    take: async () => (++taken <= 1 ? { allowed: true, countedUntil: Date.now() + 60_000 } : { allowed: false, retryAfterMs: 30_000 }),
    giveBack: async () => undefined,
  });
  expect((await fetch(`${url}/v1/videos`, { method: 'POST' })).status).toBe(202);
  const refused = await fetch(`${url}/v1/videos`, { method: 'POST' });
  expect(refused.status).toBe(429);
  expect(refused.headers.get('retry-after')).toBe('30');
});

it("says a count the primary never answered is unanswered, after the limiter's 5 s", { timeout: 30_000 }, async () => {
  const worker = fork(fileURLToPath(new URL('../fixtures/unanswered-create-count.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    // Its requests to the primary (this process) go unanswered; only its verdict is read.
    const verdict = await new Promise<Record<string, unknown>>((resolve) => {
      worker.on('message', (message: Record<string, unknown>) => {
        if ('outcome' in message) resolve(message);
      });
    });
    expect(verdict).toMatchObject({ outcome: 'rejected', unanswered: true, message: 'the count of acme was not answered in time' });
  } finally {
    worker.kill('SIGKILL');
  }
});
