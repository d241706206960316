/**
 * `generate --wait` (or `wait`) that stops following a video — Ctrl-C, SIGTERM, the gateway away —
 * says what becomes of it: a video no provider took yet can still be canceled at no cost (and the
 * command to do it is named), one a provider has runs on and is billed. Before, only "goes on at
 * the gateway" was said, and a user who pressed Ctrl-C to stop a video they no longer wanted was
 * not told it could still be stopped, nor that it would be billed once a provider had it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { expect, it } from 'vitest';
import { loopbackServer } from '../support/raw-answer.js';
import { succeededTask } from '../support/fake-task-gateway.js';
import { runCliCaptured } from '../support/cli-run.js';
import { TENANT_KEY } from '../support/harness.js';

const ID = 'vid_Q7m2xK9pL4tR_wZ8';

/** A gateway that takes the create with `created`'s fields, then fails every read of the task with a 500. */
async function stoppedFollowing(created: Record<string, unknown>) {
  const gateway = await loopbackServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (req.method === 'POST' && req.url === '/v1/videos') {
      const task = { ...succeededTask('http://unused.test', ID), completed_at: null, outputs: [], ...created };
      res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify(task));
      return;
    }
    res.writeHead(500, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Internal error', status: 500 }));
  });
  try {
    return await runCliCaptured(['generate', 'x', '--model', 'kling-v3', '--wait'], {
      env: { KLING_GATEWAY_URL: gateway.base, KLING_GATEWAY_API_KEY: TENANT_KEY },
      pause: async () => undefined,
    });
  } finally {
    await gateway.close();
  }
}

it('a video no provider took yet: names the cancel that stops it at no cost', async () => {
  const result = await stoppedFollowing({ status: 'queued', provider: null, provider_task_id: null, provider_status: null });
  expect(result.code).toBe(9);
  expect(result.stderr).toContain(
    `video ${ID} goes on at the gateway; follow it with: kling-gateway wait ${ID}\n` +
      `  no provider had it when last seen: to stop it, at no cost unless one has taken it since, run: kling-gateway cancel ${ID}\n`,
  );
});

it('a video a provider has: says it runs on and is billed, and names no cancel', async () => {
  const result = await stoppedFollowing({ status: 'processing', provider: 'freepik', provider_task_id: 'up-1', provider_status: 'IN_PROGRESS' });
  expect(result.code).toBe(9);
  expect(result.stderr).toContain(
    `video ${ID} goes on at the gateway; follow it with: kling-gateway wait ${ID}\n` +
      '  freepik has it: it runs to its end and is billed, followed or not\n',
  );
  expect(result.stderr).not.toContain('kling-gateway cancel');
});
