/**
 * The event stream across replicas: a client follows a task on replica A while replica B does
 * the work, and the upstream is fast (the create's own answer says the task is done). A hears
 * of B's changes through PostgreSQL notifications and reads the task back; by the time it reads,
 * the task may already be terminal. The stream must still carry `processing` before the
 * terminal event (SPEC §1: one event per status change).
 */
import { describe, expect, it } from 'vitest';
import { endListeningConnections, postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';
import { openEventStream } from '../support/event-stream.js';

const available = await postgresAvailable();

const pinned = { model: 'kling-v3', prompt: 'one task, two replicas, one stream', duration: 5, routing: { providers: ['kling3api'] } };

const FAILED_AT_ONCE = {
  on: 'submit' as const,
  status: 200,
  body: { code: 200, message: 'success', data: { task_id: 'fast-task', status: 'FAILED', error_message: 'refused at once' } },
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!available)('event stream on one replica, changes on another', () => {
  const replicas = usePostgresReplicas({ providers: { kling3api: { max_in_flight: 1 } } });
  const { replica } = replicas;

  it('streams queued, processing and the terminal status, each once and in order', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const first = await b.create(pinned);
    expect(first.body.status).toBe('processing');
    const waiting = await b.create({ ...pinned, prompt: 'waits for the slot' });
    expect(waiting.body.status).toBe('queued');
    const stream = await openEventStream(a.url, waiting.body.id);
    expect((await stream.events(1)).map((e) => e.event)).toEqual(['queued']);

    replicas.simulators.get('kling3api')!.injectFault(FAILED_AT_ONCE);
    await b.finish(first.body.id);
    await b.finish(waiting.body.id);

    const events = await replicas.withClockRunning(stream.ended());
    expect(events.map((e) => e.event)).toEqual(['queued', 'processing', 'failed']);
    expect(events.map((e) => e.status)).toEqual(['queued', 'processing', 'failed']);
    const ids = events.map((e) => Number(e.id));
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('still streams processing when the task went through it while the notifications were lost', async () => {
    // One create per minute: the second task waits in the queue for the next allowance.
    const config = { providers: { kling3api: { max_in_flight: 10, rate_limits: [{ limit: 1, window_ms: 60_000 }] } } };
    const a = await replica('replica-a', config);
    const b = await replica('replica-b', config);
    expect((await b.create(pinned)).body.status).toBe('processing');
    const waiting = await b.create({ ...pinned, prompt: 'waits for the allowance' });
    expect(waiting.body.status).toBe('queued');
    const stream = await openEventStream(a.url, waiting.body.id);
    expect((await stream.events(1)).map((e) => e.event)).toEqual(['queued']);

    // A hears nothing for a moment: B's changes land meanwhile, and A reads the task again once
    // its listening connection is back.
    await endListeningConnections(a.gateway.notifications, b.gateway.notifications);
    while (a.gateway.notifications!.listening) await sleep(5);
    replicas.simulators.get('kling3api')!.injectFault(FAILED_AT_ONCE);
    await b.advance(65_000);
    expect((await b.get(waiting.body.id)).body.status).toBe('failed');

    const events = await replicas.withClockRunning(stream.ended());
    expect(events.map((e) => e.event)).toEqual(['queued', 'processing', 'failed']);
    expect(events.map((e) => e.status)).toEqual(['queued', 'processing', 'failed']);
    const ids = events.map((e) => Number(e.id));
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
