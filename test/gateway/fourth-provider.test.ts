/**
 * Adding a provider is its folder and one registry line. Reelhouse, a fictional fourth reseller,
 * is one folder under test/fixtures/providers/ (the same file set as every provider, its own
 * simulator on the simulator kit) and joins the gateway by `[...PROVIDERS, reelhouseProvider]`:
 * nothing outside its folder knows it, and yet it is listed, quoted, routed to, followed by its
 * callback, documented and kept out of the logs like the shipped three.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import openapiTS, { astToString } from 'openapi-typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROVIDERS } from '../../src/providers/registry.js';
import { reelhouseProvider } from '../fixtures/providers/reelhouse/index.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

/** The one line: the registry with a fourth provider. */
const WITH_REELHOUSE = [...PROVIDERS, reelhouseProvider];

const FOLDER = new URL('../fixtures/providers/reelhouse/', import.meta.url);

describe('a fourth provider added as one folder and one registry line', () => {
  let gw: TestGateway;
  let raw = '';

  beforeAll(async () => {
    const logs = new Writable({
      write(chunk, _encoding, done) {
        raw += chunk.toString();
        done();
      },
    });
    gw = await startTestGateway({ providers: WITH_REELHOUSE, logTo: logs });
  });

  afterAll(async () => {
    await gw.close();
  });

  it('is listed in /v1/models for exactly what it serves', async () => {
    const models = await gw.request('GET', '/v1/models');
    const providersOf = (model: string, operation: string): string[] | undefined =>
      models.body.data
        .find((entry: { model: string }) => entry.model === model)
        ?.operations.find((entry: { operation: string }) => entry.operation === operation)
        ?.providers.map((entry: { provider: string }) => entry.provider);
    expect(providersOf('kling-v3', 'text-to-video')).toContain('reelhouse');
    expect(providersOf('kling-v3', 'image-to-video')).toContain('reelhouse');
    expect(providersOf('kling-v3-omni', 'text-to-video')).not.toContain('reelhouse');
  });

  it('is quoted with its own prices and refused where it cannot serve', async () => {
    const quote = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', quality: 'std', prompt: 'a harbour', duration: 10 });
    expect(quote.status).toBe(200);
    const reelhouse = quote.body.providers.find((entry: { provider: string }) => entry.provider === 'reelhouse');
    expect(reelhouse).toMatchObject({ eligible: true, estimated_credits: 20, estimated_cost: 1, currency: 'USD' });
    expect(quote.body.order).toContain('reelhouse');
    const seven = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', quality: 'std', prompt: 'a harbour', duration: 7 });
    const refused = seven.body.providers.find((entry: { provider: string }) => entry.provider === 'reelhouse');
    expect(refused.eligible).toBe(false);
    expect(refused.reasons.join(' ')).toMatch(/duration/);
  });

  it('is shown in /v1/providers, on its simulator, with its name and prices', async () => {
    const providers = await gw.request('GET', '/v1/providers');
    expect(providers.body.data.map((entry: { id: string }) => entry.id)).toEqual(WITH_REELHOUSE.map((provider) => provider.id));
    expect(providers.body.data.find((entry: { id: string }) => entry.id === 'reelhouse')).toMatchObject({
      name: 'Reelhouse',
      enabled: true,
      mode: 'simulator',
      priority: 4,
      pricing: { currency: 'USD', credit_value: 0.05 },
    });
  });

  it('creates a video that succeeds through it, followed by its callback', async () => {
    const created = await gw.create({
      model: 'kling-v3',
      quality: 'std',
      prompt: 'a lighthouse at dusk',
      duration: 5,
      aspect_ratio: '9:16',
      routing: { providers: ['reelhouse'] },
    });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ provider: 'reelhouse', status: 'queued' });
    const [sent] = gw.simulator('reelhouse').tasks;
    expect(sent?.body).toEqual({
      prompt: 'a lighthouse at dusk',
      seconds: 5,
      aspect: '9:16',
      callback_url: expect.stringMatching(new RegExp(`^${gw.url}/v1/webhooks/reelhouse/[A-Za-z0-9_-]+$`)),
    });
    const done = await gw.finish(created.body.id);
    expect(done).toMatchObject({ status: 'succeeded', provider: 'reelhouse', cost: { credits: 10, currency_amount: 0.5 } });
    const video = await fetch(done.outputs[0].url);
    expect(video.headers.get('content-type')).toBe('video/mp4');
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toMatch(/kling_gateway_inbound_webhooks_total\{provider="reelhouse",outcome="confirming"\} [1-9]/);
  });

  it('has its callback route in /openapi.json, as its declaration says', async () => {
    const document = await gw.request('GET', '/openapi.json', undefined, {}, null);
    expect(document.body.paths['/v1/webhooks/reelhouse/{token}']?.post?.summary).toBe('Inbound Reelhouse callback');
    expect(document.body.paths['/v1/webhooks/reelhouse']).toBeUndefined();
  });

  it('has its auth header redacted in logs', () => {
    const headers = reelhouseProvider.authHeaders('reelhouse-live-key-123');
    gw.gateway.engine.logger.warn({ provider: 'reelhouse', headers, req: { headers } }, 'headers by mistake');
    expect(raw).toContain('"x-reelhouse-key":"[redacted]"');
    expect(raw).not.toContain('reelhouse-live-key-123');
  });

  it('keeps its upstream types generated from its own OpenAPI document, like the shipped providers', async () => {
    const ast = await openapiTS(new URL('reelhouse.yaml', FOLDER), { defaultNonNullable: false });
    const committed = readFileSync(new URL('reelhouse-api.generated.ts', FOLDER), 'utf8');
    expect(committed.split('\n').slice(2).join('\n')).toBe(astToString(ast));
  });
});
