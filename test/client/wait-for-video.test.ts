/**
 * `waitForVideo` as an app meets its ends, against a running gateway: a video that fails is the
 * answer (a task whose status says so), never an error of the wait; and the caller's own
 * `AbortSignal` ends a wait whose poll the gateway holds, with the caller's own reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '../../packages/client/src/index.js';
import { TENANT_KEY } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';

const body = { model: 'kling-v3', prompt: 'a fox that will not be', duration: 5 } as const;

describe('waitForVideo', () => {
  let live: LiveGateway;
  let client: GatewayClient;

  beforeAll(async () => {
    live = await startLiveGateway();
    client = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY });
  });
  afterAll(async () => {
    await live.close();
  });

  it.each(['auto', 'poll'] as const)('a video that fails is returned as the failed task (transport %s), not thrown', async (transport) => {
    live.simulator('freepik').setOutcome('fail');
    const created = await client.createVideo(body);
    const seen: string[] = [];
    const ended = await client.waitForVideo(created.id, { timeoutMs: 15_000, transport, pollWindowSeconds: 2, onUpdate: (task) => seen.push(task.status) });
    expect(ended).toMatchObject({ id: created.id, status: 'failed', error: { code: 'provider_error' } });
    expect(seen.at(-1)).toBe('failed');
  });

  it("the caller's abort ends a wait while its poll is held, with the caller's reason", async () => {
    const created = await client.createVideo({ ...body, prompt: 'a fox waited for' });
    const polled: string[] = [];
    const held = new GatewayClient({
      baseUrl: live.url,
      apiKey: TENANT_KEY,
      // No answer limit of the client's own: only the caller's signal can end the held poll.
      timeoutMs: 0,
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        if (!url.includes('?wait=')) return fetch(input, init);
        polled.push(url);
        const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
        return new Promise<Response>((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }));
      },
    });
    const controller = new AbortController();
    const waiting = held.waitForVideo(created.id, { timeoutMs: 60_000, transport: 'poll', signal: controller.signal }).catch((error: unknown) => error);
    await expect.poll(() => polled.length).toBe(1);
    const reason = new DOMException('the user closed the page', 'AbortError');
    controller.abort(reason);
    expect(await waiting).toBe(reason);
  });
});
