/**
 * `GET /v1/videos?provider=` names one of the gateway's providers. An id it does not know (a
 * typo, a name from another product) is a 400 naming the parameter and the known ids, as an
 * unknown `model` is and as an unknown `routing.providers` entry of a create is, not an empty
 * list that reads as "no tasks there". A provider turned off, or left without a key, since its
 * tasks were made is still known: its tasks are still listed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayDeploys, startTestGateway, type TestGateway } from '../support/harness.js';

const pinned = { model: 'kling-v3', prompt: 'a kite over the dunes', duration: 5, routing: { providers: ['freepik'], allow_fallbacks: false } };

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('GET /v1/videos?provider=', () => {
  it('an id the gateway does not know is a 400 naming the parameter and the known ids', async () => {
    const gw = await startTestGateway();
    open.push(gw);
    expect((await gw.create(pinned)).status).toBe(202);
    const answer = await gw.request('GET', '/v1/videos?provider=freepick');
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    expect(answer.body.type).toMatch(/\/validation$/);
    expect(answer.body.errors).toEqual([{ path: 'provider', message: 'unknown provider "freepick" (known: freepik, kling3api, kling-legacy)' }]);
    // With another parameter at fault, both are named.
    const both = await gw.request('GET', '/v1/videos?provider=freepick&model=kling-3');
    expect(both.body.errors.map((error: { path: string }) => error.path).sort()).toEqual(['model', 'provider']);
    // A known one still filters.
    expect((await gw.request('GET', '/v1/videos?provider=freepik')).body.data).toHaveLength(1);
    expect((await gw.request('GET', '/v1/videos?provider=kling3api')).body.data).toEqual([]);
  });

  it('lists the tasks of a provider turned off, or left without a key, since they were made', async () => {
    const deploys = await GatewayDeploys.start();
    cleanups.push(() => deploys.close());
    const { created, after: disabled } = await deploys.madeThenTurnedOff('freepik', pinned);
    expect(created.status).toBe(202);
    const listed = await disabled.request('GET', '/v1/videos?provider=freepik');
    expect([listed.status, listed.body.data.map((task: { id: string }) => task.id)]).toEqual([200, [created.body.id]]);
    await disabled.close();

    // No endpoint at all (its key removed): the gateway does not run it, and still knows it.
    const unkeyed = await deploys.deploy({}, { endpoints: new Map([...deploys.endpoints].filter(([id]) => id !== 'freepik')) });
    open.push(unkeyed);
    const providers = await unkeyed.request('GET', '/v1/providers');
    expect(providers.body.data.map((provider: { id: string }) => provider.id)).not.toContain('freepik');
    const still = await unkeyed.request('GET', '/v1/videos?provider=freepik');
    expect([still.status, still.body.data.map((task: { id: string }) => task.id)]).toEqual([200, [created.body.id]]);
  });

  it('the API document gives the ids the parameter takes', async () => {
    const gw = await startTestGateway();
    open.push(gw);
    const document = await gw.request('GET', '/openapi.json', undefined, {}, null);
    const parameter = document.body.paths['/v1/videos'].get.parameters.find((p: { name: string }) => p.name === 'provider');
    expect(parameter.schema).toEqual({ $ref: '#/components/schemas/ProviderId' });
    expect(document.body.components.schemas.ProviderId.enum).toEqual(['freepik', 'kling3api', 'kling-legacy']);
  });
});
