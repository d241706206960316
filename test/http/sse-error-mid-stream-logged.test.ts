/**
 * An event stream that fails after its first event (the database read of the next event fails:
 * a failover, a disk error) can no longer be answered with a problem, as its `200` and events are
 * out. It is ended, so the client reconnects (an EventSource does), but the failure must be
 * logged: before, it was dropped without a word, and the stream's only log line was its
 * `request completed` at `info`, status 200 — an operator saw streams end early and nothing why.
 */
import { afterEach, expect, it } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { openEventStream } from '../support/event-stream.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const pinned = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5, routing: { providers: ['kling3api'] } };

it('logs the error that cut an event stream after its first event, under the stream request id', { timeout: 20_000 }, async () => {
  const logs = capturedLogs();
  gw = await startTestGateway({ logTo: logs.sink, config: { providers: { kling3api: { max_in_flight: 1 } } } });
  expect((await gw.create(pinned)).body.status).toBe('processing');
  // Waits at the gateway for the only slot: it can be canceled.
  const queued = await gw.create({ ...pinned, prompt: 'waits for the slot' });
  expect(queued.body.status).toBe('queued');
  const stream = await openEventStream(gw.url, queued.body.id);
  expect(stream.status).toBe(200);
  expect((await stream.events(1)).map((event) => event.event)).toEqual(['queued']);
  const streamRequestId = stream.headers.get('x-request-id');
  expect(streamRequestId).toBeTruthy();

  // Once the task is canceled, every read of its attempts fails, as a database gone away would.
  const store = gw.gateway.store;
  const getAttempts = store.getAttempts.bind(store);
  store.getAttempts = async (taskId: string) => {
    if (taskId === queued.body.id && (await gw!.gateway.engine.tasks.get(taskId))?.status === 'canceled') {
      throw new Error('attempts read failed (database gone)');
    }
    return getAttempts(taskId);
  };
  // The cancel is written (its own answer fails to read the attempts back: a 5xx of its own).
  await gw.request('POST', `/v1/videos/${queued.body.id}/cancel`);

  // The stream ends without its canceled event: it could not be read.
  expect((await stream.ended()).map((event) => event.event)).toEqual(['queued']);
  const lines = logs
    .text()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { level: string; request_id?: string; err?: { message?: string }; msg: string });
  const logged = lines.filter((line) => line.request_id === streamRequestId && line.err?.message === 'attempts read failed (database gone)');
  expect(logged).toEqual([expect.objectContaining({ level: 'error' })]);
});
