/**
 * An outbound webhook delivery is a call the gateway makes to another party's server: each try
 * gets its one log line (SPEC §6: one line per upstream call), a delivered one too, with the task
 * and delivery ids, the event, the receiver's status and the time it took, as the failed try's
 * line already had. The receiver's URL is not logged (a tenant's URL may carry its own token).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { capturedLogs } from '../support/captured-logs.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
let server: Server | undefined;
afterAll(async () => {
  await gw?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

it('logs each delivery try once, a delivered one and a failed one alike, with task and delivery ids', async () => {
  const received: { id: string; status: number }[] = [];
  // The first event is answered 500 once, then every try 204.
  const statuses = [500];
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = statuses.shift() ?? 204;
      received.push({ id: String(req.headers['webhook-id']), status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks?receiver_token=tenant-own-token`;
  const logs = capturedLogs();
  gw = await startTestGateway({ clock: new ManualClock(Date.now()), logTo: logs.sink });
  const created = await gw.create({ model: 'kling-v3', prompt: 'delivered', duration: 5, routing: { providers: ['kling3api'] }, webhook_url: url });
  await gw.finish(created.body.id);
  await gw.advanceUntil(async () => received.filter((entry) => entry.status === 204).length >= 2, 1_000);

  const lines = logs
    .text()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, any>)
    .filter((line) => typeof line.delivery_id === 'string');
  // One line per try the receiver got.
  const tries = (entries: [string, number][]) => entries.map((entry) => entry.join(' ')).sort();
  expect(tries(lines.map((line) => [line.delivery_id, line.status]))).toEqual(tries(received.map((entry) => [entry.id, entry.status])));
  const delivered = lines.filter((line) => line.status === 204);
  expect(delivered.map((line) => line.event_type).sort()).toEqual(['video.processing', 'video.succeeded']);
  for (const line of delivered) {
    expect(line).toMatchObject({ level: 'info', msg: 'webhook delivered', task_id: created.body.id });
    expect(typeof line.duration_ms).toBe('number');
  }
  const failed = lines.find((line) => line.status === 500);
  expect(failed).toMatchObject({ level: 'warn', task_id: created.body.id, event_type: 'video.processing', attempt: 1 });
  expect(typeof failed?.duration_ms).toBe('number');
  expect(logs.text()).not.toContain('tenant-own-token');
});
