/**
 * The `weighted` and `fastest` strategies as a caller meets them: the quote's try order and the
 * provider a create goes to follow the configured weights and the providers' recent times to
 * complete (SPEC §3), not just the configured priority.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { startTestGateway, testConfig, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

const body = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };

describe('routing strategies through the API', () => {
  it('weighted: the provider with most of the configured weight leads, one of weight 0 comes last', async () => {
    // Every draw is 0.5 (the harness's random): the lead goes to the larger weight, against priority.
    gw = await startTestGateway({
      config: { providers: { freepik: { weight: 1 }, kling3api: { weight: 9 }, 'kling-legacy': { weight: 0 } } },
    });
    const quote = await gw.request('POST', '/v1/videos/quote', { ...body, routing: { strategy: 'weighted' } });
    expect(quote.status).toBe(200);
    expect(quote.body.strategy).toBe('weighted');
    expect(quote.body.order).toEqual(['kling3api', 'freepik', 'kling-legacy']);
    const created = await gw.create({ ...body, routing: { strategy: 'weighted' } });
    expect(created.body.provider).toBe('kling3api');
  });

  it('fastest: the provider whose recent tasks finished sooner leads; one without history comes last', async () => {
    // Freepik's simulator takes two minutes a task, the others' five seconds.
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const slow = await startSandbox(testConfig({ sandbox: { processing_ms: 120_000 } }), PROVIDERS, clock);
    const quick = await startSandbox(testConfig(), PROVIDERS, clock);
    let gw: TestGateway | undefined;
    try {
      const endpoints = new Map([...quick.endpoints, ['freepik', slow.endpoints.get('freepik')!]]);
      const simulators = new Map([...quick.simulators, ['freepik', slow.simulators.get('freepik')!]]);
      gw = await startTestGateway({ clock, endpoints, simulators });
      for (const provider of ['freepik', 'kling3api']) {
        const created = await gw.create({ ...body, routing: { providers: [provider] } });
        expect(created.body.provider).toBe(provider);
        expect((await gw.finish(created.body.id, 5_000)).status).toBe('succeeded');
      }
      const providers = Object.fromEntries((await gw.request('GET', '/v1/providers')).body.data.map((p: { id: string; median_completion_ms: number | null }) => [p.id, p.median_completion_ms]));
      expect(providers.freepik).toBeGreaterThan(providers.kling3api);
      expect(providers['kling-legacy']).toBeNull();

      const quote = await gw.request('POST', '/v1/videos/quote', { ...body, routing: { strategy: 'fastest' } });
      expect(quote.body.strategy).toBe('fastest');
      expect(quote.body.order).toEqual(['kling3api', 'freepik', 'kling-legacy']);
      const created = await gw.create({ ...body, routing: { strategy: 'fastest' } });
      expect(created.body.provider).toBe('kling3api');
    } finally {
      await gw?.close();
      await Promise.all([slow.close(), quick.close()]);
    }
  });
});
