/**
 * Outbound webhooks of one tenant cannot hold up another's: a receiver that takes the connection
 * and never answers keeps only that tenant's few deliveries waiting (each until
 * `webhooks.timeout_ms`), while every other tenant's events go out at once.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OTHER_TENANT_KEY, TENANT_KEY, TENANT_WEBHOOK_SECRET } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';

const OTHER_WEBHOOK_SECRET = `whsec_${Buffer.from('the other tenant signs with this').toString('base64')}`;

interface Receiver {
  url: string;
  server: Server;
  /** Requests received so far. */
  received: number;
  /** Requests received and not yet answered. */
  open: number;
  /** The most requests open at once. */
  mostOpen: number;
  held: ServerResponse[];
}

/** A receiver that answers 200 at once, or (`hang`) takes every request and never answers. */
async function receiver(hang: boolean): Promise<Receiver> {
  const state = { received: 0, open: 0, mostOpen: 0, held: [] as ServerResponse[] };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      state.received += 1;
      if (!hang) {
        res.end();
        return;
      }
      state.open += 1;
      state.mostOpen = Math.max(state.mostOpen, state.open);
      state.held.push(res);
      res.on('close', () => (state.open -= 1));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(state, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, server });
}

let live: LiveGateway | undefined;
const receivers: Receiver[] = [];
afterEach(async () => {
  for (const target of receivers.splice(0)) {
    for (const res of target.held) res.destroy();
    target.server.closeAllConnections();
    await new Promise<void>((resolve) => target.server.close(() => resolve()));
  }
  await live?.close();
  live = undefined;
});

async function create(key: string, webhookUrl: string): Promise<string> {
  const answer = await fetch(`${live!.url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'kling-v3', prompt: 'a slow river', routing: { providers: ['kling3api'] }, webhook_url: webhookUrl }),
  });
  const body = (await answer.json()) as { id: string };
  expect(answer.status, JSON.stringify(body)).toBe(202);
  return body.id;
}

describe('outbound webhook deliveries across tenants', () => {
  it("go out for one tenant while another tenant's receiver takes 60 deliveries and never answers", async () => {
    const silent = await receiver(true);
    const prompt = await receiver(false);
    receivers.push(silent, prompt);
    live = await startLiveGateway({
      tenants: { acme: { webhook_secret: TENANT_WEBHOOK_SECRET }, other: { webhook_secret: OTHER_WEBHOOK_SECRET } },
      // Far longer than the test: a delivery to the silent receiver never ends while it runs.
      webhooks: { allow_private_targets: true, max_attempts: 3, timeout_ms: 120_000 },
      // Tasks stay processing: one event (video.processing) each.
      sandbox: { queued_ms: 0, processing_ms: 600_000 },
      providers: { kling3api: { max_in_flight: 100 } },
    });

    for (let index = 0; index < 60; index++) await create(OTHER_TENANT_KEY, silent.url);
    await expect.poll(() => silent.received, { timeout: 10_000 }).toBeGreaterThanOrEqual(10);

    await create(TENANT_KEY, prompt.url);
    await expect.poll(() => prompt.received, { timeout: 5_000 }).toBe(1);
    // The silent receiver holds only the few deliveries one tenant may have on their way at once.
    expect(silent.mostOpen).toBeLessThanOrEqual(10);
  }, 30_000);
});
