/**
 * A provider slot freed in this process lets a queued task go at once: the task that ends wakes
 * the dispatcher, instead of the queued one waiting for the next dispatch tick (`tracking.tick_ms`).
 */
import { afterEach, expect, it, vi } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const pinned = { model: 'kling-v3', prompt: 'one at a time', duration: 5, routing: { providers: ['kling3api'] } };

it('submits the queued task as soon as the task holding the only slot ends, without another tick', async () => {
  gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 1 } } } });
  const first = await gw.create(pinned);
  expect(first.body.status).toBe('processing');
  const second = await gw.create(pinned);
  expect(second.body.status).toBe('queued');

  // Moves the clock only until the first task has ended (its slot freed in that step, after the step's dispatch pass).
  expect((await gw.finish(first.body.id)).status).toBe('succeeded');
  // The pass the freed slot started, if any; the clock stays where it is.
  await gw.gateway.dispatcher.idle();
  expect((await gw.get(second.body.id)).body.status).toBe('processing');
  expect(gw.simulator('kling3api').tasks).toHaveLength(2);
});

it('costs a freed slot one probe of the queue and no dispatch pass when no task waits', async () => {
  gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 1 } } } });
  const first = await gw.create(pinned);
  expect(first.body.status).toBe('processing');
  const passes = vi.spyOn(gw.gateway.store, 'listDispatchable');
  const probes = vi.spyOn(gw.gateway.store, 'anyQueued');

  // What each task's end in this process asks: nothing waits, so no pass (recovery's scans, the queue's page).
  await gw.gateway.dispatcher.slotFreed();
  expect(probes).toHaveBeenCalledTimes(1);
  expect(passes).not.toHaveBeenCalled();

  // With a task waiting, the same call is a pass.
  const second = await gw.create(pinned);
  expect(second.body.status).toBe('queued');
  await gw.gateway.dispatcher.slotFreed();
  expect(passes).toHaveBeenCalled();
});

it("holds the dispatcher's idle (what a stop waits for before closing the store) until a freed slot's probe of the queue has its answer", async () => {
  gw = await startTestGateway();
  let answer!: (queued: boolean) => void;
  vi.spyOn(gw.gateway.store, 'anyQueued').mockReturnValueOnce(new Promise<boolean>((resolve) => (answer = resolve)));
  const probe = gw.gateway.dispatcher.slotFreed();
  let idle = false;
  const waited = gw.gateway.dispatcher.idle().then(() => (idle = true));
  await new Promise((resolve) => setImmediate(resolve));
  expect(idle).toBe(false);
  answer(false);
  await Promise.all([probe, waited]);
  expect(idle).toBe(true);
});
