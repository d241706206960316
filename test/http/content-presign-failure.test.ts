/**
 * A stored copy served by redirect (`storage.s3.serve: redirect`) whose presigned URL cannot be
 * made right now: the SDK's credential chain failing (an instance role's credentials not
 * refreshed, a metadata endpoint not answering). As a copy storage cannot read right now, it is
 * answered `503` with `Retry-After`, the storage's words in the log only, never a `500`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { FilesystemStorage } from '../../src/storage/filesystem-storage.js';
import { capturedLogs } from '../support/captured-logs.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway | undefined;
afterAll(() => gw?.close());

class UnsignableStorage extends FilesystemStorage {
  failing = false;
  async presignedUrl(key: string): Promise<string> {
    if (this.failing) throw Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
    return `https://bucket.example.com/${key}?X-Amz-Signature=abc`;
  }
}

it('answers 503 with Retry-After when the presigned URL cannot be made, and logs why', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'kling-presign-'));
  const storage = new UnsignableStorage(directory);
  const logs = capturedLogs();
  gw = await startTestGateway({ config: { storage: { mode: 'copy', filesystem: { path: directory } } }, objectStorage: storage, logTo: logs.sink });
  const task = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'presigned', routing: { providers: ['kling3api'] } })).body.id);
  expect(task.outputs[0].storage).toBe('stored');
  const path = `/v1/videos/${task.id}/content?index=0`;
  const signed = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${TENANT_KEY}` }, redirect: 'manual' });
  expect(signed.status).toBe(302);

  storage.failing = true;
  for (const method of ['GET', 'HEAD']) {
    const answer = await fetch(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${TENANT_KEY}` }, redirect: 'manual' });
    expect([method, answer.status, answer.headers.get('retry-after'), answer.headers.get('location')]).toEqual([method, 503, '10', null]);
    if (method === 'GET') {
      const problem = (await answer.json()) as { detail: string };
      expect(problem).toMatchObject({ status: 503, type: expect.stringMatching(/\/retry-later$/) });
      expect(problem.detail).not.toMatch(/credentials/i);
    }
  }
  expect(logs.text()).toContain('Could not load credentials from any providers');
});
