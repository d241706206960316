/**
 * The upstream call metrics as an operator reads them after traffic: how many calls and how long
 * they took, by provider, operation and outcome (a timed-out or refused call's latency is not an
 * answered call's; an upstream throttling the gateway, refusing its key or failing are told
 * apart), from `/metrics` over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
let exposition: string;

/** The value of one series, or undefined when `/metrics` has none with exactly these labels. */
function series(name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .sort();
  for (const line of exposition.split('\n')) {
    const match = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = match[2]!.split(/,(?=\w+=")/).sort();
    if (have.length === wanted.length && have.every((pair, index) => pair === wanted[index])) return Number(match[3]);
  }
  return undefined;
}

beforeAll(async () => {
  gw = await startTestGateway();
  // freepik answers the first create 503; the task goes on to kling3api, whose first poll is reset.
  gw.simulator('freepik').injectFault({ kind: 'unavailable', status: 503 });
  gw.simulator('kling3api').injectFault({ on: 'status', transport: 'reset' });
  const created = await gw.create({ model: 'kling-v3', prompt: 'upstream metrics', duration: 5, routing: { providers: ['freepik', 'kling3api'] } });
  expect((await gw.finish(created.body.id)).status).toBe('succeeded');
  // freepik answers a create 429, then refuses the key of the next: both go on to kling3api,
  // which answers one of their polls 429.
  gw.simulator('freepik').injectFault({ kind: 'rate_limited', status: 429 });
  const throttled = await gw.create({ model: 'kling-v3', prompt: 'throttled', duration: 5, routing: { providers: ['freepik', 'kling3api'] } });
  expect(throttled.body.provider).toBe('kling3api');
  await gw.advance(120_000);
  gw.simulator('freepik').injectFault({ kind: 'unauthorized', status: 401 });
  gw.simulator('kling3api').injectFault({ on: 'status', kind: 'rate_limited', status: 429 });
  const refused = await gw.create({ model: 'kling-v3', prompt: 'refused key', duration: 5, routing: { providers: ['freepik', 'kling3api'] } });
  expect(refused.body.provider).toBe('kling3api');
  for (const id of [throttled.body.id, refused.body.id]) expect((await gw.finish(id)).status).toBe('succeeded');
  exposition = (await gw.request('GET', '/metrics', undefined, {}, null)).body;
});
afterAll(async () => {
  await gw.close();
});

describe('upstream call metrics', () => {
  it('time each call by provider, operation and outcome, as they are counted', () => {
    const calls = [
      { provider: 'freepik', operation: 'submit', outcome: 'server_error' },
      { provider: 'kling3api', operation: 'status', outcome: 'reset' },
      { provider: 'freepik', operation: 'submit', outcome: 'rate_limited' },
      { provider: 'freepik', operation: 'submit', outcome: 'unauthorized' },
      { provider: 'kling3api', operation: 'status', outcome: 'rate_limited' },
    ];
    for (const call of calls) {
      const labels = { ...call, account: 'default' };
      expect(series('kling_gateway_upstream_requests_total', labels), JSON.stringify(call)).toBe(1);
      expect(series('kling_gateway_upstream_request_duration_seconds_count', labels), JSON.stringify(call)).toBe(1);
      expect(series('kling_gateway_upstream_request_duration_seconds_bucket', { ...labels, le: '+Inf' }), JSON.stringify(call)).toBe(1);
    }
    for (const operation of ['submit', 'status']) {
      const labels = { provider: 'kling3api', account: 'default', operation, outcome: 'ok' };
      expect(series('kling_gateway_upstream_requests_total', labels), operation).toBe(3);
      expect(series('kling_gateway_upstream_request_duration_seconds_count', labels), operation).toBe(3);
    }
  });

  it('never count an answered error as a bare provider_error when its status says more', () => {
    expect(exposition).not.toMatch(/^kling_gateway_upstream_requests_total\{[^}]*outcome="provider_error"\}/m);
  });
});
