/**
 * A gateway URL with a space or tab around it (a `.env` line `KLING_GATEWAY_URL=http://… `, a
 * value pasted with its trailing blank) is the same URL, as a URL parser reads it: it ended the
 * command with exit 1 ("a bug": `Failed to parse URL from http://127.0.0.1:8080 /v1/videos`), or
 * with a trailing `/ ` a 404 for the path `/%20/v1/videos`.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { GatewayClient } from '../../packages/client/src/index.js';
import { runCliCaptured } from '../support/cli-run.js';
import { loopbackServer } from '../support/raw-answer.js';

let server: { base: string; close: () => Promise<void> };
const paths: string[] = [];

beforeAll(async () => {
  server = await loopbackServer((request, response) => {
    request.resume();
    paths.push(new URL(request.url ?? '/', 'http://x').pathname);
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [], next_cursor: null }));
  });
});
afterAll(async () => {
  await server?.close();
});

it.each([' ', '/ ', '\t', '/\t '])('the client reads a base URL followed by %j as the URL', async (tail) => {
  paths.length = 0;
  const client = new GatewayClient({ baseUrl: `${server.base}${tail}`, apiKey: 'test-key-123' });
  expect(client.baseUrl).toBe(server.base);
  await expect(client.listVideos()).resolves.toMatchObject({ data: [] });
  expect(paths).toEqual(['/v1/videos']);
});

it.each([' ', '/ '])('list with KLING_GATEWAY_URL followed by %j lists the tasks', async (tail) => {
  paths.length = 0;
  const result = await runCliCaptured(['list'], { env: { KLING_GATEWAY_URL: `${server.base}${tail}`, KLING_GATEWAY_API_KEY: 'test-key-123' } });
  expect(result.stderr).toBe('');
  expect([result.code, result.stdout]).toEqual([0, 'no tasks\n']);
  expect(paths).toEqual(['/v1/videos']);
});
