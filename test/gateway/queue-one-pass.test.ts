/**
 * A dispatch pass sends every task of the queue it may send, eight at a time side by side
 * (`DISPATCH_CONCURRENCY`), batch after batch: a task behind the first eight does not wait for
 * the next pass (the worker's next tick, or the next freed slot).
 */
import { afterEach, expect, it } from 'vitest';
import { DISPATCH_CONCURRENCY } from '../../src/core/tasks/dispatcher.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

it('one pass sends the whole queue once its provider takes tasks again, not only the first batch', async () => {
  gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 100, rate_limits: [] } } } });
  const kling3api = gw.simulator('kling3api');
  const creates = () => kling3api.requests.filter((request) => request.method === 'POST').length;
  // kling3api asks for a pause: every task waits in line for it.
  kling3api.injectFault({ on: 'submit', status: 429, headers: { 'retry-after': '10' } });
  const waiting = 3 * DISPATCH_CONCURRENCY + 1;
  const ids: string[] = [];
  for (let n = 0; n < waiting; n++) {
    const created = await gw.create({ model: 'kling-v3', prompt: `waiting ${n}`, duration: 5, routing: { providers: ['kling3api'] } });
    expect(created.body.status).toBe('queued');
    ids.push(created.body.id);
  }
  expect(creates()).toBe(1);

  // The pause is over: one pass (no clock moved during it) sends them all.
  await gw.clock.advance(11_000);
  await gw.gateway.runOnce();
  expect(creates()).toBe(1 + waiting);
  for (const id of ids) expect((await gw.get(id)).body).toMatchObject({ provider: 'kling3api', provider_task_id: expect.any(String) });
}, 30_000);
