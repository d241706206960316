/**
 * A prompt's length is counted in characters (Unicode code points) everywhere: the API's schema,
 * each provider's limit and the simulators, as the providers' OpenAPI `maxLength` counts them.
 * An emoji is one character, not the two UTF-16 units JavaScript's `.length` sees.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

describe('a prompt of emoji', () => {
  it.each([
    ['freepik', 'kling-v3', 2500],
    ['kling3api', 'kling-v3', 2000],
    ['kling-legacy', 'kling-v1', 2500],
  ])('is taken by %s up to its limit in characters (%s, %i emoji)', async (provider, model, limit) => {
    gw = await startTestGateway();
    const atLimit = await gw.create({ model, prompt: '🦊'.repeat(limit), duration: 5, routing: { providers: [provider] } });
    expect(atLimit.status).toBe(202);
    expect(atLimit.body).toMatchObject({ provider, provider_task_id: expect.any(String) });
    expect(gw.simulator(provider).tasks).toHaveLength(1);
  });

  it('is refused by the provider whose limit it passes, with the reason in characters, while the others take it', async () => {
    gw = await startTestGateway();
    const quote = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', prompt: '🦊'.repeat(2001), duration: 5 });
    const byId = Object.fromEntries(quote.body.providers.map((entry: { provider: string }) => [entry.provider, entry]));
    expect(byId.kling3api).toMatchObject({ eligible: false, reasons: ['prompt is longer than 2000 characters'] });
    expect(byId.freepik).toMatchObject({ eligible: true });
  });
});
