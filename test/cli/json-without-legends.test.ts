/**
 * With `--json` no table is printed, so the lines that explain one (`~ = estimated …` under
 * `list` and `usage`, `NEEDS: …` under `models`, `queued = …` under `providers`) explain nothing:
 * they are left out, and stderr holds only what is said about the command itself. Without
 * `--json` the tables keep them.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { GatewayClient } from '../../packages/client/src/index.js';
import { runCliCaptured } from '../support/cli-run.js';
import { TENANT_KEY } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';

let live: LiveGateway;
const run = (args: string[]) => runCliCaptured(args, { env: { KLING_GATEWAY_URL: live.url, KLING_GATEWAY_API_KEY: TENANT_KEY } });

beforeAll(async () => {
  live = await startLiveGateway();
  // A Freepik task: its cost stays the price list's estimate (Freepik never reports a charge).
  const client = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY });
  const task = await client.createVideo({ model: 'kling-v3', prompt: 'a fox', duration: 5 });
  await client.waitForVideo(task.id);
});
afterAll(async () => {
  await live.close();
});

const LEGENDS: Record<string, string> = {
  list: '~ = estimated cost',
  usage: '~ = estimated, wholly or in part',
  models: 'NEEDS: fields a request must carry',
  providers: 'queued = tasks waiting for any provider',
};

it.each(Object.keys(LEGENDS))('%s --json prints no legend of the table it does not print; the table keeps it', async (command) => {
  const legend = LEGENDS[command]!;
  const table = await run([command]);
  expect(table.code, table.stderr).toBe(0);
  expect(table.stderr).toContain(legend);

  const json = await run([command, '--json']);
  expect(json.code, json.stderr).toBe(0);
  expect(() => JSON.parse(json.stdout)).not.toThrow();
  expect(json.stderr).not.toContain(legend);
});
