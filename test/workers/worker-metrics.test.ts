/**
 * What the primary adds up for a scrape: a worker that answers late counts with its last answer,
 * one that died goes on counting with what it had counted, and neither brings its gauges along.
 */
import { AggregatorRegistry } from 'prom-client';
import { expect, it } from 'vitest';
import { GatewayMetrics } from '../../src/observability/metrics.js';
import { WorkerMetricsLedger } from '../../src/workers/worker-metrics.js';

const CREATED = 'kling_gateway_http_requests_total{method="POST",route="/v1/videos",status="202"}';
const CREATED_TIMED = 'kling_gateway_http_request_duration_seconds_count{method="POST",route="/v1/videos",status="202"}';

async function scrape(ledger: WorkerMetricsLedger, answered: number[]): Promise<Map<string, number>> {
  const text = await AggregatorRegistry.aggregate(ledger.parts(new Set(answered))).metrics();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

function worker(creates: number, queued: number): GatewayMetrics {
  const metrics = new GatewayMetrics();
  metrics.httpRequests.inc({ method: 'POST', route: '/v1/videos', status: '202' }, creates);
  for (let index = 0; index < creates; index++) metrics.httpDuration.observe({ method: 'POST', route: '/v1/videos', status: '202' }, 0.01);
  metrics.tasksQueued.set(queued);
  return metrics;
}

it('never reports fewer than it did when a worker answers late or dies', async () => {
  const ledger = new WorkerMetricsLedger();
  const one = worker(3, 4);
  const two = worker(5, 4);
  ledger.answered(1, await one.snapshot());
  ledger.answered(2, await two.snapshot());
  expect((await scrape(ledger, [1, 2])).get(CREATED)).toBe(8);

  // Worker 2 is too slow for this scrape: its last answer stands for it.
  one.httpRequests.inc({ method: 'POST', route: '/v1/videos', status: '202' });
  ledger.answered(1, await one.snapshot());
  const late = await scrape(ledger, [1]);
  expect(late.get(CREATED)).toBe(9);
  expect(late.get(CREATED_TIMED)).toBe(8);

  // Worker 2 dies; its replacement (3) starts from nothing, and has the store's newer queue.
  two.tasksQueued.set(99);
  two.setCircuitState('freepik', 'open');
  ledger.answered(2, await two.snapshot());
  ledger.retire(2);
  ledger.answered(3, await worker(1, 6).snapshot());
  const replaced = await scrape(ledger, [1, 3]);
  expect(replaced.get(CREATED)).toBe(10);
  expect(replaced.get(CREATED_TIMED)).toBe(9);
  // Gauges come from the workers that answered, never from a dead one.
  expect(replaced.get('kling_gateway_tasks_queued')).toBe(4);
  expect(replaced.has('kling_gateway_circuit_state{provider="freepik"}')).toBe(false);
});

it('adds the workers\' spend up exactly, as usage does, not with floating-point dust', async () => {
  const labels = { provider: 'kling-legacy', account: 'default', model: 'kling-v3' };
  const one = new GatewayMetrics();
  const two = new GatewayMetrics();
  // One task each: 4.2 units ($0.588) and 2.1 units ($0.294); as floats they add up to 6.300000000000001 and 0.8819999999999999.
  one.creditsSpent.inc(labels, 4.2);
  one.currencySpent.inc({ ...labels, currency: 'USD' }, 0.588);
  two.creditsSpent.inc(labels, 2.1);
  two.currencySpent.inc({ ...labels, currency: 'USD' }, 0.294);
  const primary = new GatewayMetrics();
  primary.reportAcrossWorkers(async () => [await one.snapshot(), await two.snapshot()]);
  const { body } = await primary.exposition();
  expect(body).toMatch(/^kling_gateway_credits_spent_total\{provider="kling-legacy",account="default",model="kling-v3"\} 6\.3$/m);
  expect(body).toMatch(/^kling_gateway_currency_spent_total\{provider="kling-legacy",account="default",model="kling-v3",currency="USD"\} 0\.882$/m);
  // Counted once, not once per worker.
  expect(body.match(/^kling_gateway_credits_spent_total\{/gm)).toHaveLength(1);
});

it('keeps counting what every dead worker counted, series by series, the late one\'s gauges left out', async () => {
  const ledger = new WorkerMetricsLedger();
  // Worker 1 counted 3 creates and 2 failures (labels given in another order), then died.
  const one = worker(3, 4);
  one.httpRequests.inc({ status: '500', route: '/v1/videos', method: 'POST' }, 2);
  for (let index = 0; index < 2; index++) one.httpDuration.observe({ status: '500', route: '/v1/videos', method: 'POST' }, 2);
  ledger.answered(1, await one.snapshot());
  ledger.retire(1);
  // Worker 2 counted 5 creates and a 429 nobody else had, then died too.
  const two = worker(5, 4);
  two.httpRequests.inc({ method: 'POST', route: '/v1/videos', status: '429' });
  for (let index = 0; index < 2; index++) two.httpDuration.observe({ method: 'POST', route: '/v1/videos', status: '500' }, 2);
  ledger.answered(2, await two.snapshot());
  ledger.retire(2);
  // Worker 3 answers this scrape; worker 4 is late, with a circuit it saw open a while ago.
  ledger.answered(3, await worker(1, 6).snapshot());
  const late = worker(0, 7);
  late.setCircuitState('freepik', 'open');
  ledger.answered(4, await late.snapshot());
  const values = await scrape(ledger, [3]);

  expect(values.get(CREATED)).toBe(9);
  // One series, whatever order each worker gave the labels in (the first one's is shown).
  expect(values.get('kling_gateway_http_requests_total{status="500",route="/v1/videos",method="POST"}')).toBe(2);
  expect(values.get('kling_gateway_http_requests_total{method="POST",route="/v1/videos",status="429"}')).toBe(1);
  // A histogram's count and sum stay apart: 4 observations of 2 s.
  expect(values.get('kling_gateway_http_request_duration_seconds_count{status="500",route="/v1/videos",method="POST"}')).toBe(4);
  expect(values.get('kling_gateway_http_request_duration_seconds_sum{status="500",route="/v1/videos",method="POST"}')).toBe(8);
  // Gauges only from the worker that answered.
  expect(values.get('kling_gateway_tasks_queued')).toBe(6);
  expect(values.has('kling_gateway_circuit_state{provider="freepik"}')).toBe(false);
});
