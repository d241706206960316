/**
 * What the CLI answers for a task that ended without a video, for a key the gateway forbids, for
 * `--no-download` and for `--request-timeout 0`, as README's CLI section promises: `generate`,
 * `wait` exit 6 for a video that ended failed or canceled; 4 for a refused key (401 and 403);
 * `--no-download` saves nothing; `--request-timeout` 0 is "no limit", not an error.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { succeededTask } from '../support/fake-task-gateway.js';
import { loopbackServer } from '../support/raw-answer.js';

const KEY = 'test-key-123';

describe('kling-gateway exit status of tasks that ended without a video, and of a forbidden key', () => {
  let server: { base: string; close: () => Promise<void> };
  /** Paths of the output files the stand-in was asked for. */
  const fileReads: string[] = [];
  /** The Idempotency-Key of each create sent. */
  const creates: string[] = [];

  const canceled = (base: string, id: string) => ({ ...succeededTask(base, id), status: 'canceled', outputs: [], completed_at: '2026-01-01T00:00:01.000Z', provider: null, provider_task_id: null, provider_status: null });

  beforeAll(async () => {
    server = await loopbackServer((req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '').split('?')[0]!;
      const json = (status: number, body: unknown, type = 'application/json') => res.writeHead(status, { 'content-type': type }).end(JSON.stringify(body));
      if (path.startsWith('/files/')) {
        fileReads.push(path);
        res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': 5 }).end('bytes');
        return;
      }
      if (path === '/v1/videos/vid_forbidden') {
        json(403, { type: 'about:blank', title: 'Forbidden', status: 403, detail: 'this key may not read that task' }, 'application/problem+json');
        return;
      }
      // A create sent again with the key of a task canceled since: the gateway answers that task.
      if (req.method === 'POST' && path === '/v1/videos') {
        req.resume();
        const key = String(req.headers['idempotency-key']);
        creates.push(key);
        // The first send of this key finds the gateway stopping: 503 with Retry-After 30.
        if (key === 'retry-after-30' && creates.filter((sent) => sent === key).length === 1) {
          req.on('end', () => res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '30' }).end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503 })));
          return;
        }
        req.on('end', () => json(200, canceled(server.base, 'vid_canceled')));
        return;
      }
      if (req.method === 'GET' && path === '/v1/videos') {
        json(200, { object: 'list', data: [], next_cursor: null });
        return;
      }
      if (path.startsWith('/v1/videos/vid_canceled')) {
        json(200, canceled(server.base, 'vid_canceled'));
        return;
      }
      if (path.startsWith('/v1/videos/vid_done')) {
        json(200, succeededTask(server.base, 'vid_done'));
        return;
      }
      json(404, { type: 'about:blank', title: 'Not found', status: 404 }, 'application/problem+json');
    });
  });

  afterAll(async () => {
    await server?.close();
  });

  /** The pauses the CLI took, in ms (none is really waited). */
  const pauses: number[] = [];
  const run = (args: string[], env: Record<string, string> = {}) =>
    runCliCaptured(args, { env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: KEY, ...env }, pause: async (ms) => void pauses.push(ms) });

  it('a key the gateway answers 403 exits 4 (the key), not 3 (the request)', async () => {
    const result = await run(['get', 'vid_forbidden']);
    expect([result.code, result.stderr]).toEqual([4, expect.stringContaining('Forbidden (403)')]);
  });

  it('wait of a canceled task exits 6 and says so, saving nothing', async () => {
    const result = await run(['wait', 'vid_canceled']);
    expect(result.code).toBe(6);
    expect(result.stderr).toContain('video vid_canceled canceled');
    expect(result.stdout).not.toContain('saved');
  });

  it('generate answered with a task canceled since (its Idempotency-Key reused) exits 6, as README says of generate', async () => {
    const result = await run(['generate', 'a fox', '--model', 'kling-v3', '--idempotency-key', 'order-42']);
    expect(result.stdout).toContain('vid_canceled  canceled');
    expect(result.code).toBe(6);
  });

  it('wait --no-download of a succeeded task shows it, exits 0 and fetches no file', async () => {
    fileReads.length = 0;
    const result = await run(['wait', 'vid_done', '--no-download']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('vid_done  succeeded');
    expect(result.stdout).not.toContain('saved');
    expect(fileReads).toEqual([]);
  });

  it('--request-timeout 0 (and KLING_GATEWAY_REQUEST_TIMEOUT=0) means no limit, not a command-line error', async () => {
    const flag = await run(['--request-timeout', '0', 'get', 'vid_done']);
    expect([flag.code, flag.stderr]).toEqual([0, '']);
    const env = await run(['get', 'vid_done'], { KLING_GATEWAY_REQUEST_TIMEOUT: '0' });
    expect([env.code, env.stderr]).toEqual([0, '']);
  });

  it('--timeout takes a positive number of seconds: 0 or less is a command-line error (2), not a wait without end', async () => {
    for (const value of ['0', '-1']) {
      const result = await run(['wait', 'vid_done', '--no-download', `--timeout=${value}`]);
      expect([value, result.code, result.stderr]).toEqual([value, 2, expect.stringContaining('not a positive number of seconds')]);
    }
  });

  it('the largest values README allows are taken: get --wait 60 and list --limit 100', async () => {
    const got = await run(['get', 'vid_done', '--wait', '60']);
    expect([got.code, got.stderr]).toEqual([0, '']);
    const listed = await run(['list', '--limit', '100']);
    expect([listed.code, listed.stdout]).toEqual([0, 'no tasks\n']);
    const over = await run(['get', 'vid_done', '--wait', '61']);
    expect([over.code, over.stderr]).toEqual([2, expect.stringContaining('at most 60')]);
  });

  it('--idempotency-key of 255 characters is sent; one of 256 exits 2 before anything is sent', async () => {
    creates.length = 0;
    const longest = 'k'.repeat(255);
    const taken = await run(['generate', 'a fox', '--model', 'kling-v3', '--idempotency-key', longest]);
    expect(creates).toEqual([longest]);
    expect(taken.stdout).toContain('vid_canceled');
    const over = await run(['generate', 'a fox', '--model', 'kling-v3', '--idempotency-key', `${longest}k`]);
    expect([over.code, over.stderr]).toEqual([2, expect.stringContaining('is 256 characters; at most 255')]);
    expect(creates).toEqual([longest]);
  });

  it("a create answered 503 with Retry-After: 30 is sent again after 30 s with the same key (only a Retry-After over 30 s is left to the user)", async () => {
    creates.length = 0;
    pauses.length = 0;
    const result = await run(['generate', 'a fox', '--model', 'kling-v3', '--idempotency-key', 'retry-after-30']);
    expect(creates).toEqual(['retry-after-30', 'retry-after-30']);
    expect(pauses).toEqual([30_000]);
    expect(result.stdout).toContain('vid_canceled');
  });
});
