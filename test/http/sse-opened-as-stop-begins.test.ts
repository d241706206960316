/**
 * An event stream asked for just before a graceful stop, whose first read of the task is still on
 * its way when the stop ends every watch. Before, the gateway answered it `200` with no
 * `Content-Type` and an empty body: no event stream (a browser's EventSource gives up for good on
 * that), and no word that the gateway is stopping. It gets what any request to a stopping gateway
 * gets: `503` with `Retry-After` and `Connection: close`, so it opens the stream again elsewhere.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close().catch(() => undefined);
  gw = undefined;
});

it('answers 503 with Retry-After to a stream whose opening the stop caught, not an empty 200', async () => {
  gw = await startTestGateway({ config: { sandbox: { processing_ms: 600_000 } } });
  const id = (await gw.create({ model: 'kling-v3', prompt: 'opened during a deploy', duration: 5 })).body.id as string;

  // The stream's first read of the task is held until the stop has ended every watch.
  const tasks = gw.gateway.engine.tasks;
  const get = tasks.get.bind(tasks);
  let readReached!: () => void;
  const reading = new Promise<void>((resolve) => (readReached = resolve));
  let letReadGo!: () => void;
  const held = new Promise<void>((resolve) => (letReadGo = resolve));
  tasks.get = async (taskId) => {
    readReached();
    await held;
    return get(taskId);
  };
  const service = gw.gateway.service;
  const endWatches = service.endWatches.bind(service);
  let watchesEnded!: () => void;
  const ended = new Promise<void>((resolve) => (watchesEnded = resolve));
  service.endWatches = () => {
    endWatches();
    watchesEnded();
  };

  const answer = fetch(`${gw.url}/v1/videos/${id}/events`, { headers: { authorization: `Bearer ${TENANT_KEY}` } }).then(async (response) => ({
    status: response.status,
    headers: response.headers,
    body: await response.text(),
  }));
  await reading;
  const stopping = gw.gateway.close();
  await ended;
  letReadGo();
  const { status, headers, body } = await answer;
  await stopping;
  gw = undefined;

  expect(status).toBe(503);
  expect(headers.get('content-type')).toContain('application/problem+json');
  expect(Number(headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  expect(headers.get('connection')).toBe('close');
  expect(JSON.parse(body).detail).toMatch(/stopping/);
});
