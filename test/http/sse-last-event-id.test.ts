/**
 * `GET /v1/videos/{id}/events` and `Last-Event-ID`. A standard SSE client (a browser's EventSource,
 * the `eventsource` package) reconnects whenever the stream ends, the normal close after the
 * terminal event included, and sends the id of the last event it read. The gateway must not send
 * again what that client already has: after a terminal event it answers `204` (which tells an
 * EventSource to stop reconnecting), and a reconnect to a task that did not change since sends
 * nothing until it does.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

const request = { model: 'kling-v3', prompt: 'a paper boat on a river', duration: 5 };

interface StreamEvent {
  id: string;
  event: string;
}

function eventsOf(text: string): StreamEvent[] {
  return [...text.matchAll(/^id: (\d+)\nevent: (\w+)$/gm)].map((match) => ({ id: match[1]!, event: match[2]! }));
}

/** A stream's text until it ends (or its connection drops), read as it arrives. */
async function textUntilEnd(response: Response): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for (const body = response.body!.getReader(); ; ) {
    const next = await body.read().catch(() => ({ done: true as const, value: undefined }));
    if (next.done) return text;
    text += decoder.decode(next.value);
  }
}

describe('event stream reconnects with Last-Event-ID', () => {
  let gw: TestGateway;
  beforeEach(async () => {
    gw = await startTestGateway();
  });
  afterEach(async () => {
    await gw.close();
  });

  const open = (id: string, lastEventId?: string, signal?: AbortSignal) =>
    fetch(`${gw.url}/v1/videos/${id}/events`, {
      headers: { authorization: `Bearer ${TENANT_KEY}`, ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}) },
      ...(signal ? { signal } : {}),
    });

  it('answers 204 to a client that already read the terminal event, and streams it to one that did not', async () => {
    const created = await gw.create(request);
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');

    const first = await open(created.body.id);
    const events = eventsOf(await first.text());
    expect(events.map((e) => e.event)).toEqual(['succeeded']);

    const reconnect = await open(created.body.id, events[0]!.id);
    expect(reconnect.status).toBe(204);
    expect(await reconnect.text()).toBe('');
    expect(reconnect.headers.get('x-request-id')).toBeTruthy();

    // An id from before the end: the terminal event is still news to that client.
    const behind = await open(created.body.id, '0');
    expect(behind.status).toBe(200);
    expect(eventsOf(await behind.text()).map((e) => e.event)).toEqual(['succeeded']);

    // Not a number: read as no id at all.
    const garbled = await open(created.body.id, 'yesterday');
    expect(eventsOf(await garbled.text()).map((e) => e.event)).toEqual(['succeeded']);
  });

  it('sends nothing again to a client that reconnects before the task changed, then the next change', async () => {
    const created = await gw.create(request);
    const id = created.body.id as string;
    const first = new AbortController();
    const firstStream = await open(id, undefined, first.signal);
    const reader = firstStream.body!.getReader();
    const chunk = await reader.read();
    const seen = eventsOf(new TextDecoder().decode(chunk.value));
    // Freepik took it into its queue.
    expect(seen.map((e) => e.event)).toEqual(['queued']);
    first.abort();

    const again = new AbortController();
    const resumed = await open(id, seen[0]!.id, again.signal);
    expect(resumed.status).toBe(200);
    const reading = textUntilEnd(resumed);
    await gw.finish(id);
    expect(eventsOf(await reading).map((e) => e.event)).toEqual(['processing', 'succeeded']);
  });
  it('sends nothing again to a client that reconnects after polls changed the task but not its status', async () => {
    await gw.close();
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { queued_ms: 120_000, processing_ms: 120_000 } } });
    const created = await gw.create(request);
    const id = created.body.id as string;
    const first = new AbortController();
    const reader = (await open(id, undefined, first.signal)).body!.getReader();
    const seen = eventsOf(new TextDecoder().decode((await reader.read()).value));
    expect(seen.map((e) => e.event)).toEqual(['queued']);
    first.abort();

    // The client is away while the gateway polls the job (bookkeeping writes, no news).
    const before = (await gw.gateway.store.getTask(id))!.version;
    for (let i = 0; i < 3; i++) await gw.advance(15_000);
    expect((await gw.gateway.store.getTask(id))!.version).toBeGreaterThan(before);
    expect((await gw.get(id)).body.status).toBe('queued');

    const again = new AbortController();
    const resumed = await open(id, seen[0]!.id, again.signal);
    expect(resumed.status).toBe(200);
    const reading = textUntilEnd(resumed);
    await gw.finish(id, 5_000);
    expect(eventsOf(await reading).map((e) => e.event)).toEqual(['processing', 'succeeded']);
  });
});
