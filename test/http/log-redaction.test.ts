/**
 * A content link's signature is a credential (anyone holding the link reads the file until it
 * expires): the request log line shows the route and never the signature, however the query
 * spells the parameter's name (express decodes `sign%61ture` to `signature` and serves the file).
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { cpuTimer } from '../support/cpu-time.js';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
const logs = capturedLogs();
let link: URL;

beforeAll(async () => {
  gw = await startTestGateway({ logTo: logs.sink, config: { storage: { mode: 'copy' } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a signed link', duration: 5 });
  const task = await gw.finish(created.body.id);
  expect(task.status).toBe('succeeded');
  link = new URL(task.outputs[0].url);
});
afterAll(async () => {
  await gw.close();
});

it.each([['signature'], ['sign%61ture'], ['%73ignature'], ['%73%69%67%6e%61%74%75%72%65']])(
  'a link whose signature parameter is spelt %s: the file is served, the log line shows no signature',
  async (name) => {
    const signature = link.searchParams.get('signature')!;
    const path = `${link.pathname}?index=0&expires=${link.searchParams.get('expires')}&${name}=${signature}`;
    const requestId = `redaction-${name.replace(/%/g, '')}`;
    const answer = await fetch(`${gw.url}${path}`, { headers: { 'x-request-id': requestId } });
    expect(answer.status).toBe(200);
    await answer.arrayBuffer();
    await vi.waitFor(() => expect(logs.text()).toContain(`"request_id":"${requestId}"`), { timeout: 10_000 });
    const line = logs.text().split('\n').find((text) => text.includes(`"request_id":"${requestId}"`))!;
    expect(line).toContain('/content?index=0');
    expect(line).not.toContain(signature);
  },
);

it("a request target of question marks (no key needed) is logged in time linear in its length: the gateway keeps answering others", async () => {
  // The redaction's pattern tried every `?` as the start of a parameter and read on to the end
  // from each: 15,000 of them cost 150 ms of the event loop per request, before any key was asked for.
  const hostile = `/v1/videos?${'?'.repeat(15_000)}`;
  const flood = Array.from({ length: 20 }, () => fetch(`${gw.url}${hostile}`).then((answer) => answer.status));
  // The work done while the read waits, in CPU time: the wall clock also counts the time a loaded
  // machine gives this process no core.
  const cpuMs = cpuTimer();
  const read = await gw.request('GET', '/v1/videos?limit=1');
  const readMs = cpuMs();
  expect(await Promise.all(flood)).toEqual(Array(20).fill(401));
  expect(read.status).toBe(200);
  expect(readMs).toBeLessThan(1_000);
});

it('a signature after a stray question mark is still kept out of the log line', async () => {
  const signature = link.searchParams.get('signature')!;
  const requestId = 'redaction-after-question-mark';
  const answer = await fetch(`${gw.url}${link.pathname}?index=0?&signature=${signature}&x?signature=${signature}`, { headers: { 'x-request-id': requestId } });
  expect(answer.status).toBe(400);
  await vi.waitFor(() => expect(logs.text()).toContain(`"request_id":"${requestId}"`), { timeout: 10_000 });
  const line = logs.text().split('\n').find((text) => text.includes(`"request_id":"${requestId}"`))!;
  expect(line).toContain('/content?index=0');
  expect(line).not.toContain(signature);
});

it("a request target repeating the start of a secret (a tenant's own key) is scrubbed from its log line in time linear in its length", async () => {
  // Each of its thousands of matches ran on to the end of the word from where it started: 150 to 450 ms
  // of the event loop per 15 kB request, from anyone who knows 8 characters of any secret.
  const start = TENANT_KEY.slice(0, 8);
  const hostile = `/v1/videos?x=${start.repeat(1_850)}`;
  const cpuMs = cpuTimer();
  const statuses = await Promise.all(Array.from({ length: 30 }, () => fetch(`${gw.url}${hostile}`, { headers: { 'x-request-id': 'scrub-flood' } }).then(async (answer) => (await answer.arrayBuffer(), answer.status))));
  expect(statuses).toEqual(Array(30).fill(401));
  expect(cpuMs()).toBeLessThan(3_000);
  await vi.waitFor(() => expect(logs.text()).toContain('"request_id":"scrub-flood"'), { timeout: 10_000 });
  const line = logs.text().split('\n').find((text) => text.includes('"request_id":"scrub-flood"'))!;
  expect(line).toContain('/v1/videos?x=[redacted]');
  expect(line).not.toContain(start);
});
