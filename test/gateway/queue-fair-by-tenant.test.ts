/**
 * The queue is fair between tenants (README, Concurrency cap): a freed slot goes to the oldest
 * waiting task of the tenant with the fewest tasks in flight on that task's provider, between
 * tenants with as many to the one whose last turn there is oldest. It used to
 * be fair by age alone, so one tenant's burst held every other tenant's later task behind all of
 * it for that provider.
 */
import { afterEach, expect, it } from 'vitest';
import { OTHER_TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const base = { model: 'kling-v3', duration: 5 };
const to = (...providers: string[]) => ({ routing: { providers } });

/** The prompts a provider's simulator received, in order. */
const promptsAt = (gateway: TestGateway, provider: string) =>
  gateway.simulator(provider).tasks.map((task) => (task.body as { prompt: string }).prompt);

/** Creates a task as tenant `acme` or `other`, a millisecond after the one before (the queue's order within a tenant is by creation time). */
async function createAs(gateway: TestGateway, tenant: 'acme' | 'other', body: Record<string, unknown>): Promise<string> {
  await gateway.clock.advance(1);
  const answer = tenant === 'acme' ? await gateway.create(body) : await gateway.request('POST', '/v1/videos', body, {}, OTHER_TENANT_KEY);
  expect(answer.status).toBe(202);
  return (answer.body as { status: string }).status;
}

it('gives freed slots to the tenant with fewer tasks in flight, not to the oldest of one tenant’s burst', async () => {
  gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 1 } } } });
  expect(await createAs(gw, 'acme', { ...base, ...to('kling3api'), prompt: 'a holder' })).toBe('processing');
  const burst = Array.from({ length: 6 }, (_, i) => `a ${i + 1}`);
  for (const prompt of burst) expect(await createAs(gw, 'acme', { ...base, ...to('kling3api'), prompt })).toBe('queued');
  // The other tenant's tasks come after the whole burst.
  for (const prompt of ['b 1', 'b 2']) expect(await createAs(gw, 'other', { ...base, ...to('kling3api'), prompt })).toBe('queued');

  await gw.advanceUntil(async () => promptsAt(gw!, 'kling3api').length === 9, 500, 200);
  // As each slot frees neither tenant holds one: the tenant served longest ago goes (other, never
  // served, first), so the tenants take turns; each tenant's own tasks go oldest first.
  expect(promptsAt(gw, 'kling3api')).toEqual(['a holder', 'b 1', 'a 1', 'b 2', 'a 2', 'a 3', 'a 4', 'a 5', 'a 6']);
});

it('counts a tenant’s tasks in flight on the provider the task waits for, not its tasks elsewhere', async () => {
  gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 1 }, freepik: { max_in_flight: 3 } } } });
  // acme keeps three tasks busy at freepik; other fills kling3api's one slot and queues a burst for it.
  for (const prompt of ['f 1', 'f 2', 'f 3']) expect(await createAs(gw, 'acme', { ...base, ...to('freepik'), prompt })).toBe('queued');
  // Its polls there go unanswered: the three stay in flight while kling3api's queue is served.
  gw.simulator('freepik').injectFault({ on: 'status', status: 503, times: 10_000 });
  expect(await createAs(gw, 'other', { ...base, ...to('kling3api'), prompt: 'b holder' })).toBe('processing');
  const burst = Array.from({ length: 4 }, (_, i) => `b ${i + 1}`);
  for (const prompt of burst) expect(await createAs(gw, 'other', { ...base, ...to('kling3api'), prompt })).toBe('queued');
  expect(await createAs(gw, 'acme', { ...base, ...to('kling3api'), prompt: 'a 1' })).toBe('queued');

  await gw.advanceUntil(async () => promptsAt(gw!, 'kling3api').length === 6, 500, 200);
  // acme holds no kling3api slot and has had none: its task is not held behind other's burst there.
  expect(promptsAt(gw, 'kling3api')).toEqual(['b holder', 'a 1', 'b 1', 'b 2', 'b 3', 'b 4']);
});

it('is fair in a queue longer than a pass reads at once', async () => {
  gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 1 } } } });
  expect(await createAs(gw, 'acme', { ...base, ...to('kling3api'), prompt: 'a holder' })).toBe('processing');
  // More waiting tasks than one page of the queue (200).
  const burst = Array.from({ length: 210 }, (_, i) => `a ${i + 1}`);
  for (const prompt of burst) expect(await createAs(gw, 'acme', { ...base, ...to('kling3api'), prompt })).toBe('queued');
  expect(await createAs(gw, 'other', { ...base, ...to('kling3api'), prompt: 'b 1' })).toBe('queued');

  await gw.advanceUntil(async () => promptsAt(gw!, 'kling3api').length === 4, 500, 200);
  expect(promptsAt(gw, 'kling3api')).toEqual(['a holder', 'b 1', 'a 1', 'a 2']);
});

it('counts a tenant’s slots and turns at every provider its task may take, not only its first choice', async () => {
  const breaker = { consecutive_failures: 1, half_open_after_ms: 3_600_000 };
  gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 1 }, freepik: { circuit_breaker: breaker } } } });
  // freepik is down: its circuit opens and stays open for the whole test.
  gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503, times: 1 });
  await gw.request('POST', '/v1/videos', { ...base, ...to('freepik'), prompt: 'opens the circuit' }, {}, OTHER_TENANT_KEY);
  expect((await gw.request('GET', '/v1/providers')).body.data.find((p: { id: string }) => p.id === 'freepik').circuit).toBe('open');
  // acme prefers freepik: every one of its tasks runs at kling3api, where it holds the one slot now.
  expect(await createAs(gw, 'acme', { ...base, ...to('kling3api'), prompt: 'a holder' })).toBe('processing');
  for (const prompt of ['a 1', 'a 2', 'a 3']) expect(await createAs(gw, 'acme', { ...base, ...to('freepik', 'kling3api'), prompt })).toBe('queued');
  for (const prompt of ['b 1', 'b 2']) expect(await createAs(gw, 'other', { ...base, ...to('kling3api'), prompt })).toBe('queued');

  await gw.advanceUntil(async () => promptsAt(gw!, 'kling3api').length === 6, 500, 200);
  // acme's slots and turns at kling3api count: the tenants take turns there (other, never served there, first).
  expect(promptsAt(gw, 'kling3api')).toEqual(['a holder', 'b 1', 'a 1', 'b 2', 'a 2', 'a 3']);
});
