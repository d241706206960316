/**
 * A stand-in gateway for the CLI's download tests: it answers every `GET /v1/videos/{id}` with
 * the task the test gives (and a create, `POST /v1/videos`, with that task, as if it ended at
 * once), and serves that task's output bytes at `/files/out.mp4`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { loopbackServer } from './raw-answer.js';

/** The bytes of every output the stand-in serves. */
export const VIDEO_BYTES = Buffer.from('not really a video, but bytes all the same');

/**
 * A succeeded task with `outputs` outputs, each the stand-in's `/files/out.mp4`, not stored by the
 * gateway (so the CLI fetches the output's own URL).
 */
export function succeededTask(base: string, id: string, outputs = 1): Record<string, unknown> {
  return {
    id,
    object: 'video',
    status: 'succeeded',
    model: 'kling-v3',
    quality: 'pro',
    operation: 'text-to-video',
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:05.000Z',
    completed_at: '2026-01-01T00:00:05.000Z',
    provider: 'freepik',
    provider_task_id: 'up-1',
    provider_status: 'COMPLETED',
    outputs: Array.from({ length: outputs }, () => ({ type: 'video', url: `${base}/files/out.mp4`, duration: 5, storage: 'passthrough' })),
    error: null,
    cost: { credits: 1, estimated: false, currency_amount: 0.01, currency: 'USD' },
    attempts: [],
    warnings: [],
    metadata: {},
    request: { model: 'kling-v3', prompt: 'x' },
  };
}

/** Starts the stand-in; `task` is asked for the answer of each task read, and each output serves `bytes`. */
export function fakeTaskGateway(task: (base: string) => unknown, bytes: Buffer = VIDEO_BYTES): Promise<{ base: string; close: () => Promise<void> }> {
  let base = '';
  const started = loopbackServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (path === '/files/out.mp4') {
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': bytes.length }).end(bytes);
      return;
    }
    if (req.method === 'POST' && path === '/v1/videos') {
      req.resume().on('end', () => res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(task(base))));
      return;
    }
    if (path.startsWith('/v1/videos/')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(task(base)));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404 }));
  });
  return started.then((server) => {
    base = server.base;
    return server;
  });
}
