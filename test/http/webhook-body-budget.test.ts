/**
 * The webhook routes take no key, and each may read a body up to the route's limit: the bodies
 * they read at once share a budget (`server.webhook_bodies_max_bytes`), on the hot webhook and on
 * express alike. A webhook that does not fit is refused before its body is read (503 with
 * Retry-After, connection closed), and a body's bytes are given back however its request ends.
 */
import { request as httpRequest, type ClientRequest } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WEBHOOK_BODY_LIMIT } from '../../src/http/webhook-body-budget.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { comparable, headerOf, rawRequest, type RawAnswer } from '../support/raw-answer.js';

const BUDGET = WEBHOOK_BODY_LIMIT;

let gateways: TestGateway[] = [];
const held: ClientRequest[] = [];
afterEach(async () => {
  for (const request of held.splice(0)) request.destroy();
  await Promise.all(gateways.map((gw) => gw.close()));
  gateways = [];
});

async function start(server: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startTestGateway({ config: { server: { webhook_bodies_max_bytes: BUDGET, ...server } } });
  gateways.push(gw);
  return gw;
}

interface Held {
  request: ClientRequest;
  answer: Promise<RawAnswer>;
}

/**
 * A webhook whose body is sent in part and then held: with `length`, a plain one (the hot
 * webhook's); without, a chunked one (express's).
 */
function holdWebhook(gw: TestGateway, length?: number): Held {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (length === undefined) headers['transfer-encoding'] = 'chunked';
  else headers['content-length'] = String(length);
  const request = httpRequest(gw.url, { method: 'POST', path: '/v1/webhooks/freepik', headers, agent: false });
  held.push(request);
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, rawHeaders: response.rawHeaders, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.on('error', reject);
  });
  answer.catch(() => undefined);
  request.write('{"task_id":"');
  return { request, answer };
}

/** Sends the rest of a held body (`x` up to its length, or the end of a chunked one). */
function finish(webhook: Held, length?: number): Promise<RawAnswer> {
  if (length === undefined) webhook.request.end('x"}');
  else webhook.request.end(`${'x'.repeat(length - '{"task_id":"'.length - 2)}"}`);
  return webhook.answer;
}

/** A small plain webhook (the hot webhook's case), or a chunked one (express's). */
const smallWebhook = (gw: TestGateway, chunked = false, body = '{}') =>
  rawRequest(gw.url, '/v1/webhooks/freepik', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(chunked ? { 'transfer-encoding': 'chunked' } : {}) },
    body,
  });

/** Waits until the held bodies are counted: a small webhook is then refused. */
async function untilRefused(gw: TestGateway, chunked = false, body = '{}'): Promise<RawAnswer> {
  let refused: RawAnswer | undefined;
  await vi.waitFor(
    async () => {
      const answer = await smallWebhook(gw, chunked, body);
      expect(answer.status).toBe(503);
      refused = answer;
    },
    { timeout: 5000, interval: 20 },
  );
  return refused!;
}

/** Waits until a small webhook is read again (an unsigned one: 401). */
async function untilAccepted(gw: TestGateway, chunked = false, body = '{}'): Promise<void> {
  await vi.waitFor(async () => expect((await smallWebhook(gw, chunked, body)).status).toBe(401), { timeout: 5000, interval: 20 });
}

const HALF = BUDGET / 2;

describe('the webhook body budget', () => {
  it('refuses a webhook past the budget with 503, Retry-After and a closed connection, and takes webhooks again once the held bodies end', async () => {
    const gw = await start();
    // An unsigned webhook is read and refused for its signature: what a webhook within the budget gets.
    expect((await smallWebhook(gw)).status).toBe(401);
    const first = holdWebhook(gw, HALF);
    const second = holdWebhook(gw, HALF);
    const refused = await untilRefused(gw);
    expect(headerOf(refused, 'content-type')).toContain('application/problem+json');
    expect(Number(headerOf(refused, 'retry-after'))).toBeGreaterThanOrEqual(1);
    expect(headerOf(refused, 'connection')).toBe('close');
    expect(JSON.parse(refused.body)).toMatchObject({ status: 503, type: expect.stringMatching(/retry-later$/) });
    // Express's path counts against the same budget, and refuses the same way.
    const refusedByExpress = await smallWebhook(gw, true);
    expect(refusedByExpress.status).toBe(503);
    // The same answer, bytes and headers (each its own occurrence in `instance`, so its own ETag).
    const occurrenceAside = (answer: RawAnswer) => ({
      body: answer.body.replace(/"instance":"urn:request:[0-9a-f-]{36}"/, '"instance":"…"'),
      headers: comparable(answer).map(([name, value]) => [name, name.toLowerCase() === 'etag' ? '…' : value]),
    });
    expect(occurrenceAside(refusedByExpress)).toEqual(occurrenceAside(refused));
    expect((await finish(first, HALF)).status).toBe(401);
    expect((await finish(second, HALF)).status).toBe(401);
    expect((await smallWebhook(gw)).status).toBe(401);
    expect((await smallWebhook(gw, true)).status).toBe(401);
  });

  it('reads no chunked webhook body past the route limit: 413, and takes webhooks again after it', async () => {
    const gw = await start();
    const answer = await smallWebhook(gw, true, 'x'.repeat(WEBHOOK_BODY_LIMIT + 1));
    expect(answer.status).toBe(413);
    await untilAccepted(gw, true);
  });

  it('counts a chunked body (express) as the whole limit, against the hot webhook too', async () => {
    const gw = await start();
    const chunked = holdWebhook(gw);
    await untilRefused(gw);
    expect((await smallWebhook(gw, true)).status).toBe(503);
    expect((await finish(chunked)).status).toBe(401);
    expect((await smallWebhook(gw)).status).toBe(401);
  });

  it('gives the bytes back when a client goes away mid-body, on either path', async () => {
    const gw = await start();
    const plain = [holdWebhook(gw, HALF), holdWebhook(gw, HALF)];
    await untilRefused(gw);
    for (const webhook of plain) webhook.request.destroy();
    await untilAccepted(gw);
    const chunked = holdWebhook(gw);
    await untilRefused(gw, true);
    chunked.request.destroy();
    await untilAccepted(gw, true);
  });

  it('gives the bytes back for a webhook sent behind one still being answered, when the client goes away', async () => {
    // The second one's answer, queued behind the first, never ends once its connection is gone:
    // the stop gate, which counts answers, would wait for it to the end of the drain.
    const gw = await start({ drain_timeout_ms: 0 });
    // The first webhook's answer waits (a create to Freepik being recorded, as it looks) while the
    // second, on the same connection, is counted at nearly the whole budget (it is read while the
    // first still counts); then the client goes away.
    const waiting: ((submitting: boolean) => void)[] = [];
    const answerFirst = () => waiting.splice(0).forEach((resolve) => resolve(false));
    const spy = vi.spyOn(gw.gateway.store, 'isSubmittingTo' as never).mockImplementation((() => new Promise((resolve) => waiting.push(resolve))) as never);
    try {
      const raw = JSON.stringify({ task_id: 'not-recorded-yet', status: 'COMPLETED' });
      const timestamp = String(Math.floor(gw.clock.now() / 1000));
      const signature = signFreepikWebhook(gw.endpoints.get('freepik')!.webhookSecret!, 'wh_pipelined', timestamp, raw);
      const { hostname, port } = new URL(gw.url);
      const socket = connect(Number(port), hostname);
      socket.on('error', () => undefined);
      socket.write(
        `POST /v1/webhooks/freepik HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nwebhook-id: wh_pipelined\r\n` +
          `webhook-timestamp: ${timestamp}\r\nwebhook-signature: ${signature}\r\nContent-Length: ${Buffer.byteLength(raw)}\r\n\r\n${raw}` +
          `POST /v1/webhooks/freepik HTTP/1.1\r\nHost: g\r\nContent-Length: ${BUDGET - 64}\r\n\r\n{`,
      );
      const probe = JSON.stringify({ pad: 'x'.repeat(100) });
      await untilRefused(gw, false, probe);
      socket.destroy();
      // Back before the first is answered (a store that is slow to answer holds nothing of the second).
      await untilAccepted(gw, false, probe);
    } finally {
      answerFirst();
      spy.mockRestore();
    }
  });

  it('counts a body read whole until its webhook is answered, not only while it arrives', async () => {
    const gw = await start();
    // The webhook's answer waits (a create to Freepik being recorded, as it looks): its body is in
    // memory all that time.
    const waiting: ((submitting: boolean) => void)[] = [];
    const spy = vi.spyOn(gw.gateway.store, 'isSubmittingTo' as never).mockImplementation((() => new Promise((resolve) => waiting.push(resolve))) as never);
    try {
      const raw = JSON.stringify({ task_id: 'not-recorded-yet', status: 'COMPLETED', pad: 'x'.repeat(BUDGET - 200) });
      const timestamp = String(Math.floor(gw.clock.now() / 1000));
      const signature = signFreepikWebhook(gw.endpoints.get('freepik')!.webhookSecret!, 'wh_slow', timestamp, raw);
      const answer = rawRequest(gw.url, '/v1/webhooks/freepik', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-id': 'wh_slow', 'webhook-timestamp': timestamp, 'webhook-signature': signature },
        body: raw,
      });
      await vi.waitFor(() => expect(waiting.length).toBeGreaterThan(0), { timeout: 5000, interval: 10 });
      // Read whole, still being answered: it still counts.
      expect((await smallWebhook(gw, false, JSON.stringify({ pad: 'x'.repeat(400) }))).status).toBe(503);
      waiting.splice(0).forEach((resolve) => resolve(false));
      await answer;
      await untilAccepted(gw, false, JSON.stringify({ pad: 'x'.repeat(400) }));
    } finally {
      waiting.splice(0).forEach((resolve) => resolve(false));
      spy.mockRestore();
    }
  });

  it('gives the bytes back when a body misses its time limit (408), on either path', async () => {
    const gw = await start();
    const plain = [holdWebhook(gw, HALF), holdWebhook(gw, HALF)];
    await untilRefused(gw);
    gw.clock.advance(gw.config.server.body_timeout_ms);
    expect(await Promise.all(plain.map(async (webhook) => (await webhook.answer).status))).toEqual([408, 408]);
    await untilAccepted(gw);
    const chunked = holdWebhook(gw);
    await untilRefused(gw, true);
    gw.clock.advance(gw.config.server.body_timeout_ms);
    expect((await chunked.answer).status).toBe(408);
    await untilAccepted(gw, true);
  });
});
