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

  it('weighted: the quote says its order is one random draw, and how often each provider comes first', async () => {
    // A create draws its own order: the quote's is one draw of the same odds, which it states.
    gw = await startTestGateway({
      config: { routing: { strategy: 'weighted' }, providers: { freepik: { weight: 1 }, kling3api: { weight: 3 }, 'kling-legacy': { weight: 0 } } },
    });
    const quote = await gw.request('POST', '/v1/videos/quote', body);
    expect(quote.body.order).toEqual(['kling3api', 'freepik', 'kling-legacy']);
    const warningsOf = (answer: typeof quote, id: string) =>
      answer.body.providers.find((p: { provider: string }) => p.provider === id).warnings.join(' ');
    expect(warningsOf(quote, 'kling3api')).toMatch(/first in about 75 % of creates \(weight 3 of 4\).*one random draw/);
    expect(warningsOf(quote, 'freepik')).toMatch(/first in about 25 % of creates \(weight 1 of 4\)/);
    expect(warningsOf(quote, 'kling-legacy')).toMatch(/weight 0: tried only after the providers with a weight/);

    // Pinned to the first with `allow_fallbacks: false`, another draw may pin another provider.
    const pinned = await gw.request('POST', '/v1/videos/quote', { ...body, routing: { allow_fallbacks: false } });
    expect(pinned.body.order).toEqual(['kling3api']);
    const freepik = pinned.body.providers.find((p: { provider: string }) => p.provider === 'freepik');
    expect(freepik.reasons.join(' ')).toMatch(/not in this draw.*first in about 25 % of creates/);
    // Left out of this order: its odds are said once, in its reason, not as a warning of an order it is not in.
    expect(freepik.warnings.join(' ')).not.toMatch(/drawn first/);

    // An exact order (routing.providers, no strategy) is no draw, under the configured weighted too: nothing to say.
    const exact = await gw.request('POST', '/v1/videos/quote', { ...body, routing: { providers: ['freepik', 'kling3api'] } });
    expect(warningsOf(exact, 'freepik')).toBe('');
  });

  it('weighted: the quote reads weights as written (0.1 of 0.3), and says no odds when one provider alone has a weight', async () => {
    gw = await startTestGateway({
      config: { routing: { strategy: 'weighted' }, providers: { freepik: { weight: 0.1 }, kling3api: { weight: 0.2 }, 'kling-legacy': { weight: 0 } } },
    });
    const quote = await gw.request('POST', '/v1/videos/quote', body);
    const warningsOf = (answer: typeof quote, id: string) =>
      answer.body.providers.find((p: { provider: string }) => p.provider === id).warnings.join(' ');
    expect(warningsOf(quote, 'freepik')).toMatch(/first in about 33.3 % of creates \(weight 0.1 of 0.3\)/);
    await gw.close();

    // One provider with a weight: every create puts it first; no draw to speak of.
    gw = await startTestGateway({
      config: { routing: { strategy: 'weighted' }, providers: { freepik: { weight: 1 }, kling3api: { weight: 0 }, 'kling-legacy': { weight: 0 } } },
    });
    const alone = await gw.request('POST', '/v1/videos/quote', body);
    expect(alone.body.order[0]).toBe('freepik');
    expect(warningsOf(alone, 'freepik')).not.toMatch(/drawn first|random draw/);
  });

  it('weighted: with every weight 0 the quote says the order is the configured priority, and a lone weight says the others come after it', async () => {
    gw = await startTestGateway({
      config: { routing: { strategy: 'weighted' }, providers: { freepik: { weight: 0 }, kling3api: { weight: 0 }, 'kling-legacy': { weight: 0 } } },
    });
    const warningsOf = (answer: { body: { providers: { provider: string; warnings: string[] }[] } }, id: string) =>
      answer.body.providers.find((p) => p.provider === id)!.warnings.join(' ');
    const none = await gw.request('POST', '/v1/videos/quote', body);
    expect(none.body.order).toEqual(['freepik', 'kling3api', 'kling-legacy']);
    for (const id of none.body.order) {
      expect(warningsOf(none, id)).toMatch(/weighted: every eligible provider has weight 0, so they are tried in the configured priority order/);
    }
    expect((await gw.create(body)).body.provider).toBe('freepik');
    // Asked for per request, the same.
    await gw.close();
    gw = await startTestGateway({ config: { providers: { freepik: { weight: 0 }, kling3api: { weight: 0 }, 'kling-legacy': { weight: 0 } } } });
    const asked = await gw.request('POST', '/v1/videos/quote', { ...body, routing: { strategy: 'weighted' } });
    expect(warningsOf(asked, 'kling3api')).toMatch(/every eligible provider has weight 0/);
    // Under priority, weights say nothing.
    expect(warningsOf(await gw.request('POST', '/v1/videos/quote', body), 'kling3api')).toBe('');
    await gw.close();

    gw = await startTestGateway({
      config: { routing: { strategy: 'weighted' }, providers: { freepik: { weight: 0 }, kling3api: { weight: 2 }, 'kling-legacy': { weight: 0 } } },
    });
    const lone = await gw.request('POST', '/v1/videos/quote', body);
    expect(lone.body.order).toEqual(['kling3api', 'freepik', 'kling-legacy']);
    expect(warningsOf(lone, 'kling3api')).toBe('');
    expect(warningsOf(lone, 'freepik')).toMatch(/^weighted: weight 0: tried only after the providers with a weight$/);
    expect(warningsOf(lone, 'kling-legacy')).toMatch(/^weighted: weight 0: tried only after the providers with a weight$/);
  });

  it('fastest with no history yet: the quote says the order is the configured priority', async () => {
    gw = await startTestGateway({ config: { routing: { strategy: 'fastest' } } });
    const quote = await gw.request('POST', '/v1/videos/quote', body);
    expect(quote.body.order).toEqual(['freepik', 'kling3api', 'kling-legacy']);
    for (const entry of quote.body.providers) {
      expect(entry.warnings).toEqual(['fastest: no eligible provider has a task finished in the last six hours, so they are tried in the configured priority order']);
    }
    expect((await gw.create(body)).body.provider).toBe('freepik');
    // routing.providers without a strategy is an exact order: nothing to say.
    const exact = await gw.request('POST', '/v1/videos/quote', { ...body, routing: { providers: ['kling3api', 'freepik'] } });
    expect(exact.body.providers.flatMap((p: { warnings: string[] }) => p.warnings)).toEqual([]);
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
      const warningsOf = (id: string) => quote.body.providers.find((p: { provider: string }) => p.provider === id).warnings.join(' ');
      expect(warningsOf('kling-legacy')).toBe('fastest: no task finished there in the last six hours; tried after the providers with a recent median time to complete');
      expect(warningsOf('kling3api')).toBe('');
      const created = await gw.create({ ...body, routing: { strategy: 'fastest' } });
      expect(created.body.provider).toBe('kling3api');
    } finally {
      await gw?.close();
      await Promise.all([slow.close(), quick.close()]);
    }
  });
});
