/**
 * `GET /v1/videos/{id}/events` sends one event per status change (SPEC §1), even when the
 * upstream is fast: a task that turns `processing` and then terminal back to back (the create's
 * own answer says it is done) is streamed `processing` before its terminal event.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { openEventStream } from '../support/event-stream.js';

const pinned = { model: 'kling-v3', prompt: 'a kite over the dunes', duration: 5, routing: { providers: ['kling3api'] } };

/** The next create answered as already failed: the task turns processing, then failed, at once. */
const FAILED_AT_ONCE = {
  on: 'submit' as const,
  status: 200,
  body: { code: 200, message: 'success', data: { task_id: 'fast-task', status: 'FAILED', error_message: 'refused at once' } },
};

describe('event stream of a task on a fast upstream', () => {
  let gw: TestGateway;
  beforeEach(async () => {
    gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 1 } } } });
  });
  afterEach(async () => {
    await gw.close();
  });

  it('streams queued, processing and the terminal status, each once and in order', async () => {
    const first = await gw.create(pinned);
    expect(first.body.status).toBe('processing');
    const waiting = await gw.create({ ...pinned, prompt: 'waits for the slot' });
    expect(waiting.body.status).toBe('queued');
    const stream = await openEventStream(gw.url, waiting.body.id);
    expect((await stream.events(1)).map((e) => e.event)).toEqual(['queued']);

    gw.simulators.get('kling3api')!.injectFault(FAILED_AT_ONCE);
    await gw.finish(first.body.id);
    await gw.finish(waiting.body.id);

    const events = await stream.ended();
    expect(events.map((e) => e.event)).toEqual(['queued', 'processing', 'failed']);
    expect(events.map((e) => e.status)).toEqual(['queued', 'processing', 'failed']);
    const ids = events.map((e) => Number(e.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('sends only the terminal event to a stream opened on a finished task', async () => {
    const created = await gw.create(pinned);
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    const stream = await openEventStream(gw.url, created.body.id);
    expect((await stream.ended()).map((e) => e.event)).toEqual(['succeeded']);
  });
});
