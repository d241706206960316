/**
 * The POST of an outbound webhook on node's http, held to the axios call it replaced: each case
 * runs both against the same receiver, which must see the same request, and both must come back
 * with the same status or fail with the same reason.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import http from 'node:http';
import https from 'node:https';
import { gzipSync } from 'node:zlib';
import axios, { AxiosError } from 'axios';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { postWebhook, type WebhookPostOptions } from '../../../src/core/tasks/webhook-post.js';
import { loopbackServer } from '../../support/raw-answer.js';
import { withClientTimerHeld } from '../../support/client-timer.js';
import { REFUSED_URL } from '../../support/refused-port.js';

type Receiver = (res: ServerResponse) => void;

/** The call `OutboundWebhooks` made before (axios), its failure reduced to the reason it recorded. */
async function viaAxios(url: string, body: string, options: WebhookPostOptions): Promise<number> {
  try {
    const response = await axios.post(url, body, {
      headers: options.headers,
      timeout: options.timeoutMs,
      maxRedirects: 0,
      maxContentLength: 64 * 1024,
      responseType: 'text',
      validateStatus: () => true,
      ...options.agents,
      proxy: false,
    });
    return response.status;
  } catch (error) {
    const cause = error instanceof AxiosError ? (error.cause ?? error) : error;
    throw new Error((cause as Error).message);
  }
}

/** The status node's POST resolves with, as axios's did. */
const statusOf = (url: string, body: string, options: WebhookPostOptions) => postWebhook(url, body, options).then((answer) => answer.status);

const SENDERS = [
  ['node http', statusOf],
  ['axios, as before', viaAxios],
] as const;

const outcomeOf = (sending: Promise<number>) =>
  sending.then(
    (status) => ({ status }),
    (error: Error) => ({ error: error.message }),
  );

describe('posting an outbound webhook', () => {
  const receivers = new Map<string, Receiver>();
  const seen: { method: string; path: string; headers: IncomingHttpHeaders; body: string }[] = [];
  let base: string;
  let close: () => Promise<void>;
  const options: WebhookPostOptions = {
    headers: { 'content-type': 'application/json', 'user-agent': 'kling-gateway-webhooks/0.1', 'webhook-id': 'msg_1', 'webhook-timestamp': '1700000000', 'webhook-signature': 'v1,abc=' },
    timeoutMs: 5_000,
    agents: { httpAgent: new http.Agent(), httpsAgent: new https.Agent() },
  };

  beforeAll(async () => {
    ({ base, close } = await loopbackServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
        (receivers.get(req.url ?? '') ?? ((answer) => answer.writeHead(204).end()))(res);
      });
    }));
  });
  afterAll(() => close());
  beforeEach(() => {
    receivers.clear();
    seen.length = 0;
  });

  /** Both senders' outcomes for one receiver. */
  async function both(path: string, receiver?: Receiver, sendOptions = options) {
    if (receiver) receivers.set(path, receiver);
    const outcomes = [];
    for (const [, send] of SENDERS) outcomes.push(await outcomeOf(send(`${base}${path}`, '{"type":"video.succeeded","data":{"id":"vid_1"}}', sendOptions)));
    return outcomes;
  }

  it('sends the same request: method, path, headers and body', async () => {
    expect(await both('/hooks/in?x=1')).toEqual([{ status: 204 }, { status: 204 }]);
    const [ours, before] = seen;
    expect(ours).toEqual(before);
    expect(ours?.body).toBe('{"type":"video.succeeded","data":{"id":"vid_1"}}');
    expect(ours?.headers).toMatchObject({ 'webhook-id': 'msg_1', 'content-type': 'application/json', accept: 'application/json, text/plain, */*' });
  });

  it.each([200, 302, 404, 503])('comes back with the status %i, following no redirect', async (status) => {
    const outcomes = await both(`/s${status}`, (res) => res.writeHead(status, { location: `${base}/elsewhere` }).end('answer'));
    expect(outcomes).toEqual([{ status }, { status }]);
    expect(seen.map((entry) => entry.path)).toEqual([`/s${status}`, `/s${status}`]);
  });

  it('reads a compressed answer', async () => {
    expect(await both('/gzip', (res) => res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync('ok')))).toEqual([{ status: 200 }, { status: 200 }]);
  });

  // Unlike axios (which failed these, so a delivered event was sent again): the status is the answer.
  it('comes back with the status when the answer body passes 64 KB', async () => {
    receivers.set('/big', (res) => res.writeHead(200).end(Buffer.alloc(256 * 1024, 1)));
    expect(await outcomeOf(statusOf(`${base}/big`, '{}', options))).toEqual({ status: 200 });
    receivers.set('/big-error', (res) => res.writeHead(500).end(Buffer.alloc(256 * 1024, 1)));
    expect(await outcomeOf(statusOf(`${base}/big-error`, '{}', options))).toEqual({ status: 500 });
  });

  it('comes back with the status when the answer body does not end within the time limit', async () => {
    receivers.set('/trickle', (res) => res.writeHead(202).write('still writing'));
    // The time limit runs out only once the answer's start is in: with a real 150 ms, a loaded
    // machine could let it run out before the status came, and the POST failed with no status.
    let answerCame!: () => void;
    const answerIn = new Promise<void>((resolve) => (answerCame = resolve));
    const httpAgent = new http.Agent();
    const connect = httpAgent.createConnection.bind(httpAgent);
    httpAgent.createConnection = (...args: Parameters<typeof connect>) => {
      const socket = connect(...args);
      socket?.on('data', (chunk: Buffer) => {
        if (chunk.toString('latin1').includes('still writing')) setImmediate(answerCame);
      });
      return socket;
    };
    const outcome = await withClientTimerHeld(async (runOut) => {
      const posting = outcomeOf(statusOf(`${base}/trickle`, '{}', { ...options, timeoutMs: 150, agents: { ...options.agents, httpAgent } }));
      await answerIn;
      await runOut(150);
      return posting;
    });
    expect(outcome).toEqual({ status: 202 });
    httpAgent.destroy();
  });

  it('fails when the receiver takes longer than the time limit', async () => {
    const outcomes = await both('/silent', () => undefined, { ...options, timeoutMs: 150 });
    expect(outcomes).toEqual([{ error: 'timeout of 150ms exceeded' }, { error: 'timeout of 150ms exceeded' }]);
  });

  it('fails with the connection error when nobody listens', async () => {
    const outcomes = [];
    for (const [, send] of SENDERS) outcomes.push(await outcomeOf(send(`${REFUSED_URL}/x`, '{}', options)));
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(outcomes[0]).toMatchObject({ error: expect.stringMatching(/ECONNREFUSED/) });
  });
});
