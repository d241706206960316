/**
 * A task whose deadline passes while a create is on its way to one provider, and that provider
 * then turns it down, is not sent on to the next provider: a task is never sent upstream after its
 * deadline (README, *Concurrency cap*). It fails with `timeout`, charged nothing, under the provider
 * tried last (no provider when none was sent it).
 */
import { afterEach, expect, it } from 'vitest';
import { heldCall } from '../support/held-call.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close().catch(() => undefined);
});

const request = { model: 'kling-v3', prompt: 'a deadline between two providers', duration: 5, routing: { providers: ['freepik', 'kling3api'] } };
const creates = (gw: TestGateway, provider: string) => gw.simulator(provider).requests.filter((r) => r.method === 'POST').length;

it('does not fail over to the next provider once the deadline passed during the first create', async () => {
  const gw = await startTestGateway({ config: { tasks: { deadline_ms: 1_000 } } });
  open.push(gw);
  // Freepik answers 503 (a refusal that moves the task on) 1.5 s after the create reached it: within its 2 s limit, past the task's 1 s deadline.
  const held = heldCall();
  gw.simulator('freepik').injectFault({ on: 'submit', kind: 'unavailable', status: 503, hold: held.hold });
  const pending = gw.create(request);
  await held.reached;
  await gw.clock.advance(1_500);
  held.release();
  const created = (await pending).body;
  expect(creates(gw, 'kling3api')).toBe(0);
  // Shown under the provider tried last, whose attempt says what it answered (README, *The Task*).
  expect(created).toMatchObject({ status: 'failed', provider: 'freepik', cost: { credits: 0 }, error: { code: 'timeout' } });
  expect(created.attempts).toEqual([expect.objectContaining({ provider: 'freepik', outcome: 'failed' })]);
  // No slot is left held for it.
  const providers = (await gw.request('GET', '/v1/providers')).body.data as { id: string; in_flight: number }[];
  expect(providers.map((provider) => provider.in_flight)).toEqual(providers.map(() => 0));
});

it('after a create in doubt (failover_on_timeout), a deadline passed meanwhile ends the task as that provider’s, not sent on', async () => {
  const gw = await startTestGateway({ config: { tasks: { deadline_ms: 1_000 }, routing: { failover_on_timeout: true } } });
  open.push(gw);
  // Kling3api first: it documents no lookup of a lost create, so nothing can clear the doubt.
  const held = heldCall();
  gw.simulator('kling3api').injectFault({ on: 'submit', hold: held.hold });
  const pending = gw.create({ ...request, routing: { providers: ['kling3api', 'freepik'] } });
  await held.reached;
  // Past its 2 s time limit: the create's answer is lost.
  await gw.clock.advance(2_500);
  const created = (await pending).body;
  held.release();
  expect(creates(gw, 'freepik')).toBe(0);
  expect(created).toMatchObject({ status: 'failed', error: { code: 'timeout' } });
  // Kling3api may hold it: the task is its, at its estimate, not a certain nothing.
  expect(created).toMatchObject({ provider: 'kling3api', cost: { credits: 400, estimated: true } });
  expect(created.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'ambiguous' })]);
});

it('does not send a task whose deadline passed while its create waited for the rate window', async () => {
  const gw = await startTestGateway({
    config: { tasks: { deadline_ms: 1_000 }, sandbox: { processing_ms: 600_000 }, providers: { kling3api: { rate_limits: [{ limit: 1, window_ms: 1_500 }] } } },
  });
  open.push(gw);
  const pinned = { ...request, routing: { providers: ['kling3api'] } };
  const first = (await gw.create(pinned)).body;
  expect(first.status).toBe('processing');
  // The window is full for 1.5 s: the second create waits for it (up to 2 s), past its 1 s deadline.
  let answered = false;
  const pending = gw.create(pinned).then((answer) => ((answered = true), answer));
  for (let step = 0; step < 30 && !answered; step++) {
    await new Promise((resolve) => setImmediate(resolve));
    await gw.clock.advance(100);
  }
  const second = (await pending).body;
  expect(creates(gw, 'kling3api')).toBe(1);
  // Sent nowhere: it shows no provider, as a task that timed out in the queue.
  expect(second).toMatchObject({ status: 'failed', provider: null, cost: { credits: 0 }, error: { code: 'timeout' } });
  expect(second.attempts).toEqual([]);
});

it('shows a task whose deadline passed while its next provider’s create waited for the rate window under the provider tried last, not that one', async () => {
  const gw = await startTestGateway({
    config: { tasks: { deadline_ms: 1_000 }, sandbox: { processing_ms: 600_000 }, providers: { kling3api: { rate_limits: [{ limit: 1, window_ms: 1_500 }] } } },
  });
  open.push(gw);
  expect((await gw.create({ ...request, routing: { providers: ['kling3api'] } })).body.status).toBe('processing');
  // Freepik turns the create down at once; kling3api's window is full for 1.5 s, past the task's 1 s deadline.
  gw.simulator('freepik').injectFault({ on: 'submit', kind: 'unavailable', status: 503 });
  let answered = false;
  const pending = gw.create(request).then((answer) => ((answered = true), answer));
  for (let step = 0; step < 30 && !answered; step++) {
    await new Promise((resolve) => setImmediate(resolve));
    await gw.clock.advance(100);
  }
  const created = (await pending).body;
  expect(creates(gw, 'kling3api')).toBe(1);
  expect(created).toMatchObject({ status: 'failed', provider: 'freepik', cost: { credits: 0 }, error: { code: 'timeout' } });
  expect(created.attempts).toEqual([expect.objectContaining({ provider: 'freepik', outcome: 'failed' })]);
  // No slot is left held for it: kling3api's one is the first task's.
  const providers = (await gw.request('GET', '/v1/providers')).body.data as { id: string; in_flight: number }[];
  expect(Object.fromEntries(providers.map((provider) => [provider.id, provider.in_flight]))).toMatchObject({ freepik: 0, kling3api: 1 });
});

it('shows no provider for a task whose deadline passed in the rate wait after a provider skipped for its open circuit (never sent it)', async () => {
  const gw = await startTestGateway({
    config: {
      tasks: { deadline_ms: 1_000 },
      sandbox: { processing_ms: 600_000 },
      providers: { freepik: { circuit_breaker: { consecutive_failures: 1 } }, kling3api: { rate_limits: [{ limit: 1, window_ms: 1_500 }] } },
    },
  });
  open.push(gw);
  // Freepik's one failed create opens its circuit.
  gw.simulator('freepik').injectFault({ on: 'submit', kind: 'unavailable', status: 503 });
  expect((await gw.create({ ...request, routing: { providers: ['freepik'] } })).body.status).toBe('failed');
  expect((await gw.create({ ...request, routing: { providers: ['kling3api'] } })).body.status).toBe('processing');
  // Freepik is passed over unasked (circuit open); kling3api's window is full past the task's 1 s deadline.
  let answered = false;
  const pending = gw.create(request).then((answer) => ((answered = true), answer));
  for (let step = 0; step < 30 && !answered; step++) {
    await new Promise((resolve) => setImmediate(resolve));
    await gw.clock.advance(100);
  }
  const created = (await pending).body;
  expect(creates(gw, 'freepik')).toBe(1);
  expect(creates(gw, 'kling3api')).toBe(1);
  // Sent nowhere: no provider is shown, not the one skipped unasked.
  expect(created).toMatchObject({ status: 'failed', provider: null, cost: { credits: 0 }, error: { code: 'timeout' } });
});
