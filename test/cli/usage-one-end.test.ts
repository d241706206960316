/**
 * `usage` with only `--from` (or only `--to`) past the other end's default (the end of today, the
 * 1st of this month) is a command line to fix, as `--from` not before `--to` is: exit 2 naming
 * the flag given and the one to add, not the gateway's 400 on its query parameter (exit 3, "the
 * gateway refused the request", telling to "give to too").
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { TENANT_KEY } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';

let live: LiveGateway;
const run = (args: string[]) => runCliCaptured(args, { env: { KLING_GATEWAY_URL: live.url, KLING_GATEWAY_API_KEY: TENANT_KEY } });

beforeAll(async () => {
  live = await startLiveGateway();
});
afterAll(async () => {
  await live.close();
});

it.each([[[]], [['--csv']]])('--from alone after the end of today exits 2 naming --from and --to (%j)', async (extra) => {
  const result = await run(['usage', '--from', '2999-01-01', ...extra]);
  expect([result.code, result.stdout]).toEqual([2, '']);
  expect(result.stderr).toBe('error: --from 2999-01-01 is not before the end of today (UTC), where --to defaults: give --to too\n');
});

it.each([[[]], [['--csv']]])('--to alone before the 1st of this month exits 2 naming --to and --from (%j)', async (extra) => {
  const result = await run(['usage', '--to', '2000-01-01', ...extra]);
  expect([result.code, result.stdout]).toEqual([2, '']);
  expect(result.stderr).toBe('error: --to 2000-01-01 is not after the 1st of this month (UTC), where --from defaults: give --from too\n');
});

it('a period the gateway takes is still reported', async () => {
  const result = await run(['usage', '--from', '2000-01-01']);
  expect(result.code, result.stderr).toBe(0);
});
