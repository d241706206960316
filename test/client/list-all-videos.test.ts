/**
 * `listAllVideos` over a real gateway while the app goes on creating: every task that existed when
 * it began comes once, newest first, with no gap and no repeat (the cursor is a position, not an
 * offset, so tasks made meanwhile land before it), and it stops after the last page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient, GatewayUnreachableError } from '../../packages/client/src/index.js';
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

  it('a listing that failed says the cursor of the page it was on, and one started from it goes on from there', async () => {
    const client = new GatewayClient({ baseUrl: live.url, apiKey: OTHER_TENANT_KEY });
    const all: string[] = [];
    for await (const task of client.listAllVideos()) all.push(task.id);
    expect(all.length).toBeGreaterThanOrEqual(5);

    // The third page's request fails (a dropped connection).
    let listed = 0;
    const failThird: typeof globalThis.fetch = (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      if (new URL(url).pathname === '/v1/videos' && ++listed === 3) return Promise.reject(new TypeError('fetch failed'));
      return fetch(input, init);
    };
    const failing = new GatewayClient({ baseUrl: live.url, apiKey: OTHER_TENANT_KEY, fetch: failThird });
    const listing = failing.listAllVideos({ limit: 2 });
    expect(listing.cursor).toBeUndefined();
    const seen: string[] = [];
    const error = await (async () => {
      for await (const task of listing) seen.push(task.id);
    })().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(GatewayUnreachableError);
    expect(seen).toEqual(all.slice(0, 4));
    // The cursor the third page is asked with: the second page's next_cursor.
    const second = await client.listVideos({ limit: 2, cursor: (await client.listVideos({ limit: 2 })).next_cursor! });
    expect(listing.cursor).toBe(second.next_cursor);

    const rest: string[] = [];
    for await (const task of client.listAllVideos({ limit: 2, cursor: listing.cursor })) rest.push(task.id);
    expect([...seen, ...rest]).toEqual(all);
  });

  it('a loop that stops in the middle of a page finds that page’s cursor: starting there gives the page again, nothing skipped', async () => {
    const client = new GatewayClient({ baseUrl: live.url, apiKey: OTHER_TENANT_KEY });
    const first = await client.listVideos({ limit: 2 });
    const listing = client.listAllVideos({ limit: 2 });
    let count = 0;
    for await (const _task of listing) if (++count === 3) break;
    expect(listing.cursor).toBe(first.next_cursor);
    const again = await client.listVideos({ limit: 2, cursor: listing.cursor });
    expect((await listing.next()).done).toBe(true);
    expect(again.data).toHaveLength(2);
  });
});
