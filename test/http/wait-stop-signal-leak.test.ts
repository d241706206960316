/**
 * Every `?wait=` and event stream is ended by a graceful stop (`TaskService.endWatches`), and
 * each one also ends when its own client goes away. Joining the two signals with
 * `AbortSignal.any` leaves an entry on the gateway-long stop signal for every watch, kept after
 * the watch ended: a gateway answering waits for days grew its heap by every one of them.
 */
import { afterEach, expect, it } from 'vitest';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

/** How many signals still hang on `signal` (Node keeps them in a set under this symbol). */
function dependantsOf(signal: AbortSignal): number {
  const key = Object.getOwnPropertySymbols(signal).find((symbol) => symbol.description === 'kDependantSignals');
  return key ? ((signal as unknown as Record<symbol, Set<unknown>>)[key]?.size ?? 0) : 0;
}

it('keeps nothing per ended ?wait= on the signal a stop ends watches with', async () => {
  gw = await startTestGateway();
  const created = await gw.create({ model: 'kling-v3', prompt: 'a lighthouse', duration: 5 });
  const id = created.body.id as string;
  await gw.finish(id);
  for (let i = 0; i < 20; i++) {
    const answer = await fetch(`${gw.url}/v1/videos/${id}?wait=5`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
    expect(answer.status).toBe(200);
  }
  const stopping = (gw.gateway.service as unknown as { stopping: AbortController }).stopping.signal;
  expect(dependantsOf(stopping)).toBe(0);
});
