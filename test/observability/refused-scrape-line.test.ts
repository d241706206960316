/**
 * Probes and scrapes (`/healthz`, `/readyz`, `/metrics`) get no log line each: they come every few
 * seconds. A scrape refused for its token is no scrape: someone without the token asked for the
 * figures (spend by provider and model), and its line says so, found by its request id.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

const METRICS_TOKEN = 'scrape-token-0123456789';
let gw: TestGateway;
const logs = capturedLogs();
const requestLines = () =>
  logs
    .text()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, any>)
    .filter((line) => line.msg === 'request completed');
beforeAll(async () => {
  gw = await startTestGateway({ logTo: logs.sink, config: { server: { metrics_token: METRICS_TOKEN } } });
});
afterAll(async () => {
  await gw.close();
});

it('a scrape with the token and probes get no line; a scrape refused for its token gets one', async () => {
  expect((await gw.request('GET', '/metrics', undefined, { 'x-request-id': 'req-scrape' }, METRICS_TOKEN)).status).toBe(200);
  expect((await gw.request('GET', '/healthz', undefined, { 'x-request-id': 'req-probe' }, null)).status).toBe(200);
  const refused = await gw.request('GET', '/metrics', undefined, { 'x-request-id': 'req-scrape-refused' }, 'a-guessed-token');
  expect(refused.status).toBe(401);
  const lines = requestLines();
  expect(lines.filter((line) => line.request_id === 'req-scrape' || line.request_id === 'req-probe')).toEqual([]);
  expect(lines.filter((line) => line.request_id === 'req-scrape-refused')).toMatchObject([{ level: 'warn', req: { method: 'GET', url: '/metrics' }, res: { status: 401 } }]);
  expect(logs.text()).not.toContain(METRICS_TOKEN);
});
