/**
 * A provider in doubt (a failed call, circuit not yet open) takes one call at a time: while that
 * trial call is under way, a create does not wait for it beyond the 2 s a create waits for an
 * account, and goes to the next provider. The quote must say so: that provider after the ones
 * that can take the task now, with a warning, so its order is the order the create follows.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

const body = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };
let gw: TestGateway;
afterEach(async () => {
  await gw?.close();
});

it('puts a provider whose one trial call is under way after the others, as the create goes', async () => {
  gw = await startTestGateway();
  // A 503 from Freepik: the task goes to kling3api, and Freepik is in doubt (one failure of three).
  gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503 });
  const failedOver = await gw.create(body);
  expect(failedOver.body.provider).toBe('kling3api');
  gw.simulator('freepik').clearFaults();
  const freepik = gw.gateway.engine.runtimes.get('freepik')!;
  expect(freepik.circuit).toBe('closed');

  // Another call to Freepik (a status poll, a create of another replica) holds the trial now.
  const held = await freepik.accounts[0]!.admit(0);
  expect(held).toMatchObject({ granted: true, permit: { trial: true } });

  const quote = await gw.request('POST', '/v1/videos/quote', body);
  expect(quote.status).toBe(200);
  expect(quote.body.order).toEqual(['kling3api', 'kling-legacy', 'freepik']);
  const quoted = quote.body.providers.find((p: { provider: string }) => p.provider === 'freepik');
  expect(quoted).toMatchObject({ eligible: true, order: 3 });
  expect(quoted.warnings.join(' ')).toMatch(/one call at a time.*tried after the providers that can take it now/);

  // The create waits its 2 s for Freepik's trial, then goes where the quote said.
  const pending = gw.create(body);
  for (let step = 0; step < 12; step++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    await gw.clock.advance(250);
  }
  const created = await pending;
  expect(created.status).toBe(202);
  expect(created.body.provider).toBe(quote.body.order[0]);
});
