/**
 * Prometheus counts a counter's rise from its first sample on: a series that first appears at 1
 * is never counted by rate() or increase(). So every `tasks_finished_total` series a failed task
 * can finish under is exported at 0 before the first one does, that of a task no provider took too
 * (`provider="none"`), or the failure-rate alert and the success-rate panel miss the first of them.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

/** The `tasks_finished_total` series of a scrape, by their labels, with their values. */
async function finishedSeries(gateway: TestGateway): Promise<Map<string, number>> {
  const exposition = (await gateway.request('GET', '/metrics', undefined, {}, null)).body as string;
  return new Map([...exposition.matchAll(/^kling_gateway_tasks_finished_total\{([^}]*)\} (\S+)$/gm)].map(([, labels, value]) => [labels!, Number(value)]));
}

it('a task that waited for a provider slot until its deadline fails under a series exported at 0 from the start', async () => {
  // Freepik takes one task at a time and never finishes it: the next one waits at the gateway.
  gw = await startTestGateway({ config: { providers: { freepik: { max_in_flight: 1 } }, sandbox: { queued_ms: 1_000, processing_ms: 100_000_000 } } });
  const routing = { providers: ['freepik'] };
  await gw.create({ model: 'kling-v3', prompt: 'holds the slot', duration: 5, routing });
  const waiting = await gw.create({ model: 'kling-v3', prompt: 'waits for it', duration: 5, routing });
  expect(waiting.body).toMatchObject({ status: 'queued', provider: null });
  const before = await finishedSeries(gw);

  const failed = await gw.finish(waiting.body.id, 60_000);
  expect(failed).toMatchObject({ status: 'failed', provider: null, error: { code: 'timeout' } });

  const after = await finishedSeries(gw);
  const series = 'provider="none",model="kling-v3",status="failed",error_code="timeout"';
  expect(after.get(series)).toBe(1);
  expect(before.get(series), 'the series was exported at 0 before the task failed').toBe(0);
});
