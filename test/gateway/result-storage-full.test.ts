/**
 * The result storage folder cannot be written: its disk is full (ENOSPC, on a write or on the
 * flush before the rename), over its quota (EDQUOT) or mounted read-only (EROFS). Injected into
 * node's calls the filesystem storage makes, as a full disk would answer them. A copy that cannot
 * be written is tried again as documented, then ends `not_stored` (the task reports the
 * provider's URL), never a short or empty file served as the video, and leaves no file behind.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';
import { capturedLogs } from '../support/captured-logs.js';

type Failing = 'writev' | 'fdatasync' | 'open';
const injected = vi.hoisted(() => ({ call: undefined as undefined | 'writev' | 'fdatasync' | 'open', code: 'ENOSPC', failures: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  const fail = (callback: (error: NodeJS.ErrnoException) => void) => {
    injected.failures++;
    const error = Object.assign(new Error(`${injected.code}: injected`), { code: injected.code }) as NodeJS.ErrnoException;
    setImmediate(() => callback(error));
  };
  return {
    ...actual,
    // Only the storage's temporary files: the rest of the gateway writes nothing through these.
    open: (path: string, flags: string, ...rest: any[]) => {
      const callback = rest.at(-1);
      if (injected.call === 'open' && String(path).endsWith('.partial')) return fail(callback);
      return (actual.open as any)(path, flags, ...rest);
    },
    writev: (fd: number, buffers: Buffer[], callback: any) => {
      if (injected.call === 'writev') {
        // Part of the bytes go down first, as on a disk that fills mid-file.
        return actual.writev(fd, [buffers[0]!.subarray(0, 100)], () => fail(callback));
      }
      return actual.writev(fd, buffers, callback);
    },
    fdatasync: (fd: number, callback: any) => (injected.call === 'fdatasync' ? fail(callback) : actual.fdatasync(fd, callback)),
  };
});

let gw: TestGateway | undefined;
afterEach(async () => {
  injected.call = undefined;
  injected.failures = 0;
  await gw?.close();
  gw = undefined;
});

function filesUnder(directory: string): string[] {
  return readdirSync(directory, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

it.each<[Failing, string]>([
  ['writev', 'ENOSPC'],
  ['fdatasync', 'ENOSPC'],
  ['writev', 'EDQUOT'],
  ['open', 'EROFS'],
])('ends a copy whose %s fails with %s not_stored after its tries, serves no file of its own and leaves none', async (call, code) => {
  const directory = mkdtempSync(join(tmpdir(), 'kling-gw-full-'));
  const logs = capturedLogs();
  gw = await startTestGateway({ config: { storage: { mode: 'copy', max_attempts: 3, filesystem: { path: directory } } }, logTo: logs.sink });
  Object.assign(injected, { call, code });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a full disk', routing: { providers: ['kling3api'] } });
  const done = await gw.finish(created.body.id, 5_000);

  expect(done.status).toBe('succeeded');
  expect(injected.failures).toBe(3);
  const upstreamUrl = done.outputs[0].upstream_url;
  expect(done.outputs[0]).toMatchObject({
    storage: 'not_stored',
    storage_error: expect.stringMatching(/^the gateway's storage could not write the copy \(gave up after 3 tries; copied again later, until 2026-11-23T12:00:..\.000Z\)$/),
    url: upstreamUrl,
    sha256: null,
    bytes: null,
  });
  // The content route sends the caller to the provider's file, not to anything of the gateway's.
  const content = await fetch(`${gw.url}/v1/videos/${done.id}/content`, { headers: { authorization: `Bearer ${TENANT_KEY}` }, redirect: 'manual' });
  expect(content.status).toBe(307);
  expect(content.headers.get('location')).toBe(upstreamUrl);
  // No short file under the key, and no temporary file left in `.partial`.
  expect(filesUnder(directory)).toEqual([]);
  // The operator is told, with the system's error and where.
  expect(logs.text()).toContain(`"code":"${code}"`);
  expect(logs.text()).toContain('output not stored; the task reports the upstream URL');
  expect(logs.text()).toContain(`"storage":"filesystem:${directory}"`);
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  expect(metrics).toMatch(/output_copies_total\{outcome="not_stored"\} 1/);
  expect(metrics).toMatch(/output_copies_total\{outcome="retrying"\} 2/);
});

it('stores the copy once the disk has room again within its tries', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'kling-gw-full-'));
  gw = await startTestGateway({ config: { storage: { mode: 'copy', max_attempts: 3, filesystem: { path: directory } } } });
  Object.assign(injected, { call: 'fdatasync', code: 'ENOSPC' });
  const created = await gw.create({ model: 'kling-v3', prompt: 'space freed', routing: { providers: ['kling3api'] } });
  await gw.advanceUntil(async () => injected.failures >= 1, 1_000);
  injected.call = undefined;
  const done = await gw.finish(created.body.id, 5_000);
  expect(done.outputs[0]).toMatchObject({ storage: 'stored' });
  expect(filesUnder(directory)).toHaveLength(1);
  expect(filesUnder(directory)[0]).not.toContain('.partial');
});
