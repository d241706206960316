/**
 * A create whose client leaves while the create is on its way to the provider still makes its
 * task (sent, and paid for): its request line (499) names that task, as a create's line does, so
 * an operator holding the client's request id finds what it made.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';
import { heldCall } from '../support/held-call.js';

let gw: TestGateway;
const logs = capturedLogs();
const lines = () =>
  logs
    .text()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, any>);
beforeAll(async () => {
  gw = await startTestGateway({ logTo: logs.sink });
});
afterAll(async () => {
  await gw.close();
});

it('a create whose client leaves while its submit is on its way: its 499 line names the task it made', async () => {
  const held = heldCall();
  gw.simulator('kling3api').injectFault({ on: 'submit', hold: held.hold });
  const client = new AbortController();
  const sent = fetch(`${gw.url}/v1/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json', 'x-request-id': 'req-create-left' },
    body: JSON.stringify({ model: 'kling-v3', prompt: 'left', duration: 5, routing: { providers: ['kling3api'] } }),
    signal: client.signal,
  }).catch((error: unknown) => error);
  await held.reached;
  client.abort();
  await sent;
  const requestLine = await vi.waitFor(() => {
    const found = lines().filter((line) => line.request_id === 'req-create-left' && line.msg === 'request completed');
    expect(found).toHaveLength(1);
    return found[0]!;
  });
  held.release();
  // The task the create made, as the submit's upstream line names it.
  const submit = await vi.waitFor(() => {
    const found = lines().find((line) => line.request_id === 'req-create-left' && line.msg === 'upstream call');
    expect(found).toBeDefined();
    return found!;
  });
  expect(typeof submit.task_id).toBe('string');
  expect(requestLine).toMatchObject({ res: { status: 499 }, task_id: submit.task_id });
});
