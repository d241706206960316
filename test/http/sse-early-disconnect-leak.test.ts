/**
 * video-routes.ts `/events` registers `req.on('close', close)` only after its first awaits. A
 * client that goes away while the handler is still reading the task is never noticed: the
 * subscription, the 2-second store re-check loop and the heartbeat interval stay until the task
 * ends (up to the 30-minute deadline), each re-check reading the store.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const request = { model: 'kling-v3', prompt: 'a long one', duration: 5, routing: { providers: ['kling3api'] } };

// Regression (review): an SSE client that disconnects during the handler's first store read leaks a task listener, a re-check timer loop and a heartbeat until the task is terminal.
it('releases the stream when the client disconnects while the stream is being opened', async () => {
  gw = await startTestGateway({ config: { sandbox: { processing_ms: 600_000 } } });
  const created = await gw.create(request);
  const id = created.body.id as string;

  const client = new AbortController();
  const store = gw.gateway.store;
  const getAttempts = store.getAttempts.bind(store);
  let armed = true;
  store.getAttempts = async (taskId: string) => {
    if (armed && taskId === id) {
      armed = false;
      // The client gives up while the handler waits on the store.
      client.abort();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return getAttempts(taskId);
  };
  await fetch(`${gw.url}/v1/videos/${id}/events`, {
    headers: { authorization: `Bearer ${TENANT_KEY}` },
    signal: client.signal,
  }).catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 200));
  for (let i = 0; i < 3; i++) await gw.advance(2_000);

  const emitter = (gw.gateway.engine.events as unknown as { emitter: { listenerCount(name: string): number } }).emitter;
  // The handler lets go once its slow read is over, which on a loaded machine may be after the
  // steps above; a stream that was never noticed gone keeps its subscription (the clock no longer
  // moves, so nothing else ends it).
  await vi.waitFor(() => expect(emitter.listenerCount(id)).toBe(0), { timeout: 5_000, interval: 20 });
});
