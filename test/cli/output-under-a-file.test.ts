/**
 * `generate --wait -o dir/fox.mp4` where `dir` is a file (a typo, a name taken) can never save
 * the video: found out before the create, with exit 2 and nothing created, as an existing file
 * without `--force` is, rather than after the video was made and paid for (`EEXIST … mkdir`).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { loopbackServer } from '../support/raw-answer.js';

let server: { base: string; close: () => Promise<void> };
const requests: string[] = [];

beforeAll(async () => {
  server = await loopbackServer((req, res) => {
    req.resume();
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(503, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503 }));
  });
});
afterAll(async () => {
  await server?.close();
});

it.each([['fox.mp4'], ['deeper/fox.mp4'], ['videos/']])('generate -o <a file>/%s exits 2 before anything is sent', async (rest) => {
  const root = mkdtempSync(join(tmpdir(), 'kgw-output-under-file-'));
  writeFileSync(join(root, 'taken'), 'not a directory');
  requests.length = 0;
  const output = join(root, 'taken', rest);
  const result = await runCliCaptured(['generate', 'a fox', '--model', 'kling-v3', '-o', output], {
    env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
    pause: async () => undefined,
  });
  expect(requests).toEqual([]);
  expect([result.code, result.stdout]).toEqual([2, '']);
  expect(result.stderr).toBe(`error: -o ${output} cannot be written: ${join(root, 'taken')} is a file, not a directory (no video was created)\n`);
});
