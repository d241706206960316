/**
 * A cancel that reaches the provider (one that documents a cancel) is an upstream call made while
 * answering the caller's request: its log line carries that request's id with the task's, like
 * the create's, so the caller's `x-request-id` finds the call.
 */
import { afterAll, expect, it, vi } from 'vitest';
import type { VideoProvider } from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { reelhouseProvider } from '../fixtures/providers/reelhouse/index.js';
import { REELHOUSE_CREATE_PATH } from '../fixtures/providers/reelhouse/reelhouse-capabilities.js';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterAll(async () => {
  await gw?.close();
});

it("logs an upstream cancel with the cancel request's id and the task's", async () => {
  const cancellable: VideoProvider = {
    ...reelhouseProvider,
    // Asks the simulator about the task (it has no cancel of its own): a real call, logged as `cancel`.
    cancel: async (ref, context) => {
      await context.http.send({ method: 'GET', path: `${REELHOUSE_CREATE_PATH}/${encodeURIComponent(ref.providerTaskId)}`, operation: 'cancel' }, context.signal);
    },
  };
  const logs = capturedLogs();
  gw = await startTestGateway({ providers: [...PROVIDERS, cancellable], logTo: logs.sink });
  const created = await gw.create({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 10, routing: { providers: ['reelhouse'] } });
  expect(created.body.status).toBe('queued');
  const answer = await gw.request('POST', `/v1/videos/${created.body.id}/cancel`, undefined, { 'x-request-id': 'req-cancel-upstream' });
  expect(answer.status).toBe(200);
  const lines = () => logs.text().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, any>);
  await vi.waitFor(() => expect(lines().some((line) => line.request_id === 'req-cancel-upstream' && line.msg === 'request completed')).toBe(true), { timeout: 10_000 });
  const calls = lines().filter((line) => line.msg === 'upstream call' && line.upstream.operation === 'cancel');
  expect(calls).toHaveLength(1);
  expect(calls[0]).toMatchObject({ provider: 'reelhouse', task_id: created.body.id, request_id: 'req-cancel-upstream', outcome: 'ok', upstream: { status: 200 } });
});
