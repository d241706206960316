/**
 * A task's deadline can pass while one of its creates is on its way: the provider that then turns
 * it down (a 503, a full account) moves it on to the next provider, or the next account of the
 * same provider; or it can pass while the create waits for a rate allowance. That create would
 * start a video the gateway has already given up on, billed and tracked by nobody who waits for
 * it: the task fails with `timeout` instead, sent nowhere else.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { heldCall, type HeldCall } from '../support/held-call.js';
import { MultiKeyKling3api } from '../support/multi-key-upstream.js';

let gw: TestGateway | undefined;
let held: HeldCall | undefined;
afterEach(async () => {
  held?.release();
  await gw?.close();
  gw = undefined;
  held = undefined;
});

const creates = (gateway: TestGateway, provider: string) => gateway.simulator(provider).requests.filter((request) => request.method === 'POST').length;

it('fails with timeout, rather than sends to the next provider, a task whose deadline passed while the first provider had its create', async () => {
  // The deadline (5 s) is shorter than freepik's time limit (30 s): freepik answers after it passed.
  gw = await startTestGateway({ config: { tasks: { deadline_ms: 5_000 }, providers: { freepik: { timeout_ms: 30_000 } } } });
  held = heldCall();
  gw.simulator('freepik').injectFault({ on: 'submit', status: 503, hold: held.hold });
  const creating = gw.create({ model: 'kling-v3', prompt: 'answered after its deadline', duration: 5 });
  await held.reached;
  await gw.clock.advance(6_000);
  held.release();
  const answer = await creating;
  expect(answer.body).toMatchObject({ status: 'failed', error: { code: 'timeout' }, cost: { credits: 0, estimated: false } });
  expect(answer.body.attempts.map((attempt: { provider: string }) => attempt.provider)).toEqual(['freepik']);
  // Shown under the provider that had its create, not one never asked.
  expect(answer.body.provider).toBe('freepik');
  await gw.advance(2_000);
  expect(creates(gw, 'kling3api')).toBe(0);
  expect((await gw.get(answer.body.id)).body.status).toBe('failed');
});

it("fails with timeout, rather than sends through the provider's next account, a task whose deadline passed while the first account had its create", async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const keys = { east: 'key-east-0001', west: 'key-west-0002' };
  const upstream = await MultiKeyKling3api.start(clock, Object.values(keys));
  try {
    const accounts = Object.entries(keys).map(([id, key]) => ({ id, api_key: key, max_in_flight: 5 }));
    gw = await startTestGateway({
      clock,
      config: { tasks: { deadline_ms: 5_000 }, providers: { kling3api: { base_url: upstream.url, accounts, timeout_ms: 30_000 } } },
    });
    held = heldCall();
    // The first account is out of credits (402: the next account may have some), and says so after the deadline.
    upstream.simulator.injectFault({ on: 'submit', kind: 'insufficient_credits', status: 402, hold: held.hold });
    const creating = gw.create({ model: 'kling-v3', prompt: 'answered after its deadline', duration: 5, routing: { providers: ['kling3api'] } });
    await held.reached;
    await clock.advance(6_000);
    held.release();
    const answer = await creating;
    expect(answer.body).toMatchObject({ status: 'failed', error: { code: 'timeout' }, cost: { credits: 0, estimated: false } });
    expect(answer.body.attempts).toHaveLength(1);
    await gw.advance(2_000);
    expect(upstream.simulator.requests.filter((request) => request.method === 'POST')).toHaveLength(1);
    expect([...upstream.created.values()].flat()).toEqual([]);
  } finally {
    held?.release();
    await gw?.close();
    gw = undefined;
    await upstream.close();
  }
});

it('fails with timeout, rather than sends, a task whose deadline passed while its create waited for a rate allowance', async () => {
  // One create a second: the first takes the allowance, the second waits for the window, which has
  // room again only when its deadline (1 s) has passed.
  const pinned = { model: 'kling-v3', prompt: 'waits for the window', duration: 5, routing: { providers: ['kling3api'] } };
  gw = await startTestGateway({
    config: { tasks: { deadline_ms: 1_000 }, providers: { kling3api: { rate_limits: [{ limit: 1, window_ms: 1_000 }, { limit: 2, window_ms: 60_000 }] } } },
  });
  const gateway = gw;
  expect((await gateway.create({ ...pinned, prompt: 'takes the allowance' })).body.status).toBe('processing');
  const creating = gateway.create(pinned);
  await gateway.advance(2_000);
  const answer = (await creating).body;
  expect(answer).toMatchObject({ status: 'failed', error: { code: 'timeout' }, cost: { credits: 0, estimated: false }, attempts: [] });
  expect(creates(gateway, 'kling3api')).toBe(1);
});
