import { afterEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

const pinned = { model: 'kling-v3', prompt: 'a kite over dunes', duration: 5, routing: { providers: ['kling3api'] } };

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

describe('per-provider concurrency cap', () => {
  it('queues tasks beyond the cap and dispatches them in order as slots free', async () => {
    gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 2 } } } });
    const ids: string[] = [];
    const statuses: string[] = [];
    for (let i = 0; i < 4; i++) {
      const created = await gw.create({ ...pinned, prompt: `kite ${i}` });
      ids.push(created.body.id);
      statuses.push(created.body.status);
      await gw.clock.advance(1);
    }
    expect(statuses).toEqual(['processing', 'processing', 'queued', 'queued']);
    expect(gw.simulator('kling3api').tasks).toHaveLength(2);

    const providers = await gw.request('GET', '/v1/providers');
    const kling3api = providers.body.data.find((p: { id: string }) => p.id === 'kling3api');
    expect(kling3api).toMatchObject({ in_flight: 2, max_in_flight: 2, queued: 2 });

    // The first two finish; the two waiting ones go out, oldest first.
    await gw.advanceUntil(async () => (await gw.get(ids[2]!)).body.status === 'processing');
    const order = gw.simulator('kling3api').tasks.map((task) => (task.body as { prompt: string }).prompt);
    expect(order.slice(0, 3)).toEqual(['kite 0', 'kite 1', 'kite 2']);
    for (const id of ids) expect((await gw.finish(id)).status).toBe('succeeded');
    expect(gw.simulator('kling3api').tasks.map((task) => (task.body as { prompt: string }).prompt)).toEqual([
      'kite 0',
      'kite 1',
      'kite 2',
      'kite 3',
    ]);
  });

  it('lets a new task go to another provider when its first choice is full', async () => {
    gw = await startTestGateway({ config: { providers: { freepik: { max_in_flight: 1 } } } });
    const request = { model: 'kling-v3', prompt: 'two kites', duration: 5 };
    const first = await gw.create(request);
    const second = await gw.create(request);
    expect(first.body.provider).toBe('freepik');
    expect(second.body.provider).toBe('kling3api');
    expect(second.body.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'accepted' })]);
  });

  it('queues a new task behind older waiting ones instead of jumping the line', async () => {
    gw = await startTestGateway({ config: { providers: { kling3api: { max_in_flight: 1 } } } });
    await gw.create({ ...pinned, prompt: 'first' });
    const waiting = await gw.create({ ...pinned, prompt: 'second' });
    expect(waiting.body.status).toBe('queued');
    const later = await gw.create({ ...pinned, prompt: 'third' });
    expect(later.body.status).toBe('queued');
  });
});

/** `accepted` for a task a provider took (whatever its status), else its status. */
function acceptedOrStatus(task: { status: string; provider_task_id: string | null }): string {
  return task.provider_task_id ? 'accepted' : task.status;
}

describe('upstream request-rate limit', () => {
  it('keeps creates within the configured window, queueing the excess', async () => {
    gw = await startTestGateway({
      config: { providers: { kling3api: { rate_limits: [{ limit: 2, window_ms: 10_000 }], max_in_flight: 50 } } },
    });
    const statuses: string[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await gw.create({ ...pinned, prompt: `burst ${i}` })).body.status);
    expect(statuses).toEqual(['processing', 'processing', 'queued']);
    expect(gw.simulator('kling3api').requests.filter((r) => r.method === 'POST')).toHaveLength(2);
  });

  it("keeps to Freepik's documented limits when the configuration names none", async () => {
    // Freepik documents 50 hits/s over 5 s: no more than 250 calls in any 5 s.
    gw = await startTestGateway({ config: { providers: { freepik: { max_in_flight: 1_000 } } } });
    const toFreepik = { model: 'kling-v3', prompt: 'a kite over dunes', duration: 5, routing: { providers: ['freepik'] } };
    const statuses: string[] = [];
    // Freepik answers a create `CREATED` (`queued` in its own queue): what tells a task it took from
    // one waiting at the gateway is its upstream id.
    for (let i = 0; i < 251; i++) statuses.push(acceptedOrStatus((await gw.create(toFreepik)).body));
    expect(statuses.filter((status) => status === 'accepted')).toHaveLength(250);
    expect(statuses[250]).toBe('queued');
    expect(gw.simulator('freepik').requests.filter((r) => r.method === 'POST')).toHaveLength(250);
  });

  it("keeps to Freepik's documented 10/s over 2 minutes too: sustained bursts the 5 s window would let through wait", async () => {
    gw = await startTestGateway({ config: { limits: { creates_per_minute: 100_000 }, providers: { freepik: { max_in_flight: 5_000 } } } });
    const toFreepik = { model: 'kling-v3', prompt: 'a kite over dunes', duration: 5, routing: { providers: ['freepik'] } };
    const start = gw.clock.now();
    const statuses: string[] = [];
    // 260 creates every 5 s for 30 s: the 5 s window alone would pass 250 of each burst (1500 in all).
    for (let burst = 0; burst < 6; burst++) {
      for (let batch = 0; batch < 5; batch++) {
        // A create may wait inline (on the clock) for an allowance a moment away: time moves on meanwhile.
        let settled = false;
        const answers = Promise.all(Array.from({ length: 52 }, () => gw.create(toFreepik))).finally(() => (settled = true));
        while (!settled) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          if (!settled) await gw.clock.advance(100);
        }
        statuses.push(...(await answers).map((answer) => acceptedOrStatus(answer.body)));
      }
      await gw.advance(5_000);
    }
    const calls = gw.simulator('freepik').requests.filter((r) => r.at < start + 120_000);
    expect(calls.length).toBeLessThanOrEqual(1_200);
    // The 2-minute window is what held them: it was used up, and creates waited queued.
    expect(calls.length).toBeGreaterThanOrEqual(1_150);
    expect(statuses.filter((status) => status === 'queued').length).toBeGreaterThanOrEqual(1_560 - 1_200);
    // 1,560 creates through a real gateway: beside two other busy files on two cores it has taken
    // over the suite's 60 s limit, which is a guard against hangs, not a measure of speed.
  }, 180_000);
});
