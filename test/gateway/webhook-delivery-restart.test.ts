/**
 * A gateway on a SQLite file killed (`kill -9`) while a receiver holds its webhook POST, and
 * started again on the same file: the event is sent again, with the same `webhook-id` (receivers
 * drop what they have handled by it) and a fresh, valid signature, and recorded as delivered.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, expect, it } from 'vitest';
import { SHIPPED_SANDBOX_WEBHOOK_SECRET } from '../../src/config/config.js';
import { startGatewayProcess } from '../support/gateway-process.js';
import { restartablePort } from '../support/restart-port.js';

const HEADERS = { authorization: 'Bearer dev-key', 'content-type': 'application/json' };
const started: ChildProcess[] = [];

afterAll(async () => {
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
});

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  res: ServerResponse;
}

it('sends an event whose POST was on its way when the gateway was killed again at the restart (not after its lease), with the same webhook-id', { timeout: 60_000 }, async () => {
  const waiting: ((delivery: Delivery) => void)[] = [];
  const early: Delivery[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const delivery = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), res };
      const next = waiting.shift();
      if (next) next(delivery);
      else early.push(delivery);
    });
  });
  const nextDelivery = () => new Promise<Delivery>((resolve) => (early.length > 0 ? resolve(early.shift()!) : waiting.push(resolve)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    const dir = mkdtempSync(join(tmpdir(), 'kg-webhook-restart-'));
    // The shipped configuration with a ten-minute try: the lease the killed run left on the POST
    // (the try + 5 s) would hold the event for ten minutes, so only a restart that ends the leases
    // left behind (one process per SQLite file) sends it again within this test's time.
    const shipped = readFileSync(new URL('../../config.yaml', import.meta.url), 'utf8');
    const config = shipped.replace(/(webhooks:\n(?:  .*\n)*?  timeout_ms: )10000\n/, '$1600000\n');
    expect(config).not.toBe(shipped);
    writeFileSync(join(dir, 'config.yaml'), config);
    const env = {
      HOST: '127.0.0.1',
      CONFIG_FILE: join(dir, 'config.yaml'),
      DATABASE_URL: `sqlite:${join(dir, 'gw.db')}`,
      STORAGE_PATH: join(dir, 'outputs'),
      WEBHOOKS_ALLOW_PRIVATE: 'true',
      SANDBOX_QUEUED_MS: '500',
      SANDBOX_PROCESSING_MS: '600000',
      LOG_LEVEL: 'info',
    };
    const first = await startGatewayProcess(env, () => undefined, 30_000, { port: await restartablePort() });
    started.push(first.child);
    const created = await fetch(`${first.url}/v1/videos`, {
      method: 'POST',
      headers: HEADERS,
      body: JSON.stringify({ model: 'kling-v3', prompt: 'a lighthouse', duration: 5, webhook_url: url, routing: { providers: ['kling3api'] } }),
    });
    expect(created.status).toBe(202);
    const task = (await created.json()) as { id: string };

    // The receiver holds the first POST; the gateway dies before any answer.
    const held = await nextDelivery();
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    held.res.destroy();

    const second = await startGatewayProcess(env, () => undefined, 30_000, { port: first.port });
    started.push(second.child);
    const again = await nextDelivery();
    again.res.end();

    expect(again.headers['webhook-id']).toBe(held.headers['webhook-id']);
    expect(again.body).toBe(held.body);
    const verifier = new Webhook(SHIPPED_SANDBOX_WEBHOOK_SECRET);
    expect((verifier.verify(again.body, again.headers as Record<string, string>) as { type: string }).type).toBe('video.processing');

    const deliveries = await (async () => {
      for (;;) {
        const answer = (await (await fetch(`${second.url}/v1/videos/${task.id}/webhooks`, { headers: HEADERS })).json()) as { data: { status: string }[] };
        if (answer.data[0]?.status !== 'pending') return answer.data;
      }
    })();
    expect(deliveries).toEqual([expect.objectContaining({ id: held.headers['webhook-id'], type: 'video.processing', status: 'delivered', last_status: 200 })]);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
