/**
 * An event stream with nothing to say still sends a comment (`: keep-alive`) every 15 s, so a
 * proxy that closes idle connections (nginx's `proxy_read_timeout`, a load balancer's idle
 * timeout) leaves it open and the client's idle timer (45 s) never fires on a live stream. The
 * heartbeat ran on real timers, out of reach of the gateway's clock: nothing showed it was sent.
 */
import { afterEach, expect, it } from 'vitest';
import { startTestGateway, TENANT_KEY, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

/** Everything a stream sends, as it arrives. */
function reading(response: Response): { text(): string; ended: Promise<void> } {
  let text = '';
  const decoder = new TextDecoder();
  const reader = response.body!.getReader();
  const ended = (async () => {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return;
      text += decoder.decode(chunk.value, { stream: true });
    }
  })();
  return { text: () => text, ended };
}

const beats = (text: string) => text.split(': keep-alive\n\n').length - 1;

it('sends a keep-alive comment every 15 s of an idle stream, and none once it ended', async () => {
  // A task that waits in its provider's queue the whole time: its stream has nothing to say.
  gw = await startTestGateway({ config: { sandbox: { queued_ms: 600_000, processing_ms: 600_000 } } });
  const id = (await gw.create({ model: 'kling-v3', prompt: 'a quiet one', duration: 5 })).body.id as string;
  const response = await fetch(`${gw.url}/v1/videos/${id}/events`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
  expect(response.status).toBe(200);
  const stream = reading(response);
  // The gateway's clock moves; each step lets the written comment reach the client.
  const advanceAndRead = async (ms: number, wanted: number) => {
    await gw!.clock.advance(ms);
    for (let turn = 0; turn < 200 && beats(stream.text()) < wanted; turn++) await new Promise((resolve) => setImmediate(resolve));
  };

  await advanceAndRead(14_000, 0);
  expect(beats(stream.text())).toBe(0);
  await advanceAndRead(1_000, 1);
  expect(beats(stream.text())).toBe(1);
  await advanceAndRead(15_000, 2);
  expect(beats(stream.text())).toBe(2);
  // Each comment is its own SSE block: never inside an event.
  expect(stream.text()).toMatch(/^id: \d+\nevent: \w+\ndata: .*\n\n: keep-alive\n\n: keep-alive\n\n$/);

  // Once the task ends the stream closes, and no comment follows.
  const done = await gw.finish(id, 60_000);
  expect(done.status).toBe('succeeded');
  await stream.ended;
  const atEnd = beats(stream.text());
  await gw.clock.advance(60_000);
  expect(beats(stream.text())).toBe(atEnd);
  expect(stream.text()).toMatch(/event: succeeded\ndata: .*\n\n$/);
});
