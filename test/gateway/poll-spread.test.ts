/**
 * Polls are spread with jitter, so tasks started together do not ask the upstream in the same
 * tick (SPEC §4), also when their polls had to wait: after a 429's Retry-After, the postponed polls
 * come back spread rather than all at the moment the cool-down ends. Judged from the status
 * requests the simulator received, on the gateway's clock, with a seeded random source.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

/** A seeded, evenly spread random source (a linear congruential generator), so the test is repeatable. */
function seededRandom(seed = 42): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

/** The most requests the upstream received at one instant. */
function mostAtOnce(times: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const at of times) counts.set(at, (counts.get(at) ?? 0) + 1);
  return Math.max(0, ...counts.values());
}

const toKling3api = { model: 'kling-v3', prompt: 'a slow tide', duration: 5, routing: { providers: ['kling3api'] } };

it("spreads the polls a 429's Retry-After postponed, instead of sending them all the moment it ends", async () => {
  gw = await startTestGateway({
    random: seededRandom(),
    config: { tracking: { poll_jitter: 0.2 }, providers: { kling3api: { max_in_flight: 100 } }, sandbox: { processing_ms: 600_000 } },
  });
  for (let i = 0; i < 20; i++) {
    expect((await gw.create({ ...toKling3api, prompt: `a slow tide ${i}` })).body.status).toBe('processing');
    await gw.advance(700);
  }
  for (let second = 0; second < 50; second++) await gw.advance(1_000);
  const upstream = gw.simulator('kling3api');
  upstream.injectFault({ on: 'status', kind: 'rate_limited', status: 429, headers: { 'retry-after': '20' } });
  const from = upstream.requests.length;
  for (let step = 0; step < 60; step++) await gw.advance(500);
  const polls = upstream.requests.slice(from).filter((request) => request.path === '/api/status');
  const refusedAt = polls[0]!.at;
  const afterCoolDown = polls.slice(1).map((request) => request.at);
  // Every task was polled again, none before the Retry-After passed …
  expect(afterCoolDown.length).toBeGreaterThanOrEqual(20);
  expect(Math.min(...afterCoolDown)).toBeGreaterThanOrEqual(refusedAt + 20_000);
  // … and not all in one tick.
  expect(mostAtOnce(afterCoolDown)).toBeLessThanOrEqual(5);
});
