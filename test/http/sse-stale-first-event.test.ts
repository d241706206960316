/**
 * video-routes.ts `/events`: the first event sends the Task read by `service.get(...)` but labels
 * it with the version of a *second*, later read (`firstRow?.version`). When the task changes in
 * between, the stale status goes out under the new version, and the real change (same version)
 * is then dropped by `version <= lastVersion` forever: the stream never sends the terminal event
 * and never closes.
 */
import { afterEach, expect, it } from 'vitest';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const request = { model: 'kling-v3', prompt: 'a comet', duration: 5, routing: { providers: ['kling3api'] } };

// Regression (review): a status change landing between the SSE handler's two reads is never streamed; the stream stays open on a stale status after the task is terminal.
it('streams the terminal event when the task finishes while the stream is being opened', async () => {
  gw = await startTestGateway();
  const created = await gw.create(request);
  const id = created.body.id as string;
  // The upstream job is done; no worker pass has run yet.
  await gw.clock.advance(6_000);

  // A worker pass (poll → succeeded) lands while the SSE handler is between its reads: here,
  // while `service.get` loads the attempts.
  const store = gw.gateway.store;
  const getAttempts = store.getAttempts.bind(store);
  let armed = true;
  store.getAttempts = async (taskId: string) => {
    if (armed && taskId === id) {
      armed = false;
      await gw.gateway.runOnce();
    }
    return getAttempts(taskId);
  };

  const client = new AbortController();
  const response = await fetch(`${gw.url}/v1/videos/${id}/events`, {
    headers: { authorization: `Bearer ${TENANT_KEY}` },
    signal: client.signal,
  });
  expect((await gw.get(id)).body.status).toBe('succeeded');

  let text = '';
  const reading = (async () => {
    const reader = response.body!.getReader();
    for (;;) {
      const chunk = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
  })();
  // Plenty of time for the stream's own 2 s store re-checks.
  for (let i = 0; i < 5; i++) await gw.advance(2_000);
  // The stream closes once it has sent the terminal event: asked until the bytes are in.
  const eventsSoFar = () => [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
  await expect.poll(() => eventsSoFar().at(-1), { timeout: 5_000 }).toBe('succeeded');
  const events = eventsSoFar();
  client.abort();
  await reading;

  expect(events.at(-1)).toBe('succeeded');
});
