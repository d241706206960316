/**
 * What an account's calls about a task keep out of the answers they hand on: a provider whose
 * callback URL carries the task's token (the legacy API) may quote that URL in any answer about
 * the task, and the token lets anyone post news of the task, so it never reaches an attempt or a log.
 */
import nock from 'nock';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { ProviderConfig } from '../../../src/config/config.js';
import { ManualClock } from '../../../src/core/clock.js';
import { ProviderRuntime } from '../../../src/core/upstream/provider-runtime.js';
import { createLogger } from '../../../src/observability/logger.js';
import { GatewayMetrics } from '../../../src/observability/metrics.js';
import { PROVIDERS } from '../../../src/providers/registry.js';

const BASE = 'https://legacy.upstream.example';
const TOKEN = 'cbt_7Qx2LmN9pRs4TuVw';

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

it("scrubs the task's callback token from a legacy answer that quotes its callback URL", async () => {
  const provider = PROVIDERS.find((candidate) => candidate.id === 'kling-legacy')!;
  const account = new ProviderRuntime({
    provider,
    config: ProviderConfig.parse({}),
    baseUrl: BASE,
    apiKey: 'legacy-key-0123456789',
    simulated: false,
    clock: new ManualClock(Date.UTC(2026, 0, 1)),
    metrics: new GatewayMetrics(),
    logger: createLogger('silent'),
  }).accounts[0]!;
  nock(BASE)
    .get('/v1/videos/text2video/t1')
    .reply(200, { code: 0, data: { task_id: 't1', task_info: { callback_url: `https://gw.example/v1/callbacks/kling-legacy/${TOKEN}` } } });
  const answer = await account
    .clientForTask({ id: 'task_1', callbackToken: TOKEN })
    .send({ method: 'GET', path: '/v1/videos/text2video/t1', operation: 'status' });
  expect(JSON.stringify(answer.data)).not.toContain(TOKEN);
  expect(JSON.stringify(answer.data)).toContain('task_info');
});
