/**
 * `listAllVideos` over a real gateway while the app goes on creating: every task that existed when
 * it began comes once, newest first, with no gap and no repeat (the cursor is a position, not an
 * offset, so tasks made meanwhile land before it), and it stops after the last page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '../../packages/client/src/index.js';
import { OTHER_TENANT_KEY } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';

const body = { model: 'kling-v3', prompt: 'paging while creating', duration: 5 } as const;

describe('listAllVideos while tasks are created', () => {
  let live: LiveGateway;

  beforeAll(async () => {
    live = await startLiveGateway();
  });
  afterAll(async () => {
    await live.close();
  });

  it('yields each task there was once, newest first, and stops at the end', async () => {
    const client = new GatewayClient({ baseUrl: live.url, apiKey: OTHER_TENANT_KEY });
    const existing: string[] = [];
    for (let index = 0; index < 5; index += 1) existing.unshift((await client.createVideo({ ...body, prompt: `${body.prompt} ${index}` })).id);

    const pages: string[] = [];
    const fetchPages: typeof globalThis.fetch = (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      if (new URL(url).pathname === '/v1/videos' && (input instanceof Request ? input.method : init?.method ?? 'GET') === 'GET') pages.push(url);
      return fetch(input, init);
    };
    const paging = new GatewayClient({ baseUrl: live.url, apiKey: OTHER_TENANT_KEY, fetch: fetchPages });
    const seen: string[] = [];
    for await (const task of paging.listAllVideos({ limit: 2 })) {
      seen.push(task.id);
      // Another part of the app creates meanwhile.
      await client.createVideo({ ...body, prompt: `made while paging ${seen.length}` });
    }
    expect(seen).toEqual(existing);
    // Pages of 2, 2 and 1: the last has no next_cursor, and nothing is asked after it.
    expect(pages).toHaveLength(3);
  });
});
