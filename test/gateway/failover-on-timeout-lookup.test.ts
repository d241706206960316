/**
 * With `routing.failover_on_timeout: true`, a create whose answer was lost (the connection dropped
 * after the request was written, or no answer came in time) at a provider that finds a create by
 * the id it carried (the legacy API's `external_task_id`) is looked up once before the task goes
 * on: shown, the task is adopted there and the next provider is never sent it (the video is not
 * made and paid twice); proved absent, it goes on with that create ruled out; when the lookup gets
 * no answer, it goes on as before, the create left in doubt.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { heldCall } from '../support/held-call.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

const klingV3 = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };
const legacyFirst = { ...klingV3, routing: { providers: ['kling-legacy', 'kling3api'] } };

const open: TestGateway[] = [];
const releases: (() => void)[] = [];
afterEach(async () => {
  for (const release of releases.splice(0)) release();
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
});

async function gateway(options: Parameters<typeof startTestGateway>[0] = {}): Promise<TestGateway> {
  const gw = await startTestGateway({ ...options, config: { routing: { failover_on_timeout: true }, ...options.config } });
  open.push(gw);
  return gw;
}

function kling3apiCreates(gw: TestGateway): number {
  return gw.simulator('kling3api').tasks.length;
}

async function legacyFailovers(gw: TestGateway): Promise<string> {
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  return metrics
    .split('\n')
    .filter((line) => line.startsWith('kling_gateway_failovers_total{provider="kling-legacy"') && !line.endsWith(' 0'))
    .join('\n');
}

describe('failover_on_timeout: a legacy create whose answer was lost is looked up by its external_task_id before the task goes on', () => {
  it('a connection dropped after the upstream accepted: the task is adopted there, the next provider never sent it', async () => {
    const gw = await gateway();
    const legacy = gw.simulator('kling-legacy');
    legacy.injectFault({ transport: 'drop_after_accept' });
    const created = await gw.create(legacyFirst);
    expect(created.body).toMatchObject({ status: 'processing', provider: 'kling-legacy', provider_task_id: legacy.tasks[0]!.id });
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'accepted', recovered_by: 'external_id' })]);
    expect(created.body.cost.at_risk).toBeUndefined();
    expect(kling3apiCreates(gw)).toBe(0);
    expect(await legacyFailovers(gw)).toBe('');
    const finished = await gw.finish(created.body.id);
    expect(finished).toMatchObject({ status: 'succeeded', provider: 'kling-legacy', provider_task_id: legacy.tasks[0]!.id });
    expect(legacy.tasks).toHaveLength(1);
    expect(kling3apiCreates(gw)).toBe(0);
  });

  it('a legacy-only plan: the task is adopted, not failed with its create in doubt', async () => {
    const gw = await gateway();
    const legacy = gw.simulator('kling-legacy');
    legacy.injectFault({ transport: 'drop_after_accept' });
    const created = await gw.create({ ...klingV3, routing: { providers: ['kling-legacy'] } });
    expect(created.body).toMatchObject({ status: 'processing', provider: 'kling-legacy', provider_task_id: legacy.tasks[0]!.id });
    expect(created.body.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: 'external_id' })]);
    expect((await gw.finish(created.body.id)).status).toBe('succeeded');
    expect(legacy.tasks).toHaveLength(1);
  });

  it('a create that timed out after the upstream accepted it: the task is adopted there, the next provider never sent it', async () => {
    const gw = await gateway({ config: { routing: { failover_on_timeout: true }, providers: { 'kling-legacy': { timeout_ms: 300 } } } });
    const legacy = gw.simulator('kling-legacy');
    // The create is held past the gateway's time limit, then acted on (its answer lost); the
    // lookup that follows the timeout is answered once the upstream holds the task.
    const create = heldCall();
    const lookup = heldCall();
    releases.push(create.release, lookup.release);
    legacy.injectFault({ hold: create.hold, transport: 'drop_after_accept' });
    legacy.injectFault({ on: 'status', hold: lookup.hold });
    const answer = gw.create(legacyFirst);
    // (Before, no lookup was sent: the task went on at once.)
    await Promise.race([lookup.reached, answer]);
    create.release();
    await vi.waitFor(() => expect(legacy.tasks).toHaveLength(1));
    lookup.release();
    const created = await answer;
    expect(created.body).toMatchObject({ status: 'processing', provider: 'kling-legacy', provider_task_id: legacy.tasks[0]!.id });
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'accepted', recovered_by: 'external_id' })]);
    expect(kling3apiCreates(gw)).toBe(0);
    expect(await legacyFailovers(gw)).toBe('');
  });

  it('a lookup that gets no answer (503): the task goes on as before, the legacy create left in doubt', async () => {
    const gw = await gateway();
    const legacy = gw.simulator('kling-legacy');
    legacy.injectFault({ transport: 'drop_after_accept' });
    legacy.injectFault({ on: 'status', status: 503, body: { code: 5000, message: 'busy' } });
    const created = await gw.create(legacyFirst);
    expect(created.body).toMatchObject({ status: 'processing', provider: 'kling3api' });
    expect(created.body.attempts).toEqual([
      expect.objectContaining({ provider: 'kling-legacy', outcome: 'ambiguous' }),
      expect.objectContaining({ provider: 'kling3api', outcome: 'accepted' }),
    ]);
    expect(created.body.cost.at_risk).toEqual([expect.objectContaining({ provider: 'kling-legacy' })]);
    expect(legacy.requests.filter((r) => r.method === 'GET').length).toBeGreaterThan(0);
    expect(await legacyFailovers(gw)).toBe('kling_gateway_failovers_total{provider="kling-legacy",reason="connection_reset"} 1');
  });

  it('Kling\'s own API: a "does not exist" asked right after the create proves nothing: the task goes on, that create left in doubt', async () => {
    const gw = await gateway({ endpointOverrides: { 'kling-legacy': { apiShape: 'official' } } });
    const legacy = gw.simulator('kling-legacy');
    legacy.injectFault({ transport: 'reset' });
    const created = await gw.create(legacyFirst);
    expect(created.body).toMatchObject({ status: 'processing', provider: 'kling3api' });
    // Asked at once, its "does not exist" came too early to prove anything: left in doubt.
    expect(created.body.attempts).toEqual([
      expect.objectContaining({ provider: 'kling-legacy', outcome: 'ambiguous' }),
      expect.objectContaining({ provider: 'kling3api', outcome: 'accepted' }),
    ]);
    expect(legacy.tasks).toHaveLength(0);
  });

  /**
   * A create to Kling's own API whose connection is reset only once its time limit + 5 s have
   * passed on the clock: the lookup that follows is sent when the upstream can no longer be acting
   * on it, and its "does not exist" proves the create was not accepted.
   */
  async function createProvedAbsent(body: Record<string, unknown>) {
    const gw = await gateway({ endpointOverrides: { 'kling-legacy': { apiShape: 'official' } } });
    const create = heldCall();
    releases.push(create.release);
    gw.simulator('kling-legacy').injectFault({ hold: create.hold, transport: 'reset' });
    const answer = gw.create(body);
    await create.reached;
    await gw.clock.advance(30_000 + 5_000 + 1);
    create.release();
    return { gw, legacy: gw.simulator('kling-legacy'), created: await answer };
  }

  it('Kling\'s own API proves no task was accepted, asked once the create could no longer be acted on: the task goes on, that create ruled out (nothing at risk)', async () => {
    const { gw, legacy, created } = await createProvedAbsent(legacyFirst);
    expect(created.body).toMatchObject({ status: 'processing', provider: 'kling3api' });
    expect(created.body.attempts).toEqual([
      expect.objectContaining({ provider: 'kling-legacy', outcome: 'failed', message: expect.stringMatching(/not accepted upstream: kling-legacy has no task with external_task_id/) }),
      expect.objectContaining({ provider: 'kling3api', outcome: 'accepted' }),
    ]);
    expect(created.body.cost.at_risk).toBeUndefined();
    expect(legacy.tasks).toHaveLength(0);
    // Counted as a create recovery proves absent is (before: the create's own reason, connection_reset).
    expect(await legacyFailovers(gw)).toBe('kling_gateway_failovers_total{provider="kling-legacy",reason="proved_absent"} 1');
  });

  it('a legacy-only plan whose create the lookup proves was not accepted: the task fails saying so (nothing at risk), counted as proved_absent', async () => {
    const { gw, legacy, created } = await createProvedAbsent({ ...klingV3, routing: { providers: ['kling-legacy'] } });
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'failed', message: expect.stringMatching(/not accepted upstream/) })]);
    expect(created.body).toMatchObject({ status: 'failed', error: { message: expect.stringMatching(/not accepted upstream: kling-legacy has no task with external_task_id/) } });
    // (Before, it said the task was failed over although it may exist upstream.)
    expect(created.body.error.message).not.toMatch(/may exist upstream|failed over/);
    expect(created.body.cost.at_risk).toBeUndefined();
    expect(legacy.tasks).toHaveLength(0);
    expect(await legacyFailovers(gw)).toBe('kling_gateway_failovers_total{provider="kling-legacy",reason="proved_absent"} 1');
  });

  it('during a graceful stop nothing is looked up (a lookup may take the provider\'s time limit again): the task goes on as before', async () => {
    const gw = await gateway();
    const legacy = gw.simulator('kling-legacy');
    const create = heldCall();
    releases.push(create.release);
    legacy.injectFault({ hold: create.hold, transport: 'drop_after_accept' });
    const answer = gw.create(legacyFirst);
    await create.reached;
    const stopped = gw.gateway.close();
    create.release();
    const created = await answer;
    await stopped;
    expect(created.body.attempts[0]).toMatchObject({ provider: 'kling-legacy', outcome: 'ambiguous' });
    expect(legacy.requests.filter((request) => request.method === 'GET')).toEqual([]);
  });
});
