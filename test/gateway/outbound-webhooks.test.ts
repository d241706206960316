import { createHmac } from 'node:crypto';
import dns from 'node:dns';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { OTHER_TENANT_KEY, TENANT_WEBHOOK_SECRET, startTestGateway, type TestGateway } from '../support/harness.js';
import { REFUSED_PORT } from '../support/refused-port.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';

interface Received {
  headers: Record<string, string>;
  body: string;
}

/** A local receiver answering with the given statuses in turn (then 200). */
async function receiver(statuses: number[] = []): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = statuses.shift() ?? 200;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received, server };
}

/** A receiver (kept in `server`) answering each `[status, Retry-After]` in turn, then 200; the requests it got. */
async function throttlingReceiver(answers: [number, string][]): Promise<{ url: string; received: IncomingHttpHeaders[] }> {
  const received: IncomingHttpHeaders[] = [];
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.push(req.headers);
      const answer = answers.shift();
      if (answer === undefined) return void res.end();
      res.writeHead(answer[0], { 'retry-after': answer[1] }).end();
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received };
}

let gw: TestGateway;
let server: Server | undefined;
afterEach(async () => {
  await gw?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

const request = { model: 'kling-v3', prompt: 'a lantern festival', duration: 5, routing: { providers: ['kling3api'] } };

/**
 * A task (its job running ten minutes) whose webhook events go to a receiver answering `answers`
 * in turn, then 200, on `gw`; back once the first try of `video.processing` was answered.
 * `delivery()` reads that delivery as the API shows it.
 */
async function firstTryAnswered(answers: [number, string][]) {
  const { url, received } = await throttlingReceiver(answers);
  gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 600_000 } } });
  const created = await gw.create({ ...request, webhook_url: url });
  await gw.gateway.runOnce();
  await gw.advanceUntil(async () => received.length >= 1, 100);
  const delivery = async () => (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data[0];
  return { received, delivery };
}

describe('outbound webhooks (Standard Webhooks)', () => {
  it('sends only task events the OpenAPI document describes (its webhooks), each body valid by the schema given there', async () => {
    const target = await receiver();
    server = target.server;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()) });
    const succeeding = await gw.create({ ...request, webhook_url: target.url, metadata: { order: '42' } });
    await gw.finish(succeeding.body.id);
    gw.simulator('kling3api').setOutcome('fail');
    const failing = await gw.create({ ...request, webhook_url: target.url });
    await gw.finish(failing.body.id);
    await gw.advanceUntil(async () => target.received.length >= 4, 100);

    const document = (await (await fetch(`${gw.url}/openapi.json`)).json()) as {
      components: Record<string, unknown>;
      webhooks?: Record<string, { post?: { requestBody?: { content?: Record<string, { schema: unknown }> } } }>;
    };
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    (addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020)(ajv);
    ajv.addSchema({ $id: 'gateway', components: document.components });
    const rebase = (node: unknown): unknown =>
      Array.isArray(node)
        ? node.map(rebase)
        : node && typeof node === 'object'
          ? Object.fromEntries(Object.entries(node).map(([key, value]) => [key, key === '$ref' && typeof value === 'string' ? `gateway${value}` : rebase(value)]))
          : node;
    const drift: string[] = [];
    const types = target.received.map((delivery) => (JSON.parse(delivery.body) as { type: string }).type);
    expect(types).toEqual(expect.arrayContaining(['video.processing', 'video.succeeded', 'video.failed']));
    for (const delivery of target.received) {
      const event: unknown = JSON.parse(delivery.body);
      const type = (event as { type: string }).type;
      const schema = document.webhooks?.[type]?.post?.requestBody?.content?.['application/json']?.schema;
      if (!schema) {
        drift.push(`${type}: not in the document's webhooks`);
        continue;
      }
      const validate = ajv.compile(rebase(schema) as object);
      if (!validate(event)) drift.push(`${type}: ${ajv.errorsText(validate.errors)}`);
    }
    expect(drift).toEqual([]);
  });

  it('delivers signed video.processing and video.succeeded events with the task', async () => {
    const target = await receiver();
    server = target.server;
    // Real time: the receiver verifies timestamps against its own clock.
    gw = await startTestGateway({ clock: new ManualClock(Date.now()) });
    const created = await gw.create({ ...request, webhook_url: target.url, metadata: { order: '42' } });
    await gw.finish(created.body.id);
    await gw.advanceUntil(async () => target.received.length >= 2, 100);

    const verifier = new Webhook(TENANT_WEBHOOK_SECRET);
    const events = target.received.map((delivery) => verifier.verify(delivery.body, delivery.headers) as any);
    expect(events.map((event) => event.type)).toEqual(['video.processing', 'video.succeeded']);
    expect(events[1].data).toMatchObject({ id: created.body.id, status: 'succeeded', metadata: { order: '42' } });
    expect(events[1].data.outputs[0].url).toMatch(/\.mp4$/);
    expect(target.received[0]!.headers['webhook-id']).toMatch(/^msg_/);
    expect(() => new Webhook('whsec_' + Buffer.from('other').toString('base64')).verify(target.received[0]!.body, target.received[0]!.headers)).toThrow();

    const deliveries = await gw.gateway.store.listDeliveries(created.body.id);
    expect(deliveries.map((d) => [d.event_type, d.status, d.attempts, d.last_status])).toEqual([
      ['video.processing', 'delivered', 1, 200],
      ['video.succeeded', 'delivered', 1, 200],
    ]);
  });

  it('signs with every secret of a tenant rotating its own (one v1 signature each), so a receiver holding either one verifies', async () => {
    const target = await receiver();
    server = target.server;
    const next = `whsec_${Buffer.from('acme next signing key').toString('base64')}`;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { tenants: { acme: { webhook_secret: [next, TENANT_WEBHOOK_SECRET] } } } });
    const created = await gw.create({ ...request, webhook_url: target.url });
    await gw.finish(created.body.id);
    await gw.advanceUntil(async () => target.received.length >= 2, 100);

    for (const { headers, body } of target.received) {
      // New first, as configured; each verifies alone with the real library, as a receiver would.
      expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/=]+ v1,[A-Za-z0-9+/=]+$/);
      for (const secret of [next, TENANT_WEBHOOK_SECRET]) expect((new Webhook(secret).verify(body, headers) as any).data.id).toBe(created.body.id);
      expect(() => new Webhook(`whsec_${Buffer.from('a retired key').toString('base64')}`).verify(body, headers)).toThrow();
    }
    expect(target.received.map(({ body }) => JSON.parse(body).type)).toEqual(['video.processing', 'video.succeeded']);
  });

  it('signs exactly the bytes it sends, as a receiver written from the Standard Webhooks text alone checks them', async () => {
    const target = await receiver();
    server = target.server;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()) });
    // Not ASCII: the signature covers the UTF-8 bytes on the wire, not characters.
    const created = await gw.create({ ...request, prompt: 'lanternes — 灯笼节', webhook_url: target.url, metadata: { note: 'café ☕' } });
    await gw.finish(created.body.id);
    await gw.advanceUntil(async () => target.received.length >= 2, 100);

    const key = Buffer.from(TENANT_WEBHOOK_SECRET.slice('whsec_'.length), 'base64');
    for (const { headers, body } of target.received) {
      expect(headers['content-type']).toBe('application/json');
      expect(headers['webhook-timestamp']).toMatch(/^\d+$/);
      const signed = Buffer.concat([Buffer.from(`${headers['webhook-id']}.${headers['webhook-timestamp']}.`), Buffer.from(body, 'utf8')]);
      const expected = `v1,${createHmac('sha256', key).update(signed).digest('base64')}`;
      expect(headers['webhook-signature']!.split(' ')).toContain(expected);
      const event = JSON.parse(body);
      // The event's time is the change's: what a receiver orders one task's events by.
      expect(event.timestamp).toBe(event.data.updated_at);
    }
    const last = JSON.parse(target.received.at(-1)!.body);
    expect(last.type).toBe('video.succeeded');
    expect(last.data).toEqual((await gw.get(created.body.id)).body);
  });

  it('sends each event with the task as it reads after the change, attempts included', async () => {
    const target = await receiver();
    server = target.server;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 600_000 } } });
    for (const provider of ['kling3api', 'freepik', 'kling-legacy']) {
      target.received.length = 0;
      const created = await gw.create({ ...request, routing: { providers: [provider] }, webhook_url: target.url });
      // Freepik and the legacy API take the task into their queue first (`queued`, which sends no
      // event): the first event comes when the gateway learns it runs (Freepik's webhook; for the
      // legacy API, whose progress callbacks are not believed, the safety poll a minute on).
      await gw.advanceUntil(async () => target.received.length >= 1, 1_000, 90);
      const event = JSON.parse(target.received[0]!.body);
      const read = (await gw.get(created.body.id)).body;
      expect(event.type, provider).toBe('video.processing');
      // The provider accepted the attempt in the same write that made the task processing.
      expect(event.data.attempts, provider).toEqual(read.attempts);
      expect(event.data.attempts[0]).toMatchObject({ provider, outcome: 'accepted' });
    }
  });

  it('retries with back-off when the receiver fails, and records every attempt', async () => {
    const target = await receiver([500, 503]);
    server = target.server;
    // The task stays processing: only its first event is delivered here.
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 600_000 } } });
    const created = await gw.create({ ...request, webhook_url: target.url });
    await gw.gateway.runOnce();
    await gw.advanceUntil(async () => target.received.length >= 1, 100);
    let [delivery] = await gw.gateway.store.listDeliveries(created.body.id);
    expect(delivery).toMatchObject({ status: 'pending', attempts: 1, last_status: 500 });
    await gw.advance(5_000);
    [delivery] = await gw.gateway.store.listDeliveries(created.body.id);
    expect(delivery).toMatchObject({ status: 'pending', attempts: 2, last_status: 503 });
    await gw.advance(10_000);
    [delivery] = await gw.gateway.store.listDeliveries(created.body.id);
    expect(delivery).toMatchObject({ status: 'delivered', attempts: 3, last_status: 200 });
    const ids = new Set(target.received.slice(0, 3).map((r) => r.headers['webhook-id']));
    expect(ids.size).toBe(1);
  });

  it.each([
    ['a redirect (not followed)', (res: ServerResponse): void => void res.writeHead(301, { location: 'http://127.0.0.1:9/elsewhere' }).end(), /answered 301/, 301],
    // 2xx only: 300 is the first status that is not a success.
    ['a 300 Multiple Choices', (res: ServerResponse): void => void res.writeHead(300).end(), /answered 300/, 300],
    ['a connection closed without an answer', (res: ServerResponse): void => void res.socket?.destroy(), /socket hang up/, null],
    ['an answer slower than webhooks.timeout_ms', (res: ServerResponse): void => void setTimeout(() => res.end(), 3_000), /timeout of 1000ms exceeded/, null],
  ] as const)('retries %s with the same webhook-id, signed afresh at each try', async (_case, fail, error, lastStatus) => {
    const received: Received[] = [];
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString('utf8') });
        if (received.length === 1) fail(res);
        else res.end();
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    // The time limit is real time, and the try after the failed one must be answered within it: 1 s,
    // not 200 ms, which a loaded machine could outlast (that try then timed out as well).
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 600_000 }, webhooks: { timeout_ms: 1_000 } } });
    const created = await gw.create({ ...request, webhook_url: url });
    await gw.gateway.runOnce();
    await gw.advanceUntil(async () => (await gw.gateway.store.listDeliveries(created.body.id))[0]?.attempts === 1, 100);
    const [failed] = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
    expect(failed).toMatchObject({ status: 'pending', attempts: 1, last_status: lastStatus });
    expect(failed.last_error).toMatch(error);

    await gw.advance(5_000);
    const [delivered] = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
    expect(delivered).toMatchObject({ status: 'delivered', attempts: 2, last_status: 200 });
    expect(received).toHaveLength(2);
    const [first, second] = received as [Received, Received];
    expect(second.headers['webhook-id']).toBe(first.headers['webhook-id']);
    expect(Number(second.headers['webhook-timestamp']) - Number(first.headers['webhook-timestamp'])).toBe(5);
    const verifier = new Webhook(TENANT_WEBHOOK_SECRET);
    for (const { body, headers } of received) expect(() => verifier.verify(body, headers)).not.toThrow();
  });

  it('shows the tenant every delivery of a task through GET /v1/videos/{id}/webhooks, and no one else', async () => {
    const target = await receiver([500]);
    server = target.server;
    const clock = new ManualClock(Date.now());
    gw = await startTestGateway({ clock, config: { sandbox: { processing_ms: 600_000 } } });
    const created = await gw.create({ ...request, webhook_url: target.url });
    await gw.gateway.runOnce();
    await gw.advanceUntil(async () => target.received.length >= 1, 100);

    const failing = await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`);
    expect(failing.status).toBe(200);
    expect(failing.body.data).toHaveLength(1);
    const [first] = failing.body.data;
    expect(first).toMatchObject({
      id: target.received[0]!.headers['webhook-id'],
      type: 'video.processing',
      url: target.url,
      status: 'pending',
      attempts: 1,
      last_status: 500,
      delivered_at: null,
    });
    expect(first.last_error).toMatch(/500/);
    expect(Date.parse(first.next_attempt_at)).toBeGreaterThan(clock.now());

    await gw.advance(5_000);
    const delivered = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data[0];
    expect(delivered).toMatchObject({ status: 'delivered', attempts: 2, last_status: 200, last_error: null, next_attempt_at: null });
    expect(Date.parse(delivered.delivered_at)).toBe(clock.now());

    // Another tenant's task is not found; a task without webhook_url has no deliveries.
    const other = await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`, undefined, {}, OTHER_TENANT_KEY);
    expect(other.status).toBe(404);
    expect(other.body.detail).toContain('not found');
    const plain = await gw.create(request);
    expect((await gw.request<any>('GET', `/v1/videos/${plain.body.id}/webhooks`)).body).toEqual({ data: [] });
    expect((await gw.request<any>('GET', '/v1/videos/vid_nope/webhooks')).status).toBe(404);
  });

  it('counts a 2xx as delivered whatever the receiver writes after it, and never sends that event again', async () => {
    const received: string[] = [];
    server = createServer((req, res) => {
      req.on('data', () => undefined);
      req.on('end', () => {
        received.push(String(req.headers['webhook-id']));
        // An acknowledgement with a large page behind it (a framework's default HTML, a debug dump).
        res.writeHead(200, { 'content-type': 'text/html' }).end(Buffer.alloc(256 * 1024, 'x'));
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 600_000 } } });
    const created = await gw.create({ ...request, webhook_url: url });
    await gw.gateway.runOnce();
    await gw.advanceUntil(async () => (await gw.gateway.store.listDeliveries(created.body.id))[0]?.attempts === 1, 100);
    for (let i = 0; i < 3; i++) await gw.advance(60_000);

    const [delivery] = await gw.gateway.store.listDeliveries(created.body.id);
    expect(delivery).toMatchObject({ status: 'delivered', attempts: 1, last_status: 200, last_error: null });
    expect(received).toHaveLength(1);
  });

  it('retries a receiver whose every address refuses the connection, and says why', async () => {
    // A name with several addresses (IPv4 and IPv6, or a round-robin) is connected to by trying
    // each in turn; all refused, node reports an AggregateError whose message is empty.
    const port = REFUSED_PORT;
    const host = 'hooks.two-addresses.test';
    const resolve = dns.lookup;
    const resolveTwice = ((hostname: string, ...rest: unknown[]) => {
      if (hostname !== host) return (resolve as (...args: unknown[]) => void)(hostname, ...rest);
      const [options, callback] = rest as [{ all?: boolean }, (...args: unknown[]) => void];
      const addresses = [{ address: '127.0.0.1', family: 4 }, { address: '127.0.0.2', family: 4 }];
      if (options.all) callback(null, addresses);
      else callback(null, addresses[0]!.address, 4);
    }) as unknown as typeof dns.lookup;
    const lookup = vi.spyOn(dns, 'lookup').mockImplementation(resolveTwice);
    try {
      gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 600_000 } } });
      const created = await gw.create({ ...request, webhook_url: `http://${host}:${port}/hooks` });
      await gw.gateway.runOnce();
      await gw.advanceUntil(async () => (await gw.gateway.store.listDeliveries(created.body.id))[0]?.attempts === 1, 100);
      const [delivery] = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
      expect(delivery).toMatchObject({ status: 'pending', attempts: 1, last_status: null, delivered_at: null });
      expect(delivery.last_error).toMatch(/ECONNREFUSED/);
    } finally {
      lookup.mockRestore();
    }
  });

  it('gives up after max_attempts and says why', async () => {
    const target = await receiver([500, 500, 500, 500]);
    server = target.server;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 600_000 } } });
    const created = await gw.create({ ...request, webhook_url: target.url });
    for (let i = 0; i < 6; i++) await gw.advance(20_000);
    const [delivery] = await gw.gateway.store.listDeliveries(created.body.id);
    expect(delivery).toMatchObject({ status: 'failed', attempts: 3, last_error: 'answered 500' });
  });

  it('ends a delivery the receiver answers 410 Gone at once, and sends none of the task\'s later events there', async () => {
    // Standard Webhooks: a 410 says the receiver no longer wants these webhooks; stop sending them.
    const target = await receiver([410, 410, 410, 410, 410, 410, 410, 410]);
    server = target.server;
    const clock = new ManualClock(Date.now());
    gw = await startTestGateway({ clock, config: { sandbox: { processing_ms: 30_000 } } });
    const created = await gw.create({ ...request, webhook_url: target.url });
    await gw.gateway.runOnce();
    await gw.advanceUntil(async () => target.received.length >= 1, 100);
    const [gone] = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
    expect(gone).toMatchObject({ type: 'video.processing', status: 'failed', attempts: 1, last_status: 410, next_attempt_at: null, delivered_at: null });
    expect(gone.last_error).toMatch(/410 Gone/);

    // The task ends later: its video.succeeded is recorded, and never sent to the gone URL.
    expect((await gw.finish(created.body.id)).status).toBe('succeeded');
    for (let i = 0; i < 10; i++) await gw.advance(60_000);
    expect(target.received).toHaveLength(1);
    const deliveries = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
    expect(deliveries.map((d: any) => [d.type, d.status, d.attempts, d.last_status, d.next_attempt_at])).toEqual([
      ['video.processing', 'failed', 1, 410, null],
      ['video.succeeded', 'failed', 0, null, null],
    ]);
    expect(deliveries[1].last_error).toMatch(/not sent/);
    expect(deliveries[1].last_error).toContain(gone.id);

    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toContain('kling_gateway_webhook_deliveries_total{event_type="video.processing",outcome="gone"} 1');
    expect(metrics).toContain('kling_gateway_webhook_deliveries_total{event_type="video.succeeded",outcome="not_sent"} 1');
    expect(metrics).not.toMatch(/webhook_deliveries_total\{[^}]*outcome="retrying"\}/);
  });

  it("ends a task's later event waiting behind a retry once the receiver answers that retry 410 Gone, unsent", async () => {
    // The receiver fails video.processing (a 500: retried in 5 s), then answers its retry 410.
    const received: string[] = [];
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const { type } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type: string };
        received.push(type);
        res.statusCode = received.length === 1 ? 500 : 410;
        res.end();
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 2_000 } } });
    const created = await gw.create({ ...request, webhook_url: url });
    await gw.gateway.runOnce();
    await gw.advanceUntil(async () => received.length >= 1, 100);
    // Ends before the processing event's retry is due: video.succeeded waits behind that retry.
    expect((await gw.finish(created.body.id, 500)).status).toBe('succeeded');
    await gw.advanceUntil(async () => received.length >= 2, 100);
    for (let i = 0; i < 10; i++) await gw.advance(60_000);

    expect(received).toEqual(['video.processing', 'video.processing']);
    const deliveries = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
    expect(deliveries.map((d: any) => [d.type, d.status, d.attempts, d.last_status, d.next_attempt_at])).toEqual([
      ['video.processing', 'failed', 2, 410, null],
      ['video.succeeded', 'failed', 0, null, null],
    ]);
    expect(deliveries[1].last_error).toBe(`not sent: the receiver answered 410 Gone to video.processing (${deliveries[0].id}) of this task`);
    const metrics = (await gw.request('GET', '/metrics', undefined, {}, null)).body as string;
    expect(metrics).toContain('kling_gateway_webhook_deliveries_total{event_type="video.succeeded",outcome="not_sent"} 1');
  });

  // Standard Webhooks: 429, 502 and 504 ask the sender to throttle, honouring `Retry-After`.
  it.each([429, 502, 503, 504])('waits the Retry-After a receiver answering %i asks for before the next try, rather than its own 5 s', async (throttled) => {
    const { received, delivery } = await firstTryAnswered([[throttled, '120']]);
    const waiting = await delivery();
    expect(waiting).toMatchObject({ status: 'pending', attempts: 1, last_status: throttled });
    expect(Date.parse(waiting.next_attempt_at) - gw.clock.now()).toBe(120_000);
    await gw.advance(60_000);
    expect(received).toHaveLength(1);
    await gw.advance(60_000);
    expect(await delivery()).toMatchObject({ status: 'delivered', attempts: 2, last_status: 200 });
  });

  // Only the throttling answers ask the sender to wait: any other failure is retried after the
  // sender's own back-off, and a 404 (a receiver being deployed, a path not routed yet) is not an end.
  it.each([404, 500])('retries a %i after its own 5 s back-off, whatever Retry-After it carries, and delivers the event then', async (status) => {
    const { received, delivery } = await firstTryAnswered([[status, '120']]);
    const waiting = await delivery();
    expect(waiting).toMatchObject({ status: 'pending', attempts: 1, last_status: status });
    expect(Date.parse(waiting.next_attempt_at) - gw.clock.now()).toBe(5_000);
    await gw.advance(5_000);
    expect(await delivery()).toMatchObject({ status: 'delivered', attempts: 2, last_status: 200 });
    expect(received).toHaveLength(2);
  });

  it('keeps its own back-off when a Retry-After asks for less, and waits at most an hour whatever it asks', async () => {
    const { received, delivery } = await firstTryAnswered([[429, '1'], [503, '86400']]);
    expect(Date.parse((await delivery()).next_attempt_at) - gw.clock.now()).toBe(5_000);
    await gw.advance(5_000);
    await gw.advanceUntil(async () => received.length >= 2, 100);
    expect(Date.parse((await delivery()).next_attempt_at) - gw.clock.now()).toBe(3_600_000);
  });

  it('still retries a 500 and sends the task\'s later events', async () => {
    const target = await receiver([500]);
    server = target.server;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 30_000 } } });
    const created = await gw.create({ ...request, webhook_url: target.url });
    await gw.gateway.runOnce();
    await gw.advanceUntil(async () => target.received.length >= 1, 100);
    expect((await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data[0]).toMatchObject({ status: 'pending', attempts: 1, last_status: 500 });
    await gw.finish(created.body.id);
    await gw.advanceUntil(async () => target.received.length >= 3, 1_000);
    const deliveries = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
    expect(deliveries.map((d: any) => [d.type, d.status, d.last_status])).toEqual([
      ['video.processing', 'delivered', 200],
      ['video.succeeded', 'delivered', 200],
    ]);
  });

  it("sends a task's video.succeeded only after its video.processing is answered: a retry of the earlier event never comes after the later one", async () => {
    const target = await receiver([500]);
    server = target.server;
    // The job ends before the first retry of video.processing (5 s) is due.
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { queued_ms: 0, processing_ms: 2_000 } } });
    const created = await gw.create({ ...request, webhook_url: target.url });
    await gw.finish(created.body.id, 500);
    await gw.advanceUntil(async () => target.received.length >= 3, 500);
    const verifier = new Webhook(TENANT_WEBHOOK_SECRET);
    const types = target.received.map((delivery) => (verifier.verify(delivery.body, delivery.headers) as { type: string }).type);
    expect(types).toEqual(['video.processing', 'video.processing', 'video.succeeded']);
    const deliveries = (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data;
    expect(deliveries.map((d: any) => [d.type, d.status, d.attempts, d.last_status])).toEqual([
      ['video.processing', 'delivered', 2, 200],
      ['video.succeeded', 'delivered', 1, 200],
    ]);
  });

  it("says a task's later event held behind a retry is tried no sooner than that retry, not that it is due now", async () => {
    // The receiver asks video.processing to come back in an hour; the job ends meanwhile.
    const { url } = await throttlingReceiver([[503, '3600']]);
    gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { queued_ms: 0, processing_ms: 2_000 } } });
    const created = await gw.create({ ...request, webhook_url: url });
    expect((await gw.finish(created.body.id)).status).toBe('succeeded');
    const listed = async () => (await gw.request<any>('GET', `/v1/videos/${created.body.id}/webhooks`)).body.data as any[];
    await gw.advanceUntil(async () => (await listed())[0]?.attempts === 1, 100);
    await gw.gateway.runOnce();
    const deliveries = await listed();
    expect(deliveries.map((d) => [d.type, d.status, d.attempts])).toEqual([
      ['video.processing', 'pending', 1],
      ['video.succeeded', 'pending', 0],
    ]);
    expect(Date.parse(deliveries[0].next_attempt_at)).toBeGreaterThan(gw.clock.now() + 59 * 60_000);
    expect(deliveries[1].next_attempt_at).toBe(deliveries[0].next_attempt_at);
  });

  it("never has a task's later event on its way while the receiver is still answering the earlier one", async () => {
    // The receiver takes 300 ms over each answer; what it saw, in the order it saw it.
    const seen: string[] = [];
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const { type } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type: string };
        seen.push(`${type} came`);
        setTimeout(() => {
          seen.push(`${type} answered`);
          res.end();
        }, 300);
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    gw = await startTestGateway({ clock: new ManualClock(Date.now()) });
    const created = (await gw.create({ ...request, routing: { providers: ['freepik'] }, webhook_url: url })).body;
    // Freepik says the job runs, then that it is done, before any delivery pass: both events are due at the next.
    const secret = gw.endpoints.get('freepik')!.webhookSecret!;
    for (const [id, status] of [['wh_runs', 'IN_PROGRESS'], ['wh_done', 'COMPLETED']] as const) {
      const raw = JSON.stringify({ task_id: created.provider_task_id, status, generated: status === 'COMPLETED' ? ['https://cdn.example.com/lantern.mp4'] : [] });
      const timestamp = String(Math.floor(gw.clock.now() / 1000));
      const headers = { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signFreepikWebhook(secret, id, timestamp, raw) };
      expect((await gw.request('POST', '/v1/webhooks/freepik', raw, headers, null)).body).toEqual({ received: true, matched: true });
    }
    expect((await gw.get(created.id)).body.status).toBe('succeeded');
    await gw.advanceUntil(async () => seen.length >= 4, 100);
    expect(seen).toEqual(['video.processing came', 'video.processing answered', 'video.succeeded came', 'video.succeeded answered']);
  });

  it('refuses private, loopback and link-local targets unless allowed', async () => {
    gw = await startTestGateway({ config: { webhooks: { allow_private_targets: false } } });
    for (const url of ['http://127.0.0.1:9/x', 'http://169.254.169.254/latest', 'http://10.0.0.5/hook', 'http://localhost/x', 'http://[::1]/x']) {
      const answer = await gw.create({ ...request, webhook_url: url });
      expect(answer.status, url).toBe(422);
      expect(answer.body.errors[0].path).toBe('webhook_url');
    }
    expect(gw.simulator('kling3api').tasks).toHaveLength(0);
  });

  it('refuses a webhook_url carrying credentials with a 400 naming the field, and creates nothing', async () => {
    gw = await startTestGateway();
    // The gateway authenticates itself by the signature; a password in the URL would be kept in
    // the store and shown back in every delivery's `url`.
    for (const url of ['https://user:secret@hooks.example.com/x', 'https://token@hooks.example.com/x', 'https://:secret@hooks.example.com/x']) {
      const answer = await gw.create({ ...request, webhook_url: url });
      expect(answer.status, url).toBe(400);
      expect(answer.body.errors, url).toEqual([{ path: 'webhook_url', message: expect.stringContaining('credentials') }]);
      expect(JSON.stringify(answer.body), url).not.toContain('secret@');
    }
    expect(gw.simulator('kling3api').tasks).toHaveLength(0);
    expect((await gw.request<any>('GET', '/v1/videos')).body.data).toEqual([]);
  });

  it('refuses a webhook_url on port 0, which no delivery can connect to, with a 400 naming the field', async () => {
    gw = await startTestGateway();
    const answer = await gw.create({ ...request, webhook_url: 'https://hooks.example.com:0/x' });
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ path: 'webhook_url', message: expect.stringContaining('port 0') }]);
    expect(gw.simulator('kling3api').tasks).toHaveLength(0);
  });

  it('refuses webhook_url for a tenant without a webhook secret', async () => {
    // Live (an upstream key is set): no shipped sandbox secret fills in for the tenant.
    gw = await startTestGateway({ config: { providers: { freepik: { api_key: 'fpk-live-123456', base_url: 'http://127.0.0.1:9' } } } });
    const answer = await gw.request('POST', '/v1/videos', { ...request, webhook_url: 'https://hooks.example.com/x' }, {}, OTHER_TENANT_KEY);
    expect(answer.status).toBe(422);
    expect(answer.body.detail).toMatch(/no webhook secret/);
  });
});

describe('Server-Sent Events', () => {
  it('streams one event per status change and closes when the task is terminal', async () => {
    gw = await startTestGateway();
    const created = await gw.create(request);
    const response = await fetch(`${gw.url}/v1/videos/${created.body.id}/events`, {
      headers: { authorization: 'Bearer acme-secret-key' },
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const text = response.text();
    await gw.finish(created.body.id);
    const stream = await text;
    const events = stream
      .split('\n\n')
      .filter((block) => block.includes('event:'))
      .map((block) => /event: (\w+)/.exec(block)?.[1]);
    expect(events).toEqual(['processing', 'succeeded']);
    const last = stream.split('\n').filter((line) => line.startsWith('data: ')).at(-1)!;
    expect(JSON.parse(last.slice(6))).toMatchObject({ id: created.body.id, status: 'succeeded' });
  });

  it('answers 404 for another tenant’s task', async () => {
    gw = await startTestGateway();
    const created = await gw.create(request);
    const response = await fetch(`${gw.url}/v1/videos/${created.body.id}/events`, {
      headers: { authorization: `Bearer ${OTHER_TENANT_KEY}` },
    });
    expect(response.status).toBe(404);
  });
});
