/**
 * The test gateway logs as production does: every configured secret and every upstream key is
 * scrubbed from each line it writes, so a test reading the logs sees what an operator would.
 */
import { afterEach, expect, it } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { TENANT_KEY, TENANT_WEBHOOK_SECRET, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

it('scrubs configured secrets and upstream keys from the lines it writes, as the production logger does', async () => {
  const logs = capturedLogs();
  gw = await startTestGateway({ logTo: logs.sink });
  const upstreamKey = gw.endpoints.get('kling3api')!.apiKey;
  // Text the gateway did not write itself (an upstream answer, a webhook body) may echo a secret back.
  gw.gateway.engine.logger.warn({ upstream: `rejected ${upstreamKey}; tenant key ${TENANT_KEY}` }, `webhook secret ${TENANT_WEBHOOK_SECRET} echoed`);

  const line = logs.text();
  expect(line).toContain('[redacted]');
  for (const secret of [upstreamKey, TENANT_KEY, TENANT_WEBHOOK_SECRET]) expect(line.includes(secret), `the log shows ${secret.slice(0, 4)}…`).toBe(false);
});
