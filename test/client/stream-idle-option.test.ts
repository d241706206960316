/**
 * `idleTimeoutMs` (of `videoEvents`) and `streamIdleTimeoutMs` (of `waitForVideo`) that are no
 * number or below 0 are refused before anything is sent, as `timeoutMs` is: they were taken as
 * "never idle", so a stream whose connection died without closing (a laptop that slept) was read
 * for ever, and a wait on it never went on by polling.
 */
import { expect, it } from 'vitest';
import { GatewayClient } from '../../packages/client/src/index.js';

function counting() {
  const sent: string[] = [];
  const client = new GatewayClient({
    baseUrl: 'http://127.0.0.1:8080',
    apiKey: 'key',
    fetch: async (input) => {
      sent.push(String(input instanceof Request ? input.url : input));
      throw new Error('nothing should be sent');
    },
  });
  return { client, sent };
}

for (const idleTimeoutMs of [Number.NaN, -1]) {
  it(`refuses an event stream with idleTimeoutMs ${idleTimeoutMs}, sending nothing`, async () => {
    const { client, sent } = counting();
    const events = client.videoEvents('vid_1', { idleTimeoutMs });
    await expect(events.next()).rejects.toThrow(new TypeError(`idleTimeoutMs is ${idleTimeoutMs}: give milliseconds (0 for never)`));
    expect(sent).toEqual([]);
  });

  it(`refuses a wait with streamIdleTimeoutMs ${idleTimeoutMs}, rather than streaming without one`, async () => {
    const { client, sent } = counting();
    await expect(client.waitForVideo('vid_1', { streamIdleTimeoutMs: idleTimeoutMs, timeoutMs: 1_000 })).rejects.toThrow(
      new TypeError(`streamIdleTimeoutMs is ${idleTimeoutMs}: give milliseconds (0 for never)`),
    );
    expect(sent).toEqual([]);
  });
}

it('still takes 0 as never idle and Infinity as no limit', async () => {
  const { client, sent } = counting();
  for (const idleTimeoutMs of [0, Number.POSITIVE_INFINITY]) {
    await expect(client.videoEvents('vid_1', { idleTimeoutMs }).next()).rejects.not.toThrow(TypeError);
  }
  expect(sent).toHaveLength(2);
});
