/**
 * Probes and scrapes come every few seconds from every load balancer, orchestrator and
 * Prometheus: `/healthz`, `/readyz` (the Compose file's health check) and `/metrics` write no
 * request log line, while every API request still does.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
const logs = capturedLogs();

beforeAll(async () => {
  gw = await startTestGateway({ logTo: logs.sink });
});
afterAll(async () => {
  await gw.close();
});

it('a probe of /healthz, /readyz or /metrics is answered and writes no log line; an API request after them does', async () => {
  for (const path of ['/healthz', '/readyz', '/metrics']) {
    const answer = await fetch(`${gw.url}${path}`, { headers: { 'x-request-id': `probe${path.replace('/', '-')}` } });
    expect(answer.status).toBe(200);
    await answer.arrayBuffer();
  }
  const read = await fetch(`${gw.url}/v1/videos?limit=1`, { headers: { authorization: `Bearer ${TENANT_KEY}`, 'x-request-id': 'after-the-probes' } });
  expect(read.status).toBe(200);
  await read.arrayBuffer();
  // Lines are written in the order answers finish: once the API request's is there, a probe's would be too.
  await vi.waitFor(() => expect(logs.text()).toContain('"request_id":"after-the-probes"'), { timeout: 10_000 });
  expect(logs.text()).not.toMatch(/"request_id":"probe-/);
});
