/**
 * A create whose answer is lost (the connection dropped, the gateway restarting, a 5xx, no answer
 * in time) may have made the video. `createVideo` always sends an `Idempotency-Key` — the caller's,
 * or one it makes — and the error it throws names that key, so sending the create again with it
 * gets that video instead of making (and paying for) a second one.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  CreateAbortedError,
  GatewayClient,
  GatewayError,
  GatewayUnreachableError,
  IDEMPOTENCY_KEY_IN_PROGRESS,
  IDEMPOTENCY_KEY_REUSED,
  keyReused,
  keyStillInProgress,
} from '../../packages/client/src/index.js';

const body = { model: 'kling-v3', prompt: 'a fox', duration: 5 } as const;
const task = { id: 'vid_made_once', object: 'video', status: 'queued' };

/** A fetch that answers each create as `answers` says, in turn, and records the keys sent. */
function gateway(answers: (() => Response)[]) {
  const keys: (string | null)[] = [];
  const fetch = async (input: Request | string | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    if (request.method === 'POST' && new URL(request.url).pathname === '/v1/videos') {
      keys.push(request.headers.get('idempotency-key'));
      const answer = answers.shift();
      if (!answer) throw new Error('more creates than expected');
      return answer();
    }
    throw new Error(`unexpected ${request.method} ${request.url}`);
  };
  return { keys, client: new GatewayClient({ baseUrl: 'http://gateway.test', apiKey: 'test-key-123', fetch: fetch as typeof globalThis.fetch }) };
}

const dropped = (): Response => {
  throw new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });
};
const accepted = () => new Response(JSON.stringify(task), { status: 202, headers: { 'content-type': 'application/json' } });
const stopping = () =>
  new Response(JSON.stringify({ type: 'about:blank', title: 'Retry later', status: 503, detail: 'the gateway is stopping' }), {
    status: 503,
    headers: { 'content-type': 'application/problem+json', 'retry-after': '2' },
  });

describe('createVideo and a lost answer', () => {
  it('sends an Idempotency-Key even when the caller gives none, a new one for each create', async () => {
    const { keys, client } = gateway([accepted, accepted]);
    await client.createVideo(body);
    await client.createVideo(body);
    expect(keys).toHaveLength(2);
    for (const key of keys) expect(key).toMatch(/^[\x21-\x7e]{16,255}$/);
    expect(keys[0]).not.toBe(keys[1]);
  });

  it('a dropped connection names the key sent, and the create sent again with it carries the same key', async () => {
    const { keys, client } = gateway([dropped, accepted]);
    const lost = await client.createVideo(body).catch((error: unknown) => error);
    expect(lost).toBeInstanceOf(GatewayUnreachableError);
    const key = (lost as GatewayUnreachableError).idempotencyKey;
    expect(key).toBe(keys[0]);
    await expect(client.createVideo(body, { idempotencyKey: key })).resolves.toMatchObject({ id: 'vid_made_once' });
    expect(keys).toEqual([key, key]);
  });

  it('a 5xx names the key too; the caller\'s own key is the one named', async () => {
    const { client } = gateway([stopping]);
    const error = await client.createVideo(body, { idempotencyKey: 'order-42' }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(GatewayError);
    expect([(error as GatewayError).status, (error as GatewayError).idempotencyKey]).toEqual([503, 'order-42']);
  });

  it('the caller\'s own abort of a create on its way names the key too, under the abort\'s own name and with its reason', async () => {
    // A gateway that takes the create and has not answered when the caller's signal fires.
    const keys: (string | null)[] = [];
    const fetch = (input: Request | string | URL, init?: RequestInit) => {
      const request = input instanceof Request ? input : new Request(input, init);
      keys.push(request.headers.get('idempotency-key'));
      const signal = init?.signal ?? request.signal;
      return new Promise<Response>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    };
    const client = new GatewayClient({ baseUrl: 'http://gateway.test', apiKey: 'test-key-123', fetch: fetch as typeof globalThis.fetch });
    const controller = new AbortController();
    const aborted = client.createVideo(body, { signal: controller.signal }).catch((thrown: unknown) => thrown);
    await vi.waitFor(() => expect(keys).toHaveLength(1), { timeout: 10_000 });
    const reason = new DOMException('the caller stopped waiting', 'TimeoutError');
    controller.abort(reason);
    const error = (await aborted) as CreateAbortedError;
    expect(error).toBeInstanceOf(CreateAbortedError);
    // Code that tells a timeout or an abort by its name goes on doing so.
    expect([error.name, error.cause, error.idempotencyKey]).toEqual(['TimeoutError', reason, keys[0]]);
    expect(error.message).toContain(keys[0]);
  });

  it('an error of another call has no idempotencyKey at all (logged, it would read as a create)', async () => {
    const { client } = gateway([]);
    const error = await client.getVideo('vid_x').catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(GatewayUnreachableError);
    expect(Object.keys(error as object)).not.toContain('idempotencyKey');
    expect(Object.keys(new GatewayError(503, { type: 'about:blank', title: 'Retry later', status: 503 }, null))).not.toContain('idempotencyKey');
  });
});

describe("createVideo's two Idempotency-Key 409s, told apart by type", () => {
  const problem = (type: string, detail: string, headers: Record<string, string> = {}) => () =>
    new Response(JSON.stringify({ type, title: 'Conflict', status: 409, detail }), {
      status: 409,
      headers: { 'content-type': 'application/problem+json', ...headers },
    });
  const inProgress = problem('https://kling-gateway.dev/problems/idempotency-key-in-progress', 'still being submitted', { 'retry-after': '7' });
  const reused = problem('https://kling-gateway.dev/problems/idempotency-key-reused', 'used with a different request body');
  const olderGateways = problem('https://kling-gateway.dev/problems/conflict', 'A request with this Idempotency-Key is still being submitted; retry shortly.');

  it('still in progress: send the same create again after retryAfterSeconds', async () => {
    const { client } = gateway([inProgress]);
    const error = await client.createVideo(body, { idempotencyKey: 'order-9' }).catch((failure: unknown) => failure);
    expect([keyStillInProgress(error), keyReused(error)]).toEqual([true, false]);
    expect(error).toMatchObject({ status: 409, retryAfterSeconds: 7, idempotencyKey: 'order-9', problem: { type: IDEMPOTENCY_KEY_IN_PROGRESS } });
  });

  it('reused with another body: not in progress, even on a resend', async () => {
    const { client } = gateway([reused]);
    const error = await client.createVideo(body).catch((failure: unknown) => failure);
    expect([keyReused(error), keyStillInProgress(error), keyStillInProgress(error, true)]).toEqual([true, false, false]);
    expect(error).toMatchObject({ status: 409, retryAfterSeconds: null, problem: { type: IDEMPOTENCY_KEY_REUSED } });
  });

  it("an older gateway's generic 409 is in progress only on a resend (same key, same body), whatever its detail says", async () => {
    const { client } = gateway([olderGateways]);
    const error = await client.createVideo(body).catch((failure: unknown) => failure);
    expect([keyStillInProgress(error), keyStillInProgress(error, true), keyReused(error)]).toEqual([false, true, false]);
  });
});
