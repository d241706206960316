import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { SAMPLE_MP4, SAMPLE_PNG } from '../../src/sandbox/simulator-kit.js';
import type { ObjectStorage } from '../../src/storage/object-storage.js';
import { FilesystemStorage } from '../../src/storage/filesystem-storage.js';
import { OTHER_TENANT_KEY, TENANT_KEY, startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { capturedLogs } from '../support/captured-logs.js';
import { ResultServer } from '../support/result-server.js';
import { loopbackServer } from '../support/raw-answer.js';
import { silentServer, type SilentServer } from '../support/silent-server.js';

const DAY_MS = 24 * 3600_000;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

let gw: TestGateway | undefined;
let files: ResultServer | undefined;
afterEach(async () => {
  await gw?.close();
  await files?.close();
  gw = undefined;
  files = undefined;
});

function outputsDir(): string {
  return mkdtempSync(join(tmpdir(), 'kling-gw-custody-'));
}

async function startCopying(config: Record<string, unknown> = {}, directory = outputsDir()) {
  const storage = { mode: 'copy', filesystem: { path: directory }, ...(config.storage as object | undefined) };
  gw = await startTestGateway({ config: { ...config, storage } });
  return gw;
}

async function download(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers, redirect: 'manual' });
  return { response, bytes: Buffer.from(await response.arrayBuffer()) };
}

/** A copying gateway with one finished kling3api video stored: its content URL, the key's header and the file's size. */
async function copiedVideo() {
  const gateway = await startCopying();
  const done = await gateway.finish((await gateway.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
  return { done, url: `${gateway.url}/v1/videos/${done.id}/content`, auth: { authorization: `Bearer ${TENANT_KEY}` }, size: SAMPLE_MP4.length };
}

/**
 * A first gateway process whose storage never finishes a write, stopped mid-copy: its task is
 * left in `storing` (still `processing` to the caller) in the SQLite file it leaves behind.
 */
async function stoppedMidCopy() {
  const database = tempDatabaseUrl();
  const directory = outputsDir();
  const hanging: ObjectStorage = {
    kind: 'hanging',
    description: 'never finishes',
    write: (_key, body, options) =>
      new Promise((_resolve, reject) => {
        body.resume();
        options.signal?.addEventListener('abort', () => reject(options.signal?.reason), { once: true });
      }),
    read: () => Promise.reject(new Error('unused')),
    delete: async () => undefined,
    close: async () => undefined,
  };
  const first = await startTestGateway({
    config: { database: { url: database }, storage: { mode: 'copy', filesystem: { path: directory } } },
    objectStorage: hanging,
  });
  const created = await first.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } });
  // Polled by hand: a whole worker pass would wait for the copy that never ends.
  for (let step = 0; step < 30 && (await first.gateway.store.getTask(created.body.id))?.phase !== 'storing'; step++) {
    await first.clock.advance(1_000);
    await first.gateway.tracker.tick();
  }
  expect((await first.gateway.store.getTask(created.body.id))?.phase).toBe('storing');
  expect((await first.get(created.body.id)).body.status).toBe('processing');
  await first.gateway.close();
  return { database, directory, first, created };
}

/** A Freepik task whose (signed) webhook reports it done with `urls` as its results. */
async function freepikTaskFinishedWith(gateway: TestGateway, urls: string[], extra: Record<string, unknown> = {}) {
  const created = await gateway.create({ model: 'kling-v3', prompt: 'a heron in reeds', duration: 5, routing: { providers: ['freepik'] }, ...extra });
  expect(created.body.status).toBe('queued');
  const raw = JSON.stringify({ task_id: created.body.provider_task_id, status: 'COMPLETED', generated: urls });
  const id = `wh_${Math.random().toString(16).slice(2)}`;
  const timestamp = String(Math.floor(gateway.clock.now() / 1000));
  const secret = gateway.endpoints.get('freepik')!.webhookSecret!;
  const answer = await gateway.request('POST', '/v1/webhooks/freepik', raw, {
    'webhook-id': id,
    'webhook-timestamp': timestamp,
    'webhook-signature': signFreepikWebhook(secret, id, timestamp, raw),
  }, null);
  expect(answer.status).toBe(200);
  return created.body.id as string;
}

/**
 * A Freepik task finished with one result at `path` of a file host (kept in `files`) that fails its
 * first two GETs (503, 502); back once the first copy try was answered. Copies are tried 4 times.
 */
async function copyRetrying(path: string) {
  const host = (files = await new ResultServer().start());
  const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 4 } });
  const url = host.host(path, { body: SAMPLE_MP4, contentType: 'video/mp4', failFirst: [503, 502] });
  const id = await freepikTaskFinishedWith(gateway, [url]);
  await gateway.advanceUntil(async () => host.requests.length >= 1, 100);
  await gateway.advance(0);
  return { gateway, url, id, host };
}

/**
 * A Freepik task finished with one result at `silent` (a file host that never answers), its copy
 * started: the task is `storing`, leased for 30 s, the copy's limits are 10 minutes.
 */
async function copyStartedFrom(silent: SilentServer) {
  const gateway = await startCopying({
    tracking: { lease_ms: 30_000 },
    storage: { allow_private_sources: true, copy_timeout_ms: 600_000, idle_timeout_ms: 600_000 },
  });
  const id = await freepikTaskFinishedWith(gateway, [`http://127.0.0.1:${silent.port}/slow.mp4`]);
  await vi.waitFor(() => expect(silent.received()).toContain('GET /slow.mp4'), { timeout: 10_000, interval: 10 });
  const copying = (await gateway.gateway.store.getTask(id))!;
  expect(copying.phase).toBe('storing');
  return { gateway, id, copying };
}

describe('result custody on the filesystem', () => {
  it('renews its lease while a copy runs, so a replica that dies mid-copy holds the task for one lease, not the copy time limit', async () => {
    const silent = await silentServer();
    try {
      const { gateway, id, copying } = await copyStartedFrom(silent);
      // Copying: leased for one lease (30 s), not for the copy time limit (10 min).
      expect(copying.lease_owner).not.toBeNull();
      expect(Number(copying.lease_until) - gateway.clock.now()).toBeLessThanOrEqual(30_000);

      // A minute and a half of gateway time with the copy still running: the lease was renewed all along.
      // (The clock alone: a worker pass would wait for the hanging copy.)
      for (let step = 0; step < 9; step++) {
        await gateway.clock.advance(10_000);
        await new Promise((resolve) => setTimeout(resolve, 20));
        const held = (await gateway.gateway.store.getTask(id))!;
        expect(held).toMatchObject({ phase: 'storing', lease_owner: copying.lease_owner });
        // Each renewal holds it a whole lease more: past the next renewal (every 10 s), so no replica may take it meanwhile.
        expect(Number(held.lease_until)).toBeGreaterThan(gateway.clock.now() + 10_000);
      }
      expect((await gateway.get(id)).body.status).toBe('processing');
    } finally {
      await silent.close();
    }
  });

  it('keeps renewing the lease of a copy after the store refused one renewal, so no other replica takes the task', async () => {
    const silent = await silentServer();
    try {
      const { gateway, id, copying } = await copyStartedFrom(silent);

      // The first renewal fails (the database did not answer); the ones after it work again.
      const store = gateway.gateway.store;
      const update = store.updateTask.bind(store);
      let refused = 0;
      vi.spyOn(store, 'updateTask').mockImplementation((...args: Parameters<typeof store.updateTask>) => {
        if (refused === 0 && args[0] === id && Object.keys(args[1]).join() === 'lease_until') {
          refused++;
          return Promise.reject(new Error('connection terminated unexpectedly'));
        }
        return update(...args);
      });
      for (let step = 0; step < 9; step++) {
        await gateway.clock.advance(10_000);
        await new Promise((resolve) => setTimeout(resolve, 20));
        const held = (await gateway.gateway.store.getTask(id))!;
        expect(held).toMatchObject({ phase: 'storing', lease_owner: copying.lease_owner });
        expect(Number(held.lease_until)).toBeGreaterThan(gateway.clock.now());
      }
      expect(refused).toBe(1);
      expect((await gateway.get(id)).body.status).toBe('processing');
    } finally {
      await silent.close();
    }
  });

  it('copies other tasks while a file host holds one copy unanswered: a copy holds only its own slot', async () => {
    const silent = await silentServer();
    files = await new ResultServer().start();
    try {
      const gateway = await startCopying({ storage: { allow_private_sources: true, copy_timeout_ms: 600_000, idle_timeout_ms: 600_000, copy_concurrency: 2 } });
      const stuck = await freepikTaskFinishedWith(gateway, [`http://127.0.0.1:${silent.port}/never.mp4`]);
      for (let i = 0; i < 1_000 && !silent.received().includes('GET /never.mp4'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(silent.received()).toContain('GET /never.mp4');

      // Three more tasks finish meanwhile, more than the one slot left: each is copied as a slot
      // frees, none waits for the copy that never ends. (The clock alone: a whole worker pass
      // waits for every copy on its way, the silent one too.)
      const ids: string[] = [];
      for (const name of ['a', 'b', 'c']) {
        ids.push(await freepikTaskFinishedWith(gateway, [files.host(`/${name}.mp4`, { body: SAMPLE_MP4, contentType: 'video/mp4' })]));
      }
      const statuses = async () => Promise.all(ids.map(async (id) => (await gateway.get(id)).body.status as string));
      for (let i = 0; i < 1_000 && (await statuses()).some((status) => status !== 'succeeded'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(await statuses()).toEqual(['succeeded', 'succeeded', 'succeeded']);
      for (const id of ids) expect((await gateway.get(id)).body.outputs[0]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4) });
      expect((await gateway.get(stuck)).body.status).toBe('processing');
    } finally {
      await silent.close();
    }
  });

  it('does not copy a task twice when a pass claims it again while its copy runs (its lease ran out while the store refused the renewals)', async () => {
    let finish: (() => void) | undefined;
    let asked = 0;
    const host = await loopbackServer((_req, res) => {
      asked += 1;
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': String(SAMPLE_MP4.length) });
      res.write(SAMPLE_MP4.subarray(0, 1000));
      finish = () => res.end(SAMPLE_MP4.subarray(1000));
    });
    try {
      const gateway = await startCopying({ tracking: { lease_ms: 30_000 }, storage: { allow_private_sources: true, copy_timeout_ms: 600_000, idle_timeout_ms: 600_000 } });
      const id = await freepikTaskFinishedWith(gateway, [`${host.base}/result.mp4`]);
      for (let i = 0; i < 1_000 && !finish; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(asked).toBe(1);
      // The lease ran out (renewals the store refused): the next pass claims the task again.
      await gateway.gateway.store.updateTask(id, { lease_until: gateway.clock.now() - 1 });
      await gateway.gateway.custody.start();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(asked).toBe(1);
      finish!();
      for (let i = 0; i < 1_000 && (await gateway.get(id)).body.status !== 'succeeded'; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect((await gateway.get(id)).body.outputs[0]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4) });
      expect(asked).toBe(1);
    } finally {
      await host.close();
    }
  });

  it('stops a copy once another replica took its task (its lease was lost), leaving no file the other one did not record', async () => {
    // A file host that sends half the file, then the rest only when told.
    let finish: (() => void) | undefined;
    let closed = false;
    const host = await loopbackServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': String(SAMPLE_MP4.length) });
      res.write(SAMPLE_MP4.subarray(0, 1000));
      res.on('close', () => (closed = true));
      finish = () => res.end(SAMPLE_MP4.subarray(1000));
    });
    try {
      const directory = outputsDir();
      const gateway = await startCopying(
        { tracking: { lease_ms: 30_000 }, storage: { allow_private_sources: true, copy_timeout_ms: 600_000, idle_timeout_ms: 600_000 } },
        directory,
      );
      const id = await freepikTaskFinishedWith(gateway, [`${host.base}/result.mp4`]);
      for (let i = 0; i < 1_000 && !finish; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(finish).toBeDefined();
      const copying = (await gateway.gateway.store.getTask(id))!;
      expect(copying.phase).toBe('storing');

      // This replica stalled past its lease and another one took the task (and decides about its outputs now).
      await gateway.gateway.store.updateTask(id, { lease_owner: 'replica-b', lease_until: gateway.clock.now() + 60_000 });
      // The next renewal finds the lease gone: the copy stops.
      await gateway.clock.advance(10_000);
      for (let i = 0; i < 1_000 && !closed; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(closed).toBe(true);
      finish!();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const key = join(directory, 'acme', new Date(copying.created_at).toISOString().slice(0, 10), `${id}-0.mp4`);
      expect(existsSync(key)).toBe(false);
      expect(await gateway.gateway.store.getTask(id)).toMatchObject({ phase: 'storing', lease_owner: 'replica-b' });
    } finally {
      await host.close();
    }
  });

  it.each([
    ['freepik', { model: 'kling-v3', prompt: 'a red fox in snow', duration: 5 }, 'video/mp4', SAMPLE_MP4],
    ['kling3api', { model: 'kling-v3', prompt: 'a red fox in snow', duration: 5 }, 'video/mp4', SAMPLE_MP4],
    ['kling-legacy', { model: 'kling-v2-6', prompt: 'a red fox in snow', duration: 5 }, 'video/mp4', SAMPLE_MP4],
    ['kling-legacy', { model: 'kling-v1', operation: 'image-generation', prompt: 'a red fox' }, 'image/png', SAMPLE_PNG],
  ] as const)('copies the %s result before the task succeeds, byte for byte, and serves it (%s)', async (provider, request, type, sample) => {
    const directory = outputsDir();
    const gateway = await startCopying({}, directory);
    const created = await gateway.create({ ...request, routing: { providers: [provider] } });
    const done = await gateway.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    const [output] = done.outputs;

    // The upstream's file, fetched from the upstream itself, is the reference.
    const upstream = await download(output.upstream_url);
    expect(upstream.response.status).toBe(200);
    expect(upstream.bytes.equals(sample)).toBe(true);
    expect(output).toMatchObject({
      storage: 'stored',
      storage_error: null,
      sha256: sha256(upstream.bytes),
      bytes: upstream.bytes.length,
      content_type: type,
      upstream_url_gone: false,
      expires_at: null,
    });
    expect(output.stored_at).not.toBeNull();
    expect(output.url).toMatch(new RegExp(`^${gateway.url}/v1/videos/${done.id}/content\\?index=0&expires=\\d+&signature=`));
    expect(Date.parse(output.url_expires_at)).toBeGreaterThan(gateway.clock.now());
    // Kling documents that it deletes results after 30 days; Freepik and kling3api document no lifetime.
    if (provider === 'kling-legacy') {
      // Counted from when the gateway saw the upstream finish: between creation and completion.
      const finishedUpstream = Date.parse(output.upstream_url_expires_at) - 30 * DAY_MS;
      expect(finishedUpstream).toBeGreaterThan(Date.parse(done.created_at));
      expect(finishedUpstream).toBeLessThanOrEqual(Date.parse(done.completed_at));
    } else {
      expect(output.upstream_url_expires_at).toBeNull();
    }

    // The signed link works without the key; the content route works with it.
    for (const [url, headers] of [
      [output.url, {}],
      [`${gateway.url}/v1/videos/${done.id}/content?index=0`, { authorization: `Bearer ${TENANT_KEY}` }],
    ] as const) {
      const copy = await download(url, headers);
      expect(copy.response.status).toBe(200);
      expect(copy.bytes.equals(upstream.bytes)).toBe(true);
      expect(copy.response.headers.get('content-type')).toBe(type);
      expect(copy.response.headers.get('content-length')).toBe(String(upstream.bytes.length));
      expect(copy.response.headers.get('etag')).toBe(`"${output.sha256}"`);
      expect(copy.response.headers.get('accept-ranges')).toBe('bytes');
    }
    // The copy is a file under the storage directory, one folder per tenant and UTC day of the task's creation.
    expect(readdirSync(join(directory, 'acme', done.created_at.slice(0, 10)))).toEqual([`${done.id}-0.${type === 'video/mp4' ? 'mp4' : 'png'}`]);
  });

  it('answers byte ranges (206), an unsatisfiable range (416), HEAD and a matching ETag (304)', async () => {
    const { done, url, auth, size } = await copiedVideo();

    const first = await download(url, { ...auth, range: 'bytes=0-9' });
    expect(first.response.status).toBe(206);
    expect(first.response.headers.get('content-range')).toBe(`bytes 0-9/${size}`);
    expect(first.response.headers.get('content-length')).toBe('10');
    expect(first.bytes.equals(SAMPLE_MP4.subarray(0, 10))).toBe(true);

    const tail = await download(url, { ...auth, range: 'bytes=-100' });
    expect(tail.response.status).toBe(206);
    expect(tail.response.headers.get('content-range')).toBe(`bytes ${size - 100}-${size - 1}/${size}`);
    expect(tail.bytes.equals(SAMPLE_MP4.subarray(size - 100))).toBe(true);

    const middle = await download(url, { ...auth, range: `bytes=1000-${size + 50}` });
    expect(middle.response.status).toBe(206);
    expect(middle.bytes.equals(SAMPLE_MP4.subarray(1000))).toBe(true);

    const outside = await download(url, { ...auth, range: `bytes=${size}-` });
    expect(outside.response.status).toBe(416);
    expect(outside.response.headers.get('content-range')).toBe(`bytes */${size}`);
    expect(outside.response.headers.get('content-type')).toContain('application/problem+json');

    // An If-Range for another version gets the whole file.
    const stale = await download(url, { ...auth, range: 'bytes=0-9', 'if-range': '"not-this-one"' });
    expect(stale.response.status).toBe(200);
    expect(stale.bytes.length).toBe(size);

    const head = await fetch(url, { method: 'HEAD', headers: auth });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(size));

    const notModified = await download(url, { ...auth, 'if-none-match': `"${done.outputs[0].sha256}"` });
    expect(notModified.response.status).toBe(304);
    expect(notModified.bytes.length).toBe(0);
  });

  it('answers a suffix range longer than the file with the whole file (206), not 416, as RFC 9110 says', async () => {
    const { url, auth, size } = await copiedVideo();

    // A player asking for "the last 64 KiB" of a file that is smaller gets all of it.
    for (const suffix of [size, size + 1, 65_536]) {
      const tail = await download(url, { ...auth, range: `bytes=-${suffix}` });
      expect([suffix, tail.response.status]).toEqual([suffix, 206]);
      expect(tail.response.headers.get('content-range')).toBe(`bytes 0-${size - 1}/${size}`);
      expect(tail.response.headers.get('content-length')).toBe(String(size));
      expect(tail.bytes.equals(SAMPLE_MP4)).toBe(true);
    }
    // A suffix of nothing is still unsatisfiable.
    const none = await download(url, { ...auth, range: 'bytes=-0' });
    expect(none.response.status).toBe(416);
    expect(none.response.headers.get('content-range')).toBe(`bytes */${size}`);
  });

  it("answers a copy it cannot read with a problem that carries none of the file's headers (not cacheable, no ETag, no file name)", async () => {
    const directory = outputsDir();
    let readFails = false;
    const files = new FilesystemStorage(directory);
    const flaky: ObjectStorage = {
      kind: 'filesystem',
      description: 'fails reads on demand',
      write: (key, body, options) => files.write(key, body, options),
      read: (key, range) => (readFails ? Promise.reject(new Error('storage is unavailable')) : files.read(key, range)),
      delete: (key) => files.delete(key),
      close: async () => undefined,
    };
    gw = await startTestGateway({ config: { storage: { mode: 'copy', filesystem: { path: directory } } }, objectStorage: flaky });
    const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    const url = `${gw.url}/v1/videos/${done.id}/content`;
    const auth = { authorization: `Bearer ${TENANT_KEY}` };
    const fileHeaders = ['last-modified', 'content-disposition', 'content-range', 'accept-ranges'];
    const fileEtag = `"${done.outputs[0].sha256}"`;

    // Storage fails for a moment: a browser or proxy must not keep the error as the file (nor revalidate it with the file's ETag).
    readFails = true;
    for (const headers of [auth, { ...auth, range: 'bytes=0-9' }]) {
      const failed = await download(url, headers);
      // Said as what it is, a storage problem to retry, without the store's own words.
      expect(failed.response.status).toBe(503);
      expect(failed.response.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(failed.response.headers.get('content-type')).toContain('application/problem+json');
      expect(JSON.parse(failed.bytes.toString()).detail).toMatch(/could not be read from storage/);
      expect(failed.bytes.toString()).not.toContain('storage is unavailable');
      expect(failed.response.headers.get('cache-control')).toBe('no-store');
      for (const name of fileHeaders) expect([name, failed.response.headers.get(name)]).toEqual([name, null]);
      expect(failed.response.headers.get('etag')).not.toBe(fileEtag);
    }
    readFails = false;
    expect((await download(url, auth)).response.status).toBe(200);

    // The file is gone from storage (deleted by hand): 410, and again nothing of the file.
    rmSync(join(directory, 'acme', done.created_at.slice(0, 10), `${done.id}-0.mp4`));
    const gone = await download(url, { ...auth, range: 'bytes=0-9' });
    expect(gone.response.status).toBe(410);
    expect(gone.response.headers.get('cache-control')).toBe('no-store');
    for (const name of fileHeaders) expect([name, gone.response.headers.get(name)]).toEqual([name, null]);
    expect(gone.response.headers.get('etag')).not.toBe(fileEtag);
    // HEAD says what GET would: gone, not a 200 with the file's headers.
    const head = await fetch(url, { method: 'HEAD', headers: auth });
    expect(head.status).toBe(410);
    expect(head.headers.get('etag')).not.toBe(fileEtag);
    readFails = true;
    expect((await fetch(url, { method: 'HEAD', headers: auth })).status).toBe(503);
  });

  it('answers 409 for the content of a task still generating (as for one being copied), and 404 for an index a finished task does not have', async () => {
    const gateway = await startCopying();
    const created = await gateway.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } });
    expect(created.body.status).not.toBe('succeeded');
    const url = `${gateway.url}/v1/videos/${created.body.id}/content?index=0`;
    const auth = { authorization: `Bearer ${TENANT_KEY}` };
    const early = await download(url, auth);
    expect(early.response.status).toBe(409);
    expect(JSON.parse(early.bytes.toString()).detail).toMatch(/served once the task has succeeded/);

    // Once it succeeded, the output is served, and an index it does not have is 404.
    await gateway.finish(created.body.id);
    expect((await download(url, auth)).response.status).toBe(200);
    expect((await download(url.replace('index=0', 'index=1'), auth)).response.status).toBe(404);
  });

  it('checks the tenant: another tenant, a forged or expired signature and no key are refused', async () => {
    const gateway = await startCopying({ storage: { mode: 'copy', url_ttl_seconds: 3600 } });
    const done = await gateway.finish((await gateway.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    const base = `${gateway.url}/v1/videos/${done.id}/content?index=0`;
    expect((await download(base, { authorization: `Bearer ${OTHER_TENANT_KEY}` })).response.status).toBe(404);
    expect((await download(base)).response.status).toBe(401);
    expect((await download(base, { authorization: 'Bearer not-a-key' })).response.status).toBe(401);
    const signed = new URL(done.outputs[0].url);
    signed.searchParams.set('signature', 'A'.repeat(43));
    expect((await download(signed.toString())).response.status).toBe(401);
    // A link for output 0 does not open output 1 (or any other index).
    const moved = new URL(done.outputs[0].url);
    moved.searchParams.set('index', '1');
    expect((await download(moved.toString())).response.status).toBe(401);
    expect((await download(`${gateway.url}/v1/videos/${done.id}/content?index=1`, { authorization: `Bearer ${TENANT_KEY}` })).response.status).toBe(404);
    expect((await download(`${gateway.url}/v1/videos/${done.id}/content?index=x`, { authorization: `Bearer ${TENANT_KEY}` })).response.status).toBe(400);
    // Past its expiry the link stops working; a fresh read of the task gives a new one.
    await gateway.clock.advance(2 * 3600_000);
    expect((await download(done.outputs[0].url)).response.status).toBe(401);
    const again = (await gateway.get(done.id)).body;
    expect((await download(again.outputs[0].url)).response.status).toBe(200);
  });

  it("holds a signed link to what it was made for: another video of the tenant, a later expiry or a signature of another length are refused (401)", async () => {
    const gateway = await startCopying({ storage: { mode: 'copy', url_ttl_seconds: 3600 } });
    const request = { model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } };
    const done = await gateway.finish((await gateway.create(request)).body.id);
    const other = await gateway.finish((await gateway.create(request)).body.id);
    expect((await download(done.outputs[0].url)).response.status).toBe(200);
    // The link of one video does not open another of the same tenant.
    const elsewhere = new URL(done.outputs[0].url);
    elsewhere.pathname = elsewhere.pathname.replace(done.id, other.id);
    expect((await download(elsewhere.toString())).response.status).toBe(401);
    // Its expiry is signed: moved later, the link is refused.
    const extended = new URL(done.outputs[0].url);
    extended.searchParams.set('expires', String(Number(extended.searchParams.get('expires')) + 365 * 24 * 3600));
    expect((await download(extended.toString())).response.status).toBe(401);
    // A signature shorter or longer than a real one is a wrong signature, not a server error.
    for (const signature of ['A', 'A'.repeat(44), 'A'.repeat(200)]) {
      const forged = new URL(done.outputs[0].url);
      forged.searchParams.set('signature', signature);
      expect([signature.length, (await download(forged.toString())).response.status]).toEqual([signature.length, 401]);
    }
  });

  it("keeps a link's signature out of the request log, however the parameter's name is written", async () => {
    const logs = capturedLogs();
    const directory = outputsDir();
    gw = await startTestGateway({ config: { storage: { mode: 'copy', filesystem: { path: directory } } }, logTo: logs.sink });
    const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    const link = done.outputs[0].url as string;
    const signature = new URL(link).searchParams.get('signature')!;
    // Percent-encoded letters name the same parameter (the link works), another letter case is refused (400): neither is logged.
    const encoded = await download(link.replace('&signature=', '&%73ignatur%65='));
    expect(encoded.response.status).toBe(200);
    expect(encoded.bytes.equals(SAMPLE_MP4)).toBe(true);
    expect((await download(link.replace('&signature=', '&Signature='))).response.status).toBe(400);
    expect((await download(link)).response.status).toBe(200);
    const lines = () => logs.text().trim().split('\n').filter((line) => line.includes('/content?'));
    await vi.waitFor(() => expect(lines()).toHaveLength(3), { timeout: 10_000 });
    expect(lines().join('\n')).not.toContain(signature);
  });

  it('keeps serving the copy after the upstream deletes its file (by hand, and Kling after 30 days)', async () => {
    const gateway = await startCopying();
    const freepik = await gateway.finish((await gateway.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['freepik'] } })).body.id);
    gateway.simulator('freepik').expireResult(freepik.provider_task_id);
    expect((await download(freepik.outputs[0].upstream_url)).response.status).toBe(404);
    const copy = await download(freepik.outputs[0].url);
    expect(copy.response.status).toBe(200);
    expect(copy.bytes.equals(SAMPLE_MP4)).toBe(true);

    const legacy = await gateway.finish(
      (await gateway.create({ model: 'kling-v2-6', prompt: 'x', duration: 5, routing: { providers: ['kling-legacy'] } })).body.id,
    );
    expect((await download(legacy.outputs[0].upstream_url)).response.status).toBe(200);
    await gateway.clock.advance(31 * DAY_MS);
    expect((await download(legacy.outputs[0].upstream_url)).response.status).toBe(404);
    const fresh = (await gateway.get(legacy.id)).body;
    const kept = await download(fresh.outputs[0].url);
    expect(kept.response.status).toBe(200);
    expect(kept.bytes.equals(SAMPLE_MP4)).toBe(true);
  });

  it("deletes copies after the tenant's retention (and only those), and says so on the output", async () => {
    const directory = outputsDir();
    const gateway = await startCopying({ tenants: { acme: { retention_days: 2 } }, storage: { mode: 'copy', retention_days: 10 } }, directory);
    const request = { model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } };
    const mine = await gateway.finish((await gateway.create(request)).body.id);
    const theirId = (await gateway.request('POST', '/v1/videos', request, {}, OTHER_TENANT_KEY)).body.id;
    let theirs: any;
    await gateway.advanceUntil(async () => {
      theirs = (await gateway.request('GET', `/v1/videos/${theirId}`, undefined, {}, OTHER_TENANT_KEY)).body;
      return theirs.status === 'succeeded';
    });
    expect(Date.parse(mine.outputs[0].expires_at) - Date.parse(mine.outputs[0].stored_at)).toBe(2 * DAY_MS);
    expect(Date.parse(theirs.outputs[0].expires_at) - Date.parse(theirs.outputs[0].stored_at)).toBe(10 * DAY_MS);
    const file = join(directory, 'acme', mine.created_at.slice(0, 10), `${mine.id}-0.mp4`);
    expect(existsSync(file)).toBe(true);

    await gateway.advance(DAY_MS);
    expect((await gateway.get(mine.id)).body.outputs[0].storage).toBe('stored');
    await gateway.advance(DAY_MS + 60_000);
    const expired = (await gateway.get(mine.id)).body;
    expect(expired.status).toBe('succeeded');
    expect(expired.outputs[0]).toMatchObject({ storage: 'expired', storage_error: 'deleted after the 2-day retention', url: mine.outputs[0].upstream_url });
    expect(existsSync(file)).toBe(false);
    const gone = await download(`${gateway.url}/v1/videos/${mine.id}/content`, { authorization: `Bearer ${TENANT_KEY}` });
    expect(gone.response.status).toBe(410);
    // The other tenant's copy is kept for its own (the gateway's) ten days.
    const kept = (await gateway.request('GET', `/v1/videos/${theirs.id}`, undefined, {}, OTHER_TENANT_KEY)).body;
    expect(kept.outputs[0].storage).toBe('stored');
  });

  it('deletes a copy past its retention even when a whole page of older ones cannot be deleted', async () => {
    // Each pass looked at the 100 copies whose retention ended first and stopped at a page where
    // nothing could be deleted: 100 copies the storage refuses to delete held every later one forever.
    const directory = outputsDir();
    const refused = new Set<string>();
    class RefusingSome extends FilesystemStorage {
      override async delete(key: string): Promise<void> {
        if ([...refused].some((id) => key.includes(id))) throw new Error('access denied');
        return super.delete(key);
      }
    }
    const gateway = (gw = await startTestGateway({
      config: { storage: { mode: 'copy', filesystem: { path: directory }, retention_days: 1 } },
      objectStorage: new RefusingSome(directory),
    }));
    const request = { model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } };
    const older = await Promise.all(Array.from({ length: 100 }, async () => (await gateway.create(request)).body.id as string));
    for (const id of older) refused.add(id);
    // Each check reads only the copies not yet seen stored, one at a time up to the first that is
    // not: a check of all 100 at every step took most of the test's time on a loaded machine.
    const waiting = new Set(older);
    await gateway.advanceUntil(async () => {
      for (const id of waiting) {
        if ((await gateway.get(id)).body.outputs[0]?.storage !== 'stored') return false;
        waiting.delete(id);
      }
      return true;
    });
    await gateway.advance(60_000);
    const later = await gateway.finish((await gateway.create(request)).body.id);
    await gateway.advanceUntil(async () => (await gateway.get(later.id)).body.outputs[0]?.storage === 'stored');

    await gateway.advance(DAY_MS + 120_000);
    await gateway.advanceUntil(async () => (await gateway.get(later.id)).body.outputs[0]?.storage === 'expired', 60_000, 5);
    // The copies the storage would not delete are still stored, and still tried by every pass.
    expect((await gateway.get(older[0]!)).body.outputs[0].storage).toBe('stored');
  });

  it("never says a content link works past the copy's retention (url_expires_at), since the copy is deleted then", async () => {
    const gateway = await startCopying({ tenants: { acme: { retention_days: 1 } } });
    const done = await gateway.finish((await gateway.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    expect(done.outputs[0].storage).toBe('stored');
    // Read again half a day later: a fresh link, but the copy is kept only half a day more.
    await gateway.advance(12 * 3600_000);
    const read = (await gateway.get(done.id)).body.outputs[0];
    expect(read.storage).toBe('stored');
    const retentionEnds = Date.parse(read.expires_at);
    expect(Date.parse(read.url_expires_at)).toBeLessThanOrEqual(retentionEnds);
    // Before url_expires_at the link works; once the retention pass ran after it, the link answers 410.
    expect((await download(read.url)).response.status).toBe(200);
    await gateway.advance(retentionEnds - gateway.clock.now() + 60_000);
    expect((await download(read.url)).response.status).toBe(410);
  });

  it('reads a stored task back with its dates at the longest retention and link lifetime the configuration takes (100 years)', async () => {
    const gateway = await startCopying({ tenants: { acme: { retention_days: 36_500 } }, storage: { mode: 'copy', url_ttl_seconds: 3_153_600_000 } });
    const done = await gateway.finish((await gateway.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    const read = await gateway.get(done.id);
    expect(read.status).toBe(200);
    expect(read.body.outputs[0]).toMatchObject({ storage: 'stored', expires_at: new Date(Date.parse(read.body.completed_at) + 36_500 * DAY_MS).toISOString() });
    expect(Date.parse(read.body.outputs[0].url_expires_at)).toBeLessThanOrEqual(Date.parse(read.body.outputs[0].expires_at));
  });

  it("deletes no copy while this replica's clock is off the database server's (it could be ahead), and deletes it once the clock agrees", async () => {
    const gateway = await startCopying({ tenants: { acme: { retention_days: 1 } } });
    const done = await gateway.finish((await gateway.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    expect(done.outputs[0].storage).toBe('stored');
    await gateway.clock.advance(DAY_MS + 60_000);
    const watch = gateway.gateway.engine.clockWatch;
    const off = vi.spyOn(watch, 'holdReason', 'get').mockReturnValue("this machine's clock is 2.0 s ahead of the database server's (more than 1 s)");
    await gateway.gateway.custody.purge();
    expect((await gateway.get(done.id)).body.outputs[0].storage).toBe('stored');
    const kept = await download(`${gateway.url}/v1/videos/${done.id}/content`, { authorization: `Bearer ${TENANT_KEY}` });
    expect(kept.response.status).toBe(200);
    expect(sha256(kept.bytes)).toBe(done.outputs[0].sha256);

    off.mockRestore();
    await gateway.gateway.custody.purge();
    expect((await gateway.get(done.id)).body.outputs[0]).toMatchObject({ storage: 'expired', storage_error: 'deleted after the 1-day retention' });
  });

  it("deletes each output of a task at its own retention's end: one stored later (after a retry) is kept until its own", async () => {
    files = await new ResultServer().start();
    const gateway = await startCopying({ tenants: { acme: { retention_days: 1 } }, storage: { mode: 'copy', allow_private_sources: true } });
    const first = files.host('/first.mp4', { body: SAMPLE_MP4, contentType: 'video/mp4' });
    const second = files.host('/second.mp4', { body: SAMPLE_MP4, contentType: 'video/mp4', failFirst: [503, 503, 503] });
    const done = await gateway.finish(await freepikTaskFinishedWith(gateway, [first, second]));
    expect(done.outputs.map((output: any) => output.storage)).toEqual(['stored', 'stored']);
    const [ends0, ends1] = done.outputs.map((output: any) => Date.parse(output.expires_at));
    expect(ends1 - ends0).toBeGreaterThanOrEqual(30_000);

    await gateway.clock.advance(ends0 - gateway.clock.now());
    await gateway.gateway.custody.purge();
    const halfway = (await gateway.get(done.id)).body;
    expect(halfway.outputs[0]).toMatchObject({ storage: 'expired', storage_error: 'deleted after the 1-day retention' });
    expect(halfway.outputs[1]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4) });
    const kept = await download(halfway.outputs[1].url);
    expect(kept.response.status).toBe(200);

    await gateway.clock.advance(ends1 - gateway.clock.now());
    await gateway.gateway.custody.purge();
    expect((await gateway.get(done.id)).body.outputs[1]).toMatchObject({ storage: 'expired' });
  });

  it('names a retention of part of a day as configured, not rounded to whole days', async () => {
    const gateway = await startCopying({ tenants: { acme: { retention_days: 0.5 } } });
    const done = await gateway.finish((await gateway.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    expect(done.outputs[0].storage).toBe('stored');
    await gateway.advance(12 * 3600_000 + 60_000);
    expect((await gateway.get(done.id)).body.outputs[0]).toMatchObject({ storage: 'expired', storage_error: 'deleted after the 0.5-day retention' });
  });

  it('stores the videos of a tenant named ".", ".." or "..acme", inside the storage folder like any other', async () => {
    const directory = outputsDir();
    const gateway = await startCopying({ auth: { api_keys: `acme:${TENANT_KEY},..:dots-key,.:dot-key,..acme:dotted-key` } }, directory);
    const request = { model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } };
    for (const key of ['dots-key', 'dot-key', 'dotted-key']) {
      const id = (await gateway.request('POST', '/v1/videos', request, {}, key)).body.id;
      let task: any;
      await gateway.advanceUntil(async () => {
        task = (await gateway.request('GET', `/v1/videos/${id}`, undefined, {}, key)).body;
        return task.status === 'succeeded';
      }, 10_000);
      expect(task.outputs[0]).toMatchObject({ storage: 'stored', storage_error: null, sha256: sha256(SAMPLE_MP4) });
      const copy = await download(task.outputs[0].url);
      expect(copy.response.status).toBe(200);
      expect(copy.bytes.equals(SAMPLE_MP4)).toBe(true);
    }
    // Each tenant has a folder of its own, not the storage folder itself or its parent.
    // A name that only begins with two dots is a folder name like any other (not the parent folder).
    expect(readdirSync(directory).sort()).toEqual(['..acme', '.partial', '_', '__']);
  });

  it('deletes the half-written files of copies whose process was killed, once no copy could still be writing them', async () => {
    const directory = outputsDir();
    const gateway = await startCopying({ storage: { mode: 'copy', copy_timeout_ms: 60_000 } }, directory);
    // What a process killed mid-copy an hour ago left, and what a live copy (another replica's) is writing now.
    mkdirSync(join(directory, '.partial'));
    const abandoned = join(directory, '.partial', 'abandoned.partial');
    const live = join(directory, '.partial', 'live.partial');
    writeFileSync(abandoned, Buffer.alloc(4096, 1));
    writeFileSync(live, Buffer.alloc(4096, 2));
    const hourAgo = new Date(Date.now() - 3600_000);
    utimesSync(abandoned, hourAgo, hourAgo);
    // Untouched for a minute and a half: longer than the copy time limit, not twice it (README), so kept.
    const quietAWhile = new Date(Date.now() - 90_000);
    utimesSync(live, quietAWhile, quietAWhile);
    await gateway.advance(61_000);
    expect(existsSync(abandoned)).toBe(false);
    expect(existsSync(live)).toBe(true);
  });

  it('keeps the task processing while a copy fails, retries it from the store, then succeeds', async () => {
    const { gateway, url, id, host } = await copyRetrying('/flaky.mp4');
    const waiting = (await gateway.get(id)).body;
    expect(waiting.status).toBe('processing');
    expect(waiting.provider_status).toBe('COMPLETED');
    expect(waiting.outputs[0]).toMatchObject({ storage: 'pending', upstream_url: url, url });
    // Its content is not there yet: 409, to ask again (never 410, which says it will never be).
    const early = await download(`${gateway.url}/v1/videos/${id}/content`, { authorization: `Bearer ${TENANT_KEY}` });
    expect(early.response.status).toBe(409);
    expect(JSON.parse(early.bytes.toString()).detail).toMatch(/still being copied into storage/);

    const done = await gateway.finish(id);
    expect(done.status).toBe('succeeded');
    expect(host.requests).toEqual(['/flaky.mp4', '/flaky.mp4', '/flaky.mp4']);
    expect(done.outputs[0]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4), bytes: SAMPLE_MP4.length });
  });

  it('answers 409 to a cancel of a task whose video is made and being copied: the provider finished it, and it is still stored', async () => {
    const { gateway, id } = await copyRetrying('/made.mp4');
    expect((await gateway.get(id)).body.status).toBe('processing');

    const cancel = await gateway.request('POST', `/v1/videos/${id}/cancel`);
    expect(cancel.status).toBe(409);
    expect(cancel.body.detail).toContain('already generated');
    const done = await gateway.finish(id);
    expect(done.status).toBe('succeeded');
    expect(done.outputs[0]).toMatchObject({ storage: 'stored' });
  });

  it('reports succeeded with the output not stored (and why) when the copy keeps failing', async () => {
    files = await new ResultServer().start();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 3 } });
    const url = files.host('/down.mp4', { body: SAMPLE_MP4, status: 503 });
    const id = await freepikTaskFinishedWith(gateway, [url]);
    const done = await gateway.finish(id);
    expect(done.status).toBe('succeeded');
    expect(done.error).toBeNull();
    expect(files.requests).toHaveLength(3);
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', url, upstream_url: url, sha256: null, upstream_url_gone: false });
    expect(done.outputs[0].storage_error).toMatch(/answered 503.*gave up after 3 tries/);
    // The content route sends the caller to the upstream's URL while it exists.
    const answer = await download(`${gateway.url}/v1/videos/${id}/content`, { authorization: `Bearer ${TENANT_KEY}` });
    expect(answer.response.status).toBe(307);
    expect(answer.response.headers.get('location')).toBe(url);
  });

  it('never fetches an output it gave up on again while another output of the task is still retried', async () => {
    files = await new ResultServer().start();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 4 } });
    // A 400 is not retried: that output is given up on at the first try; its sibling fails twice, then is there.
    const refused = files.host('/refused.mp4', { body: SAMPLE_MP4, status: 400 });
    const later = files.host('/later.mp4', { body: SAMPLE_MP4, contentType: 'video/mp4', failFirst: [503, 503] });
    const id = await freepikTaskFinishedWith(gateway, [refused, later]);
    const done = await gateway.finish(id);
    expect(done.status).toBe('succeeded');
    expect(files.requests.filter((path) => path === '/refused.mp4')).toHaveLength(1);
    expect(files.requests.filter((path) => path === '/later.mp4')).toHaveLength(3);
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', url: refused });
    expect(done.outputs[0].storage_error).toMatch(/answered 400/);
    expect(done.outputs[0].storage_error).not.toMatch(/tries/);
    expect(done.outputs[1]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4) });
  });

  it('deletes the file a copy left when it gives up on that output: nothing on disk that no task points to', async () => {
    files = await new ResultServer().start();
    const directory = outputsDir();
    // Each write reaches the disk and then reports a failure (an answer lost after the store took
    // the object, as a crash right after the write would leave it).
    class LostAnswers extends FilesystemStorage {
      override async write(key: string, body: Parameters<FilesystemStorage['write']>[1], options: Parameters<FilesystemStorage['write']>[2]): Promise<void> {
        await super.write(key, body, options);
        throw new Error('connection reset after the write');
      }
    }
    gw = await startTestGateway({
      config: { storage: { mode: 'copy', allow_private_sources: true, max_attempts: 2, filesystem: { path: directory } } },
      objectStorage: new LostAnswers(directory),
    });
    const url = files.host('/kept-by-nobody.mp4', { body: SAMPLE_MP4, contentType: 'video/mp4' });
    const id = await freepikTaskFinishedWith(gw, [url]);
    const done = await gw.finish(id, 5_000);
    expect(files.requests).toHaveLength(2);
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', url });
    const videos = readdirSync(directory, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile() && entry.name.endsWith('.mp4'));
    expect(videos.map((entry) => entry.name)).toEqual([]);
  });

  it("tells the tenant that the gateway's storage failed, not the storage's own error (paths, addresses), which goes to the log", async () => {
    const directory = outputsDir();
    // What node says when the disk is full, and when an S3 endpoint on the operator's network is down.
    const failures = [
      Object.assign(new Error(`ENOSPC: no space left on device, write '${join(directory, '.partial', 'f00.partial')}'`), { code: 'ENOSPC' }),
      Object.assign(new Error('connect ECONNREFUSED 10.20.30.40:9000'), { code: 'ECONNREFUSED' }),
    ];
    let writes = 0;
    const failing: ObjectStorage = {
      kind: 'filesystem',
      description: 'fails every write',
      write: async (_key, body) => {
        for await (const _chunk of body) {
          // Read the source as a real backend would, then fail.
        }
        throw failures[writes++ % failures.length];
      },
      read: () => Promise.reject(new Error('unused')),
      delete: async () => undefined,
      close: async () => undefined,
    };
    let raw = '';
    const logTo = new Writable({
      write(chunk, _encoding, done) {
        raw += chunk.toString();
        done();
      },
    });
    gw = await startTestGateway({ config: { storage: { mode: 'copy', filesystem: { path: directory }, max_attempts: 2 } }, objectStorage: failing, logTo });
    const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    expect(done.status).toBe('succeeded');
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', url: done.outputs[0].upstream_url });
    const said = done.outputs[0].storage_error as string;
    expect(said).toMatch(/storage/);
    expect(said).toMatch(/gave up after 2 tries/);
    for (const internal of [directory, '.partial', '10.20.30.40', 'ENOSPC', 'ECONNREFUSED']) expect([internal, said.includes(internal)]).toEqual([internal, false]);
    // The operator's log has the whole error.
    expect(raw).toContain('10.20.30.40:9000');
    expect(raw).toContain('no space left on device');
  });

  it('retries a 404, 410 or 403 from the file host (a CDN not ready yet), and stores the file once it is there', async () => {
    files = await new ResultServer().start();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 4 } });
    const url = files.host('/not-yet.mp4', { body: SAMPLE_MP4, contentType: 'video/mp4', failFirst: [404, 403, 410] });
    const id = await freepikTaskFinishedWith(gateway, [url]);
    await gateway.advanceUntil(async () => files!.requests.length >= 1, 100);
    await gateway.advance(0);
    // Still being copied after the first 404: neither given up nor said to be gone.
    expect((await gateway.get(id)).body.outputs[0]).toMatchObject({ storage: 'pending', upstream_url_gone: false });
    const done = await gateway.finish(id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(files.requests).toEqual(['/not-yet.mp4', '/not-yet.mp4', '/not-yet.mp4', '/not-yet.mp4']);
    expect(done.outputs[0]).toMatchObject({ storage: 'stored', upstream_url_gone: false, storage_error: null, sha256: sha256(SAMPLE_MP4) });
  });

  it('says the upstream URL is gone only when 404/410 lasts through every try; otherwise the route still redirects there', async () => {
    files = await new ResultServer().start();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 3 } });
    const deleted = `${files.url}/deleted.mp4`;
    const flaky = files.host('/flaky.mp4', { body: SAMPLE_MP4, failFirst: [503], status: 404 });
    const id = await freepikTaskFinishedWith(gateway, [deleted, flaky]);
    const done = await gateway.finish(id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(done.error).toBeNull();
    expect(files.requests.filter((path) => path === '/deleted.mp4')).toHaveLength(3);
    expect(files.requests.filter((path) => path === '/flaky.mp4')).toHaveLength(3);
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', upstream_url_gone: true, url: deleted });
    expect(done.outputs[0].storage_error).toBe('the provider answered 404 for the result URL on all 3 tries: its copy is gone');
    // A 503 among the answers: the file may still be there.
    expect(done.outputs[1]).toMatchObject({ storage: 'not_stored', upstream_url_gone: false, url: flaky });
    expect(done.outputs[1].storage_error).toBe('the provider answered 404 for the result URL (gave up after 3 tries)');
    const content = (index: number) => download(`${gateway.url}/v1/videos/${id}/content?index=${index}`, { authorization: `Bearer ${TENANT_KEY}` });
    const gone = await content(0);
    expect(gone.response.status).toBe(410);
    expect(JSON.parse(gone.bytes.toString()).detail).toMatch(/no longer has it/);
    const maybe = await content(1);
    expect(maybe.response.status).toBe(307);
    expect(maybe.response.headers.get('location')).toBe(flaky);
  });

  it('reports a 403 that lasts as not stored but not gone: the content route still redirects to the upstream URL', async () => {
    files = await new ResultServer().start();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 3 } });
    const url = files.host('/forbidden.mp4', { body: SAMPLE_MP4, status: 403 });
    const id = await freepikTaskFinishedWith(gateway, [url]);
    const done = await gateway.finish(id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(files.requests).toEqual(['/forbidden.mp4', '/forbidden.mp4', '/forbidden.mp4']);
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', upstream_url_gone: false, url });
    expect(done.outputs[0].storage_error).toBe('the provider answered 403 for the result URL (gave up after 3 tries)');
    const answer = await download(`${gateway.url}/v1/videos/${id}/content`, { authorization: `Bearer ${TENANT_KEY}` });
    expect(answer.response.status).toBe(307);
    expect(answer.response.headers.get('location')).toBe(url);
  });

  it("takes a 404 past the provider's documented lifetime (legacy Kling: 30 days) as final at once", async () => {
    let writes = 0;
    const failing: ObjectStorage = {
      kind: 'filesystem',
      description: 'fails every write',
      write: async (_key, body) => {
        writes++;
        for await (const _chunk of body) {
          // Read the source as a real backend would, then fail.
        }
        throw new Error('disk full');
      },
      read: () => Promise.reject(new Error('unused')),
      delete: async () => undefined,
      close: async () => undefined,
    };
    const gateway = (gw = await startTestGateway({ config: { storage: { mode: 'copy', filesystem: { path: outputsDir() }, max_attempts: 6 } }, objectStorage: failing }));
    const id = (await gateway.create({ model: 'kling-v2-6', prompt: 'x', duration: 5, routing: { providers: ['kling-legacy'] } })).body.id;
    // The first copy fails on the gateway's side (the file was there): retried later.
    await gateway.advanceUntil(async () => writes >= 1);
    await gateway.advance(0);
    const waiting = (await gateway.get(id)).body;
    expect(waiting).toMatchObject({ status: 'processing', outputs: [{ storage: 'pending', upstream_url_expires_at: expect.any(String) }] });
    // The gateway was down past the provider's 30 days: the next try meets a 404 and does not retry it.
    await gateway.advance(31 * DAY_MS);
    const done = (await gateway.get(id)).body;
    expect(done.status).toBe('succeeded');
    expect(writes).toBe(1);
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', upstream_url_gone: true });
    expect(done.outputs[0].storage_error).toBe(
      `the provider answered 404 for the result URL after ${waiting.outputs[0].upstream_url_expires_at}, when the provider's documented lifetime of results ended: its copy is gone`,
    );
  });

  it('refuses result URLs on private addresses (other than the simulators) unless allowed', async () => {
    files = await new ResultServer().start();
    const gateway = await startCopying();
    const url = files.host('/inside.mp4', { body: SAMPLE_MP4, contentType: 'video/mp4' });
    const id = await freepikTaskFinishedWith(gateway, [url]);
    const done = await gateway.finish(id);
    expect(files.requests).toEqual([]);
    expect(done.status).toBe('succeeded');
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', url });
    expect(done.outputs[0].storage_error).toMatch(/refused|private|loopback/);
  });

  it('streams a large file through in pieces and records its hash and size', async () => {
    files = await new ResultServer().start();
    const directory = outputsDir();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true } }, directory);
    const big = Buffer.alloc(24 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
    const url = files.host('/big.mp4', { body: big, contentType: 'video/mp4', chunkBytes: 64 * 1024 });
    const done = await gateway.finish(await freepikTaskFinishedWith(gateway, [url]), 200);
    expect(done.outputs[0]).toMatchObject({ storage: 'stored', bytes: big.length, sha256: sha256(big) });
    const copy = await download(done.outputs[0].url);
    expect(copy.bytes.equals(big)).toBe(true);
  });

  it('never serves a result as a page of its own origin, whatever type the upstream gave it', async () => {
    files = await new ResultServer().start();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true } });
    const urls = [
      files.host('/result-a', { body: SAMPLE_MP4, contentType: 'application/pdf' }),
      files.host('/result-b.mp4', { body: SAMPLE_MP4, contentType: 'application/mp4' }),
      files.host('/result-c.mp4', { body: SAMPLE_MP4, contentType: 'binary/octet-stream' }),
    ];
    const done = await gateway.finish(await freepikTaskFinishedWith(gateway, urls));
    // A video output is recorded and served as a video: the upstream's type only when it is one.
    expect(done.outputs.map((output: { content_type: string }) => output.content_type)).toEqual(['video/mp4', 'video/mp4', 'video/mp4']);
    for (const index of [0, 1, 2]) {
      const copy = await download(`${gateway.url}/v1/videos/${done.id}/content?index=${index}`, { authorization: `Bearer ${TENANT_KEY}` });
      expect(copy.response.status).toBe(200);
      expect(copy.response.headers.get('content-type')).toBe('video/mp4');
      // Opened directly, the answer is sandboxed (no script, no origin), as a file a third party wrote.
      expect(copy.response.headers.get('content-security-policy')).toBe('sandbox');
      expect(copy.response.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  it('never stores a page, a document or a playlist answered with 200 as the video: each is a failed try, retried, then not stored', async () => {
    files = await new ResultServer().start();
    const directory = outputsDir();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 2 } }, directory);
    const page = Buffer.from('<html><body>404 Not Found</body></html>');
    const types = [
      'text/html; charset=utf-8',
      'text/plain',
      'application/json',
      'application/problem+json',
      'application/xml',
      'image/svg+xml',
      'application/javascript',
      'application/vnd.apple.mpegurl',
      'audio/mpegurl',
    ];
    const urls = types.map((contentType, index) => files!.host(`/page-${index}.mp4`, { body: page, contentType }));
    const id = await freepikTaskFinishedWith(gateway, urls);
    const done = await gateway.finish(id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(files.requests).toHaveLength(types.length * 2);
    for (const [index, output] of done.outputs.entries()) {
      const type = types[index]!.split(';')[0];
      expect(output).toMatchObject({ storage: 'not_stored', upstream_url_gone: false, url: urls[index], sha256: null, bytes: null });
      expect(output.storage_error).toBe(`the provider answered 200 with Content-Type ${type}, which is not a video (gave up after 2 tries)`);
      const answer = await download(`${gateway.url}/v1/videos/${id}/content?index=${index}`, { authorization: `Bearer ${TENANT_KEY}` });
      expect(answer.response.status).toBe(307);
      expect(answer.response.headers.get('location')).toBe(urls[index]);
    }
    // Nothing of the pages was kept.
    const kept = readdirSync(directory, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
    expect(kept).toEqual([]);
  });

  it("never stores a file of another kind answered with 200 as the video (a CDN's placeholder image, an audio track): retried, then not stored", async () => {
    files = await new ResultServer().start();
    const directory = outputsDir();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 2 } }, directory);
    const placeholder = files.host('/placeholder.mp4', { body: SAMPLE_PNG, contentType: 'image/png' });
    const track = files.host('/track.mp4', { body: SAMPLE_MP4, contentType: 'audio/mpeg' });
    const video = files.host('/video.mp4', { body: SAMPLE_MP4, contentType: 'video/mp4' });
    const id = await freepikTaskFinishedWith(gateway, [placeholder, track, video]);
    const done = await gateway.finish(id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', url: placeholder, sha256: null, bytes: null, content_type: null });
    expect(done.outputs[0].storage_error).toBe('the provider answered 200 with Content-Type image/png, which is not a video (gave up after 2 tries)');
    expect(done.outputs[1]).toMatchObject({ storage: 'not_stored', url: track, sha256: null });
    expect(done.outputs[1].storage_error).toBe('the provider answered 200 with Content-Type audio/mpeg, which is not a video (gave up after 2 tries)');
    expect(done.outputs[2]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4), content_type: 'video/mp4' });
    // The placeholder is not served as the video: the caller is sent to the upstream URL.
    const answer = await download(`${gateway.url}/v1/videos/${id}/content?index=0`, { authorization: `Bearer ${TENANT_KEY}` });
    expect(answer.response.status).toBe(307);
    expect(answer.response.headers.get('location')).toBe(placeholder);
    const kept = readdirSync(directory, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
    expect(kept.map((entry) => entry.name)).toEqual([`${id}-2.mp4`]);
  });

  it('never stores an error page or document answered with 200 as the video when its type says nothing (none, or octet-stream)', async () => {
    files = await new ResultServer().start();
    const directory = outputsDir();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 2 } }, directory);
    const page = files.host('/page.mp4', { body: Buffer.from('\r\n<!DOCTYPE html><html><body>503 Service Unavailable</body></html>') });
    const json = files.host('/error.mp4', { body: Buffer.from('{"code":"NoSuchKey","message":"expired"}'), contentType: 'application/octet-stream' });
    const xml = files.host('/denied.mp4', { body: Buffer.from('\ufeff<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>'), contentType: 'binary/octet-stream' });
    const video = files.host('/video.mp4', { body: SAMPLE_MP4 });
    const id = await freepikTaskFinishedWith(gateway, [page, json, xml, video]);
    const done = await gateway.finish(id, 5_000);
    expect(done.status).toBe('succeeded');
    for (const [index, url] of [page, json, xml].entries()) {
      expect(done.outputs[index]).toMatchObject({ storage: 'not_stored', url, upstream_url_gone: false, sha256: null, bytes: null });
      expect(done.outputs[index].storage_error).toBe('the provider answered 200 with a body that begins as a page or a document, which is not a video (gave up after 2 tries)');
      const answer = await download(`${gateway.url}/v1/videos/${id}/content?index=${index}`, { authorization: `Bearer ${TENANT_KEY}` });
      expect(answer.response.status).toBe(307);
    }
    // A video sent without a type is stored as before.
    expect(done.outputs[3]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4), content_type: 'video/mp4' });
    const kept = readdirSync(directory, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
    expect(kept.map((entry) => entry.name)).toEqual([`${id}-3.mp4`]);
  });

  it('retries a CDN error page answered with 200 and stores the video once the host serves it', async () => {
    files = await new ResultServer().start();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 3 } });
    const url = files.host('/warming.mp4', {
      body: SAMPLE_MP4,
      contentType: 'video/mp4',
      failFirst: [{ status: 200, contentType: 'text/html', body: '<html>not ready</html>' }],
    });
    const id = await freepikTaskFinishedWith(gateway, [url]);
    await gateway.advanceUntil(async () => files!.requests.length >= 1, 100);
    await gateway.advance(0);
    const waiting = (await gateway.get(id)).body;
    expect(waiting.outputs[0]).toMatchObject({ storage: 'pending', storage_error: 'the provider answered 200 with Content-Type text/html, which is not a video' });
    const done = await gateway.finish(id, 5_000);
    expect(files.requests).toEqual(['/warming.mp4', '/warming.mp4']);
    expect(done.outputs[0]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4), bytes: SAMPLE_MP4.length, content_type: 'video/mp4' });
    const copy = await download(done.outputs[0].url);
    expect(copy.bytes.equals(SAMPLE_MP4)).toBe(true);
  });

  it('fails the copy of an empty (0-byte) 200 answer: retried, then not stored, never kept as the video', async () => {
    files = await new ResultServer().start();
    const directory = outputsDir();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_attempts: 3 } }, directory);
    const empty = files.host('/empty.mp4', { body: Buffer.alloc(0), contentType: 'video/mp4' });
    const late = files.host('/late.mp4', { body: SAMPLE_MP4, contentType: 'video/mp4', failFirst: [{ status: 200, contentType: 'video/mp4', body: '' }] });
    const id = await freepikTaskFinishedWith(gateway, [empty, late]);
    await gateway.advanceUntil(async () => files!.requests.length >= 2, 100);
    await gateway.advance(0);
    // After the first try: still processing, both outputs waiting for another try, and the caller can read why.
    const waiting = (await gateway.get(id)).body;
    expect(waiting.status).toBe('processing');
    for (const output of waiting.outputs) {
      expect(output).toMatchObject({ storage: 'pending', storage_error: 'the copy failed: the provider sent an empty file', sha256: null, bytes: null });
    }

    const done = await gateway.finish(id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(done.error).toBeNull();
    expect(files.requests.filter((path) => path === '/empty.mp4')).toHaveLength(3);
    expect(done.outputs[0]).toMatchObject({
      storage: 'not_stored',
      storage_error: 'the copy failed: the provider sent an empty file (gave up after 3 tries)',
      url: empty,
      upstream_url_gone: false,
      sha256: null,
      bytes: null,
    });
    // The one that came whole on its second try is stored.
    expect(files.requests.filter((path) => path === '/late.mp4')).toHaveLength(2);
    expect(done.outputs[1]).toMatchObject({ storage: 'stored', bytes: SAMPLE_MP4.length, sha256: sha256(SAMPLE_MP4) });

    // Through the API: the empty one sends the caller to the provider's URL, not to a 0-byte file of the gateway's.
    const content = await download(`${gateway.url}/v1/videos/${id}/content?index=0`, { authorization: `Bearer ${TENANT_KEY}` });
    expect(content.response.status).toBe(307);
    expect(content.response.headers.get('location')).toBe(empty);
    const kept = readdirSync(directory, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
    expect(kept.map((entry) => entry.name)).toEqual([`${id}-1.mp4`]);
  });

  it('refuses a file larger than storage.max_bytes and keeps no partial file', async () => {
    files = await new ResultServer().start();
    const directory = outputsDir();
    const gateway = await startCopying({ storage: { mode: 'copy', allow_private_sources: true, max_bytes: 1000 } }, directory);
    const url = files.host('/huge.mp4', { body: SAMPLE_MP4, contentType: 'video/mp4', chunkBytes: 512 });
    const done = await gateway.finish(await freepikTaskFinishedWith(gateway, [url]));
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored' });
    expect(done.outputs[0].storage_error).toMatch(/larger than storage.max_bytes/);
    expect(files.requests).toHaveLength(1);
    expect(existsSync(join(directory, 'acme', done.id)) ? readdirSync(join(directory, 'acme', done.id)) : []).toEqual([]);
  });

  it('resumes a copy after a restart: a task left in storing is copied by the next process', async () => {
    const { database, directory, first, created } = await stoppedMidCopy();

    gw = await startTestGateway({
      config: { database: { url: database }, storage: { mode: 'copy', filesystem: { path: directory } } },
      clock: first.clock,
      endpoints: first.endpoints,
      simulators: first.simulators,
      objectStorage: new FilesystemStorage(directory),
    });
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.outputs[0]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4) });
    expect(gw.simulator('kling3api').tasks).toHaveLength(1);
    for (const simulator of first.simulators.values()) await simulator.close();
  });
});

describe('passthrough mode', () => {
  it('finishes a task left mid-copy when the gateway restarts with storage turned off, instead of keeping it processing', async () => {
    const { database, first, created } = await stoppedMidCopy();

    // The operator turns copies off (storage.mode: passthrough) and starts the gateway again.
    gw = await startTestGateway({
      config: { database: { url: database }, storage: { mode: 'passthrough' } },
      clock: first.clock,
      endpoints: first.endpoints,
      simulators: first.simulators,
    });
    // Not at once (a replica that copies would take it first), but once a lease went by.
    await gw.advance(1_000);
    expect((await gw.get(created.body.id)).body.status).toBe('processing');
    const done = await gw.finish(created.body.id, 5_000);
    expect(done.status).toBe('succeeded');
    expect(done.outputs[0]).toMatchObject({ storage: 'passthrough', sha256: null });
    expect(done.outputs[0].url).toBe(done.outputs[0].upstream_url);
    const answer = await download(`${gw.url}/v1/videos/${done.id}/content`, { authorization: `Bearer ${TENANT_KEY}` });
    expect(answer.response.status).toBe(307);
    for (const simulator of first.simulators.values()) await simulator.close();
  });

  it('keeps serving the copies stored before a restart into passthrough, and deletes them at their retention', async () => {
    const database = tempDatabaseUrl();
    const directory = outputsDir();
    const storage = { filesystem: { path: directory }, retention_days: 2 };
    const first = await startTestGateway({ config: { database: { url: database }, storage: { mode: 'copy', ...storage } } });
    const stored = await first.finish((await first.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    expect(stored.outputs[0]).toMatchObject({ storage: 'stored', sha256: sha256(SAMPLE_MP4) });
    const file = join(directory, 'acme', stored.created_at.slice(0, 10), `${stored.id}-0.mp4`);
    await first.gateway.close();

    // The operator turns copies off: new results pass through, and what was stored stays the tenant's.
    gw = await startTestGateway({
      config: { database: { url: database }, storage: { mode: 'passthrough', ...storage } },
      clock: first.clock,
      endpoints: first.endpoints,
      simulators: first.simulators,
    });
    const task = (await gw.get(stored.id)).body;
    expect(task.outputs[0]).toMatchObject({ storage: 'stored' });
    const copy = await download(task.outputs[0].url);
    expect(copy.response.status).toBe(200);
    expect(copy.bytes.equals(SAMPLE_MP4)).toBe(true);
    const fresh = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'y', routing: { providers: ['kling3api'] } })).body.id);
    expect(fresh.outputs[0]).toMatchObject({ storage: 'passthrough', url: fresh.outputs[0].upstream_url });

    // Its retention still ends: the file is deleted and the output says so.
    await gw.advance(2 * DAY_MS + 60_000);
    expect((await gw.get(stored.id)).body.outputs[0]).toMatchObject({ storage: 'expired', storage_error: 'deleted after the 2-day retention' });
    expect(existsSync(file)).toBe(false);
    for (const simulator of first.simulators.values()) await simulator.close();
  });

  it('keeps the upstream URL and copies nothing', async () => {
    gw = await startTestGateway({ config: { storage: { mode: 'passthrough' } } });
    const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    expect(done.outputs[0]).toMatchObject({ storage: 'passthrough', sha256: null });
    expect(done.outputs[0].url).toBe(done.outputs[0].upstream_url);
    const answer = await download(`${gw.url}/v1/videos/${done.id}/content`, { authorization: `Bearer ${TENANT_KEY}` });
    expect(answer.response.status).toBe(307);
    expect(answer.response.headers.get('location')).toBe(done.outputs[0].upstream_url);
  });

  it('answers 410, not a redirect to a dead link, once the provider documents its copy gone (legacy: 30 days)', async () => {
    const gateway = (gw = await startTestGateway({ config: { storage: { mode: 'passthrough' } } }));
    const done = await gateway.finish((await gateway.create({ model: 'kling-v1', prompt: 'x', routing: { providers: ['kling-legacy'] } })).body.id);
    expect(done.outputs[0]).toMatchObject({ storage: 'passthrough', upstream_url_expires_at: expect.any(String) });
    const content = () => download(`${gateway.url}/v1/videos/${done.id}/content`, { authorization: `Bearer ${TENANT_KEY}` });
    expect((await content()).response.status).toBe(307);
    await gateway.clock.advance(Date.parse(done.outputs[0].upstream_url_expires_at) - gateway.clock.now() + 1_000);
    const answer = await content();
    expect(answer.response.status).toBe(410);
    expect(answer.response.headers.get('location')).toBeNull();
    expect(JSON.parse(answer.bytes.toString())).toMatchObject({ status: 410, detail: expect.stringMatching(/the provider kept its copy until .* only/) });
  });
});
