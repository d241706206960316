/**
 * A `generate` whose every send was refused at connect (the gateway is not running, a wrong port)
 * reached no gateway: it says no video was made, rather than "the gateway may have created this
 * video", which sent a user with the gateway down looking for a video that cannot exist. A send
 * that may have reached it (its answer lost) still names the key to run again with.
 */
import { expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { REFUSED_URL } from '../support/refused-port.js';

it('generate against a gateway that refuses every connection says no video was made', async () => {
  const pauses: number[] = [];
  const result = await runCliCaptured(['generate', 'a fox', '--model', 'kling-v3', '--idempotency-key', 'order-7'], {
    env: { KLING_GATEWAY_URL: REFUSED_URL, KLING_GATEWAY_API_KEY: 'test-key-123' },
    pause: async (ms) => void pauses.push(ms),
  });
  expect(result.code).toBe(9);
  // Sent again all the same (a gateway restarting takes connections again in a moment).
  expect(pauses).toEqual([500, 2_000]);
  expect(result.stderr).not.toContain('may have created');
  expect(result.stderr).toContain(`no create reached the gateway (no connection could be made to it): no video was made\nerror: cannot reach ${REFUSED_URL}: ECONNREFUSED`);
});
