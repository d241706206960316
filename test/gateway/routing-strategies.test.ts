/**
 * The `weighted` strategy as a caller meets it: the quote's try order and the provider a create
 * goes to follow the configured weights (SPEC §3), not just the configured priority.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

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

});
