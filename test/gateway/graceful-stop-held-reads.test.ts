/**
 * A `?wait=` held when a graceful stop begins is answered at the end of the drain, with the task
 * as it is. That answer said `Connection: keep-alive`, and moments later the listener closed every
 * connection: a client that sent its next request on that connection (a poll after the wait) as
 * the close came had it reset, unanswered — what the stop promises never to do to a request
 * already sent, and unlike every other answer of a stopping gateway, which says
 * `Connection: close`. Now the wait's answer closes its connection too: the next request goes on
 * a new connection.
 */
import http from 'node:http';
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';
import { followTaskFollowers } from '../support/task-followers.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
}

/** A GET on `agent` (one keep-alive connection), its whole answer, or the error code of a request that got none. */
function get(url: string, agent: http.Agent): Promise<Answer | { error: string }> {
  return new Promise((resolve) => {
    const request = http.get(url, { agent, headers: { authorization: `Bearer ${TENANT_KEY}` } }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, connection: response.headers.connection, body }));
    });
    request.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? String(error) }));
  });
}

it('closes the connection of a ?wait= answered at the stop, so the next request goes on a new one', async () => {
  gw = await startTestGateway({ clock: new ManualClock(Date.now()), config: { sandbox: { processing_ms: 600_000 } } });
  const task = (await gw.create({ model: 'kling-v3', prompt: 'waited for through a deploy', duration: 5 })).body;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const followers = followTaskFollowers(gw);
  const held = get(`${gw.url}/v1/videos/${task.id}?wait=60`, agent);
  await followers.until(task.id, 1);

  const stopping = gw.gateway.close();
  const answered = await held;
  await stopping;
  gw = undefined;
  agent.destroy();

  // What the header makes the client do (open a new connection for its next request, which a
  // closed listener refuses or, caught in the kernel's accept queue as the listener closes,
  // resets, before anything of it was read) is the client's and the kernel's: the header is
  // what the gateway owes.
  expect(answered).toMatchObject({ status: 200, connection: 'close' });
  expect(JSON.parse((answered as Answer).body)).toMatchObject({ id: task.id, status: expect.stringMatching(/^(queued|processing)$/) });
});
