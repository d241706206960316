/**
 * A task failed over from a provider that left its create unanswered (`failover_on_timeout`) and
 * then taken by no provider costs that provider's estimate, shown under that provider — and under
 * the account its create went to. It was shown under the account of the last provider tried (a
 * Freepik account named under kling3api in `/v1/usage?group_by=provider,account` and the spend
 * metrics), so the money could not be reconciled with the invoice of the account that may hold it.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { startTestGateway, testConfig, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await gw?.close();
  gw = undefined;
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const request = { model: 'kling-v3', prompt: 'a paper boat on a rainy street', duration: 5, routing: { providers: ['kling3api', 'freepik'] } };

/** A gateway trying kling3api first (its one account `k3-main`, which never answers a create), failing over on timeouts. */
async function gatewayWhoseKling3apiHangs(): Promise<TestGateway> {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
  cleanups.push(() => sandbox.close());
  const kling3api = sandbox.endpoints.get('kling3api')!;
  const started = await startTestGateway({
    clock,
    endpoints: sandbox.endpoints,
    simulators: sandbox.simulators,
    config: { routing: { failover_on_timeout: true }, providers: { kling3api: { timeout_ms: 300 } } },
    endpointOverrides: { kling3api: { accounts: [{ id: 'k3-main', apiKey: kling3api.apiKey }] } },
  });
  started.simulator('kling3api').injectFault({ transport: 'hang' });
  return started;
}

it('a task failed over from an unanswered create and taken by nobody is charged under the account that create went to', async () => {
  gw = await gatewayWhoseKling3apiHangs();
  gw.simulator('freepik').injectFault({ kind: 'server_error' });
  const created = await gw.create(request);
  expect(created.body.status).toBe('failed');
  expect(created.body.provider).toBe('kling3api');
  expect(created.body.cost).toEqual({ credits: 400, estimated: true, currency_amount: 0.4, currency: 'USD' });
  expect(created.body.attempts.map((a: { provider: string; account: string; outcome: string }) => [a.provider, a.account, a.outcome])).toEqual([
    ['kling3api', 'k3-main', 'ambiguous'],
    ['freepik', 'default', 'failed'],
  ]);

  const usage = await gw.request('GET', '/v1/usage?group_by=provider,account');
  expect(usage.body.data).toEqual([expect.objectContaining({ provider: 'kling3api', account: 'k3-main', tasks: 1, credits: 400, currency_amount: 0.4 })]);
  const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
  expect(metrics).toMatch(/^kling_gateway_credits_spent_total\{provider="kling3api",account="k3-main",model="kling-v3"\} 400$/m);
  expect(metrics).not.toMatch(/^kling_gateway_credits_spent_total\{provider="kling3api",account="default",.*\} (?!0$)/m);
});

it('a task failed over from an unanswered create and canceled while queued is charged under the account that create went to', async () => {
  gw = await gatewayWhoseKling3apiHangs();
  gw.simulator('freepik').injectFault({ kind: 'rate_limited', headers: { 'Retry-After': '60' } });
  const created = await gw.create(request);
  expect(created.body.status).toBe('queued');
  const canceled = await gw.request('POST', `/v1/videos/${created.body.id}/cancel`);
  expect(canceled.body).toMatchObject({ status: 'canceled', provider: 'kling3api', cost: { credits: 400, estimated: true, currency_amount: 0.4, currency: 'USD' } });
  const usage = await gw.request('GET', '/v1/usage?group_by=provider,account');
  expect(usage.body.data).toEqual([expect.objectContaining({ provider: 'kling3api', account: 'k3-main', tasks: 1, credits: 400, currency_amount: 0.4 })]);
});
