/**
 * Ctrl-C while `generate` waits to send again a create whose answer was lost ("sending it again in
 * 2 s with the same Idempotency-Key") names the key to run again with, as Ctrl-C during a send
 * does: the lost send may have made the video, and the command run again without the key would
 * make (and bill) a second one.
 */
import { expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { loopbackServer } from '../support/raw-answer.js';

it('Ctrl-C during the pause before a resend names the Idempotency-Key', async () => {
  const keys: string[] = [];
  // A proxy whose gateway went away as the create arrived: its answer, a 502, says nothing of the video.
  const gateway = await loopbackServer((req, res) => {
    req.resume();
    keys.push(String(req.headers['idempotency-key']));
    res.writeHead(502, { 'content-type': 'text/html' }).end('<html><title>502 Bad Gateway</title></html>');
  });
  try {
    const result = await runCliCaptured(['generate', 'a fox', '--model', 'kling-v3', '--idempotency-key', 'order-8'], {
      env: { KLING_GATEWAY_URL: gateway.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
      // Ctrl-C while the command waits to send again.
      pause: async () => void process.emit('SIGINT'),
    });
    expect(keys).toEqual(['order-8']);
    expect(result.code).toBe(130);
    expect(result.stderr).toContain('the gateway may have created this video: run the command again with --idempotency-key order-8 to get it rather than a second one\n');
  } finally {
    await gateway.close();
  }
});
