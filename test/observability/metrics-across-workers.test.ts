/**
 * A scrape answered by one of several workers reports them all: counters and histograms added
 * up, gauges read from the store (the same in every worker) once, circuits as the worst any
 * worker sees; without the others' answers it reports its own.
 */
import { expect, it } from 'vitest';
import { GatewayMetrics } from '../../src/observability/metrics.js';

function value(text: string, line: string): number | undefined {
  const found = text.split('\n').find((each) => each.startsWith(line + ' '));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

it('adds up counters, keeps store-read gauges once and circuits at their worst', async () => {
  const one = new GatewayMetrics();
  const two = new GatewayMetrics();
  one.httpRequests.inc({ method: 'POST', route: '/v1/videos', status: '202' }, 3);
  two.httpRequests.inc({ method: 'POST', route: '/v1/videos', status: '202' }, 2);
  one.httpDuration.observe({ method: 'POST', route: '/v1/videos', status: '202' }, 0.004);
  two.httpDuration.observe({ method: 'POST', route: '/v1/videos', status: '202' }, 0.2);
  // Both workers read the same queue from the store just before the scrape.
  let storeQueue = 4;
  for (const metrics of [one, two]) metrics.onScrape(async () => void metrics.tasksQueued.set(storeQueue));
  one.setCircuitState('freepik', 'closed');
  two.setCircuitState('freepik', 'open');
  one.reportAcrossWorkers(async () => [await one.snapshot(), await two.snapshot()]);

  storeQueue = 7;
  const { body, contentType } = await one.exposition();
  expect(contentType).toContain('text/plain');
  expect(value(body, 'kling_gateway_http_requests_total{method="POST",route="/v1/videos",status="202"}')).toBe(5);
  expect(value(body, 'kling_gateway_http_request_duration_seconds_count{method="POST",route="/v1/videos",status="202"}')).toBe(2);
  expect(value(body, 'kling_gateway_tasks_queued')).toBe(7);
  expect(value(body, 'kling_gateway_circuit_state{provider="freepik"}')).toBe(1);
});

it('answers with its own metrics when no other worker answered in time', async () => {
  const alone = new GatewayMetrics();
  alone.httpRequests.inc({ method: 'GET', route: '/healthz', status: '200' });
  alone.reportAcrossWorkers(async () => []);
  const { body } = await alone.exposition();
  expect(value(body, 'kling_gateway_http_requests_total{method="GET",route="/healthz",status="200"}')).toBe(1);
});
