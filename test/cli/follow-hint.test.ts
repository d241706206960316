/**
 * The commands `generate --wait` and `wait` name to go on with a video they stopped following (or
 * could not save) keep where the user asked it saved: `-o fox.mp4` run as `wait <id>` alone would
 * save it as `./<id>.mp4`, and `--no-download` run as `wait <id>` would download it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loopbackServer } from '../support/raw-answer.js';
import { succeededTask } from '../support/fake-task-gateway.js';
import { runCliCaptured } from '../support/cli-run.js';
import { TENANT_KEY } from '../support/harness.js';

const ID = 'vid_hinted';

/** A gateway that takes the create (queued) and then fails every read of the task with a 500, or serves it succeeded with a file host that fails. */
async function withGateway<T>(mode: 'reads-fail' | 'file-fails', body: (base: string) => Promise<T>): Promise<T> {
  let base = '';
  const gateway = await loopbackServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const path = (req.url ?? '').split('?')[0]!;
    const problem = (status: number) =>
      res.writeHead(status, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Internal error', status }));
    const done = succeededTask(base, ID);
    if (req.method === 'POST' && path === '/v1/videos') {
      const task = mode === 'reads-fail' ? { ...done, status: 'queued', completed_at: null, provider_status: 'CREATED', outputs: [] } : done;
      res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify(task));
      return;
    }
    if (mode === 'file-fails' && path === `/v1/videos/${ID}`) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(done));
      return;
    }
    problem(500);
  });
  base = gateway.base;
  try {
    return await body(gateway.base);
  } finally {
    await gateway.close();
  }
}

function run(base: string, args: string[]) {
  return runCliCaptured(args, { env: { KLING_GATEWAY_URL: base, KLING_GATEWAY_API_KEY: TENANT_KEY }, pause: async () => undefined });
}

describe('the command named to go on with a video keeps its -o', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kling-hint-'));

  it('generate --wait -o <file> stopped while following names wait <id> -o <file>', async () => {
    const target = join(dir, 'my fox.mp4');
    const result = await withGateway('reads-fail', (base) => run(base, ['generate', 'x', '--model', 'kling-v3', '-o', target]));
    expect(result.code).toBe(9);
    expect(result.stderr).toContain(`video ${ID} created; if this command stops, follow it with: kling-gateway wait ${ID} -o '${target}'\n`);
    expect(result.stderr).toContain(`video ${ID} goes on at the gateway; follow it with: kling-gateway wait ${ID} -o '${target}'\n`);
  });

  it('generate --wait --no-download stopped names wait <id> --no-download; plain generate --wait names plain wait', async () => {
    const noDownload = await withGateway('reads-fail', (base) => run(base, ['generate', 'x', '--model', 'kling-v3', '--wait', '--no-download']));
    expect(noDownload.stderr).toContain(`follow it with: kling-gateway wait ${ID} --no-download\n`);
    const plain = await withGateway('reads-fail', (base) => run(base, ['generate', 'x', '--model', 'kling-v3', '--wait']));
    expect(plain.stderr).toContain(`video ${ID} goes on at the gateway; follow it with: kling-gateway wait ${ID}\n`);
  });

  it('generate --wait -o <file> --force whose download failed names download <id> -o <file> --force', async () => {
    const target = join(dir, 'fox.mp4');
    const result = await withGateway('file-fails', (base) => run(base, ['generate', 'x', '--model', 'kling-v3', '-o', target, '--force']));
    expect(result.code).toBe(9);
    expect(result.stderr).toContain(`video ${ID} succeeded but was not saved; save it with: kling-gateway download ${ID} -o ${target} --force\n`);
  });
});
