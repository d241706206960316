/**
 * A graceful stop (SIGTERM) answers every request a client had already sent: a create whose
 * bytes reached the gateway just before the stop gets its answer (`202`) or a `503` with
 * `Retry-After` and `Connection: close`, never a reset connection, which would leave a client
 * without an Idempotency-Key unable to tell whether its video was made.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';
import { capturedLogs } from '../support/captured-logs.js';
import { sendRawCreate } from '../support/raw-answer.js';
import { followTaskFollowers } from '../support/task-followers.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close().catch(() => undefined);
  gw = undefined;
});

it('answers every create already sent when the stop begins, 202 or 503, and resets none', async () => {
  gw = await startTestGateway({ clock: new ManualClock(Date.now()) });
  const body = JSON.stringify({ model: 'kling-v3', prompt: 'sent just before a deploy', duration: 5 });
  const sent = Array.from({ length: 20 }, () => sendRawCreate(gw!.url, TENANT_KEY, body));
  await Promise.all(sent.map((one) => one.written));
  // SIGTERM: the requests are on their way in, most not read yet.
  const closing = gw.gateway.close();
  const answers = await Promise.all(sent.map((one) => one.answer));
  await closing;
  gw = undefined;
  expect(answers.filter((code) => code !== '202' && code !== '503')).toEqual([]);
});

it('still refuses new connections once the stop is over', async () => {
  gw = await startTestGateway({ clock: new ManualClock(Date.now()) });
  const { url } = gw;
  await gw.gateway.close();
  gw = undefined;
  const after = await fetch(`${url}/healthz`).then(
    (response) => String(response.status),
    (error: Error & { cause?: { code?: string } }) => error.cause?.code ?? 'error',
  );
  expect(after).toBe('ECONNREFUSED');
});

it('ends event streams cleanly and answers long waits with the task as it is, instead of cutting them', async () => {
  gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 600_000 } } });
  const task = (await gw.create({ model: 'kling-v3', prompt: 'watched through a deploy', duration: 5 })).body;
  const headers = { authorization: `Bearer ${TENANT_KEY}` };
  const followers = followTaskFollowers(gw);
  const stream = await fetch(`${gw.url}/v1/videos/${task.id}/events`, { headers });
  expect(stream.status).toBe(200);
  const streamed = stream.text();
  const waiting = fetch(`${gw.url}/v1/videos/${task.id}?wait=60`, { headers }).then(async (response) => ({ status: response.status, body: await response.json() }));
  // Both are held open before the stop.
  await followers.until(task.id, 2);
  await gw.gateway.close();
  gw = undefined;
  // The stream's body ends (a cut one would reject with a terminated body) after its first event.
  const events = await streamed;
  expect(events).toMatch(/^id: \d+\nevent: (queued|processing)\ndata: /);
  const waited = await waiting;
  expect(waited.status).toBe(200);
  expect(waited.body).toMatchObject({ id: task.id, status: events.match(/event: (\w+)/)![1] });
});

// A rolling deploy stops every replica in turn: its 503s to requests sent during the stop are the
// gateway doing what it promises, not its failure. Logged at error, each deploy paged whoever
// alerts on error lines.
it('logs the 503 it answers a request sent during the stop at info, not error', async () => {
  const logs = capturedLogs();
  gw = await startTestGateway({ clock: new ManualClock(Date.now()), logTo: logs.sink, config: { sandbox: { processing_ms: 600_000 } } });
  const task = (await gw.create({ model: 'kling-v3', prompt: 'read during a deploy', duration: 5 })).body;
  const headers = { authorization: `Bearer ${TENANT_KEY}` };
  const followers = followTaskFollowers(gw);
  // A wait held open keeps the stop going while a new request comes in.
  const waiting = fetch(`${gw.url}/v1/videos/${task.id}?wait=60`, { headers }).then((response) => response.text());
  await followers.until(task.id, 1);
  const closing = gw.gateway.close();
  const refused = await fetch(`${gw.url}/v1/videos`, { headers });
  expect(refused.status).toBe(503);
  await refused.text();
  await waiting;
  await closing;
  gw = undefined;
  const lines = logs
    .text()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { level: string; msg: string; res?: { status: number }; req?: { url: string } });
  const refusal = lines.filter((line) => line.msg === 'request completed' && line.res?.status === 503);
  expect(refusal.map((line) => line.req?.url)).toEqual(['/v1/videos']);
  expect(refusal.map((line) => line.level)).toEqual(['info']);
  expect(lines.filter((line) => line.level === 'error' || line.level === 'fatal').map((line) => line.msg)).toEqual([]);
});
