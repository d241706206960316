/**
 * One result copy against a file host on loopback: what is asked for, what is stored (a
 * compressed answer decoded), redirects and their checks, and why a copy fails.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { copyToStorage, CopyAbortedError, type CopyPolicy } from '../../../src/core/tasks/output-copy.js';
import { FilesystemStorage } from '../../../src/storage/filesystem-storage.js';
import type { ObjectStorage } from '../../../src/storage/object-storage.js';
import { loopbackServer } from '../../support/raw-answer.js';

const FILE = Buffer.from(Array.from({ length: 40_000 }, (_, i) => (i * 7) % 251));
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Storage that keeps what it was given, by key. */
class MemoryStorage {
  readonly kind = 'memory';
  readonly description = 'memory';
  readonly objects = new Map<string, { bytes: Buffer; contentType: string }>();
  async write(key: string, body: Readable, options: { contentType: string }): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    this.objects.set(key, { bytes: Buffer.concat(chunks), contentType: options.contentType });
  }
}

type Route = (res: ServerResponse, headers: IncomingHttpHeaders) => void;

describe('copying a result file', () => {
  const routes = new Map<string, Route>();
  const asked: { path: string; headers: IncomingHttpHeaders }[] = [];
  let origin: string;
  let close: () => Promise<void>;
  let storage: MemoryStorage;
  let policy: CopyPolicy;

  beforeAll(async () => {
    ({ base: origin, close } = await loopbackServer((req, res) => {
      asked.push({ path: req.url ?? '', headers: req.headers });
      const route = routes.get(req.url ?? '');
      if (route) route(res, req.headers);
      else res.writeHead(404).end('no such file');
    }));
  });
  afterAll(() => close());
  beforeEach(() => {
    routes.clear();
    asked.length = 0;
    storage = new MemoryStorage();
    policy = { allowPrivate: false, trustedOrigins: new Set([origin]), timeoutMs: 10_000, idleTimeoutMs: 5_000, maxBytes: 1_000_000 };
  });

  const copy = (path: string) =>
    copyToStorage({ url: `${origin}${path}`, key: 'acme/vid_1/0.mp4', kind: 'video', storage: storage as unknown as ObjectStorage, policy });

  it('stores the file with its hash, size and type, asking as the gateway always has', async () => {
    routes.set('/out.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': FILE.length }).end(FILE));
    expect(await copy('/out.mp4')).toEqual({ ok: true, sha256: sha256(FILE), bytes: FILE.length, contentType: 'video/mp4' });
    expect(storage.objects.get('acme/vid_1/0.mp4')).toEqual({ bytes: FILE, contentType: 'video/mp4' });
    expect(asked[0]?.headers).toMatchObject({
      'user-agent': 'kling-gateway-custody/0.1',
      accept: '*/*',
      'accept-encoding': 'gzip, compress, deflate, br',
    });
  });

  it('leaves nothing behind on the stop signal it is given, which lives as long as the gateway', async () => {
    routes.set('/out.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4' }).end(FILE));
    const stopping = new AbortController();
    for (let i = 0; i < 10; i++) {
      const outcome = await copyToStorage({
        url: `${origin}/out.mp4`,
        key: `acme/vid_${i}/0.mp4`,
        kind: 'video',
        storage: storage as unknown as ObjectStorage,
        policy,
        signal: stopping.signal,
      });
      expect(outcome.ok).toBe(true);
    }
    // Node keeps the signals joined to it with `AbortSignal.any` in a set under this symbol.
    const key = Object.getOwnPropertySymbols(stopping.signal).find((symbol) => symbol.description === 'kDependantSignals');
    const joined = key ? ((stopping.signal as unknown as Record<symbol, Set<unknown>>)[key]?.size ?? 0) : 0;
    expect(joined).toBe(0);
  });

  it.each([
    ['gzip', gzipSync(FILE)],
    ['x-gzip', gzipSync(FILE)],
    ['deflate', deflateSync(FILE)],
    ['deflate', deflateRawSync(FILE)],
    ['br', brotliCompressSync(FILE)],
  ])('stores a %s-encoded answer decoded', async (encoding, sent) => {
    routes.set('/out.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4', 'content-encoding': encoding }).end(sent));
    expect(await copy('/out.mp4')).toMatchObject({ ok: true, sha256: sha256(FILE), bytes: FILE.length });
    expect(storage.objects.get('acme/vid_1/0.mp4')?.bytes.equals(FILE)).toBe(true);
  });

  it.each([
    ['gzip', gzipSync(FILE)],
    ['br', brotliCompressSync(FILE)],
    // Deflate with its zlib header, and raw (no header, so no checksum: its last block says where it ends).
    ['deflate', deflateSync(FILE)],
    ['deflate', deflateRawSync(FILE)],
  ])('fails, worth retrying, when a %s-encoded answer ends before its compressed stream does, and stores nothing', async (encoding, sent) => {
    // The HTTP framing is whole (the length matches what came): only the compressed stream shows the cut.
    const cut = sent.subarray(0, sent.length - 100);
    routes.set('/out.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4', 'content-encoding': encoding, 'content-length': cut.length }).end(cut));
    expect(await copy('/out.mp4')).toMatchObject({ ok: false, retryable: true, gone: false, reason: 'the copy failed: unexpected end of file' });
    expect(storage.objects.size).toBe(0);
  });

  it('fails, worth retrying, when the source answers with no bytes at all, and stores nothing', async () => {
    routes.set('/empty.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': 0 }).end());
    routes.set('/empty-gzip.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4', 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(0))));
    for (const path of ['/empty.mp4', '/empty-gzip.mp4']) {
      expect(await copy(path)).toEqual({ ok: false, retryable: true, gone: false, reason: 'the copy failed: the provider sent an empty file' });
    }
    expect(storage.objects.size).toBe(0);
  });

  it('stores an answer in an encoding it does not decode as sent', async () => {
    const sent = Buffer.from('not really compressed');
    routes.set('/out.mp4', (res) => res.writeHead(200, { 'content-encoding': 'identity' }).end(sent));
    expect(await copy('/out.mp4')).toMatchObject({ ok: true, sha256: sha256(sent), bytes: sent.length, contentType: 'video/mp4' });
  });

  it('follows up to five redirects, relative ones too', async () => {
    for (let hop = 1; hop <= 5; hop++) routes.set(`/hop${hop}`, (res) => res.writeHead(302, { location: hop === 5 ? `${origin}/out.mp4` : `/hop${hop + 1}` }).end());
    routes.set('/out.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4' }).end(FILE));
    expect(await copy('/hop1')).toMatchObject({ ok: true, sha256: sha256(FILE) });
    expect(asked.map((entry) => entry.path)).toEqual(['/hop1', '/hop2', '/hop3', '/hop4', '/hop5', '/out.mp4']);
  });

  it('resolves a relative redirect against the hop that sent it, not the first URL', async () => {
    routes.set('/first/start.mp4', (res) => res.writeHead(302, { location: '/cdn/edge/next.mp4' }).end());
    routes.set('/cdn/edge/next.mp4', (res) => res.writeHead(302, { location: 'out.mp4' }).end());
    routes.set('/cdn/edge/out.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4' }).end(FILE));
    expect(await copy('/first/start.mp4')).toMatchObject({ ok: true, sha256: sha256(FILE) });
    expect(asked.map((entry) => entry.path)).toEqual(['/first/start.mp4', '/cdn/edge/next.mp4', '/cdn/edge/out.mp4']);
  });

  it('gives up after five redirects, as a failure worth retrying', async () => {
    for (let hop = 1; hop <= 6; hop++) routes.set(`/hop${hop}`, (res) => res.writeHead(301, { location: `/hop${hop + 1}` }).end());
    routes.set('/hop7', (res) => res.writeHead(200).end(FILE));
    expect(await copy('/hop1')).toEqual({ ok: false, retryable: true, gone: false, reason: 'the copy failed: Maximum number of redirects exceeded' });
    expect(asked).toHaveLength(6);
  });

  it('refuses a redirect to a private address before asking it', async () => {
    routes.set('/out.mp4', (res) => res.writeHead(302, { location: 'http://10.1.2.3/inside.mp4' }).end());
    expect(await copy('/out.mp4')).toEqual({
      ok: false,
      retryable: false,
      gone: false,
      reason: 'the result URL was refused: redirected to a URL that points at a private, loopback or link-local address (10.1.2.3)',
    });
    routes.set('/local.mp4', (res) => res.writeHead(307, { location: 'http://localhost:9/x.mp4' }).end());
    expect(await copy('/local.mp4')).toMatchObject({ ok: false, retryable: false, reason: 'the result URL was refused: redirected to a URL that points at localhost' });
    expect(storage.objects.size).toBe(0);
  });

  it('says a 404/410 may mean the file is gone, and retries it as a 403 and a server error (a CDN not ready yet answers so)', async () => {
    routes.set('/gone.mp4', (res) => res.writeHead(410).end());
    routes.set('/forbidden.mp4', (res) => res.writeHead(403).end());
    routes.set('/busy.mp4', (res) => res.writeHead(503).end('busy'));
    routes.set('/bad.mp4', (res) => res.writeHead(400).end());
    expect(await copy('/gone.mp4')).toEqual({ ok: false, retryable: true, gone: true, reason: 'the provider answered 410 for the result URL' });
    expect(await copy('/forbidden.mp4')).toEqual({ ok: false, retryable: true, gone: false, reason: 'the provider answered 403 for the result URL' });
    expect(await copy('/busy.mp4')).toEqual({ ok: false, retryable: true, gone: false, reason: 'the provider answered 503 for the result URL' });
    expect(await copy('/missing.mp4')).toMatchObject({ ok: false, retryable: true, gone: true });
    // Other 4xx are final.
    expect(await copy('/bad.mp4')).toEqual({ ok: false, retryable: false, gone: false, reason: 'the provider answered 400 for the result URL' });
  });

  it('writes nothing of a 200 answer typed as a page, a document or a playlist, and says it is not a video (or image): worth retrying', async () => {
    routes.set('/page.mp4', (res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html>busy</html>'));
    routes.set('/list.mp4', (res) => res.writeHead(200, { 'content-type': 'application/x-mpegURL' }).end('#EXTM3U'));
    routes.set('/art.png', (res) => res.writeHead(200, { 'content-type': 'image/svg+xml' }).end('<svg/>'));
    routes.set('/raw.mp4', (res) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(FILE));
    expect(await copy('/page.mp4')).toEqual({
      ok: false,
      retryable: true,
      gone: false,
      reason: 'the provider answered 200 with Content-Type text/html, which is not a video',
    });
    expect(await copy('/list.mp4')).toMatchObject({ ok: false, retryable: true, reason: 'the provider answered 200 with Content-Type application/x-mpegurl, which is not a video' });
    const image = await copyToStorage({ url: `${origin}/art.png`, key: 'acme/img_1/0.png', kind: 'image', storage: storage as unknown as ObjectStorage, policy });
    expect(image).toMatchObject({ ok: false, retryable: true, reason: 'the provider answered 200 with Content-Type image/svg+xml, which is not an image' });
    expect(storage.objects.size).toBe(0);
    // A type that says nothing of the content is still a file.
    expect(await copy('/raw.mp4')).toMatchObject({ ok: true, contentType: 'video/mp4' });
  });

  it('writes nothing of a 200 answer of another kind (an image for a video, a video for an image, audio for either), worth retrying', async () => {
    routes.set('/poster.mp4', (res) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(FILE));
    routes.set('/clip.png', (res) => res.writeHead(200, { 'content-type': 'video/mp4' }).end(FILE));
    routes.set('/sound.png', (res) => res.writeHead(200, { 'content-type': 'audio/wav' }).end(FILE));
    routes.set('/still.png', (res) => res.writeHead(200, { 'content-type': 'image/webp' }).end(FILE));
    const image = (path: string) => copyToStorage({ url: `${origin}${path}`, key: 'acme/img_1/0.png', kind: 'image', storage: storage as unknown as ObjectStorage, policy });
    expect(await copy('/poster.mp4')).toEqual({ ok: false, retryable: true, gone: false, reason: 'the provider answered 200 with Content-Type image/jpeg, which is not a video' });
    expect(await image('/clip.png')).toMatchObject({ ok: false, retryable: true, reason: 'the provider answered 200 with Content-Type video/mp4, which is not an image' });
    expect(await image('/sound.png')).toMatchObject({ ok: false, retryable: true, reason: 'the provider answered 200 with Content-Type audio/wav, which is not an image' });
    expect(storage.objects.size).toBe(0);
    // An image of the image's kind is stored as before.
    expect(await image('/still.png')).toMatchObject({ ok: true, contentType: 'image/webp', sha256: sha256(FILE) });
  });

  it('writes nothing of a 200 answer whose body begins as a page or a document, however it is typed and cut into pieces', async () => {
    // Blanks, then the page, each in its own piece: what arrives first says nothing yet.
    routes.set('/pieces.mp4', (res) => {
      res.writeHead(200, { 'content-type': 'video/mp4' });
      res.write('\n  ', () => res.write('<', () => res.end('html><body>busy</body></html>')));
    });
    routes.set('/object.png', (res) => res.writeHead(200).end('{ "error": "expired" }'));
    const image = (path: string) => copyToStorage({ url: `${origin}${path}`, key: 'acme/img_1/0.png', kind: 'image', storage: storage as unknown as ObjectStorage, policy });
    expect(await copy('/pieces.mp4')).toEqual({
      ok: false,
      retryable: true,
      gone: false,
      reason: 'the provider answered 200 with a body that begins as a page or a document, which is not a video',
    });
    expect(await image('/object.png')).toMatchObject({ ok: false, retryable: true, reason: 'the provider answered 200 with a body that begins as a page or a document, which is not an image' });
    expect(storage.objects.size).toBe(0);
    // A file whose first bytes are "<" or "{" followed by what no page has is still a file.
    const binary = Buffer.concat([Buffer.from([0x3c, 0x00, 0x7b, 0x01]), FILE]);
    routes.set('/binary.mp4', (res) => res.writeHead(200).end(binary));
    expect(await copy('/binary.mp4')).toMatchObject({ ok: true, sha256: sha256(binary), bytes: binary.length });
  });

  it('writes nothing of a success that is not the whole file (a part, a file not ready yet), says so, and retries it', async () => {
    routes.set('/part.mp4', (res) =>
      res.writeHead(206, { 'content-type': 'video/mp4', 'content-range': `bytes 0-999/${FILE.length}`, 'content-length': 1000 }).end(FILE.subarray(0, 1000)),
    );
    routes.set('/later.mp4', (res) => res.writeHead(202, { 'content-type': 'video/mp4' }).end(FILE.subarray(0, 10)));
    routes.set('/proxied.mp4', (res) => res.writeHead(203, { 'content-type': 'video/mp4' }).end(FILE));
    expect(await copy('/part.mp4')).toEqual({
      ok: false,
      retryable: true,
      gone: false,
      reason: 'the provider answered 206 (Partial Content), which is not the whole file',
    });
    expect(await copy('/later.mp4')).toMatchObject({ ok: false, retryable: true, reason: 'the provider answered 202 (Accepted), which is not the whole file' });
    expect(storage.objects.size).toBe(0);
    // A 203 is a 200 a proxy transformed: the whole file still.
    expect(await copy('/proxied.mp4')).toMatchObject({ ok: true, sha256: sha256(FILE), bytes: FILE.length });
  });

  it('fails, worth retrying, when the source sends nothing for the idle time', async () => {
    policy = { ...policy, idleTimeoutMs: 150 };
    routes.set('/silent.mp4', () => undefined);
    expect(await copy('/silent.mp4')).toEqual({ ok: false, retryable: true, gone: false, reason: 'the copy failed: timeout of 150ms exceeded' });
  });

  it('does not take a slow source that keeps sending for a silent one, however long the whole file takes', async () => {
    policy = { ...policy, idleTimeoutMs: 200 };
    // A piece every 50 ms, 800 ms in all: never quiet for the idle time, though four times as long.
    routes.set('/trickle.mp4', (res) => {
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': FILE.length });
      const pieces = 16;
      const size = Math.ceil(FILE.length / pieces);
      let sent = 0;
      const next = () => {
        const piece = FILE.subarray(sent * size, (sent + 1) * size);
        sent += 1;
        if (sent >= pieces) res.end(piece);
        else res.write(piece, () => setTimeout(next, 50));
      };
      next();
    });
    expect(await copy('/trickle.mp4')).toEqual({ ok: true, sha256: sha256(FILE), bytes: FILE.length, contentType: 'video/mp4' });
  });

  it('does not take a storage slower than the source (it stops reading a while) for a silent source', async () => {
    policy = { ...policy, idleTimeoutMs: 300, maxBytes: 100_000_000 };
    const big = Buffer.alloc(16 * 1024 * 1024, 7);
    routes.set('/big.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': big.length }).end(big));
    routes.set('/big.mp4.gz', (res) => res.writeHead(200, { 'content-type': 'video/mp4', 'content-encoding': 'gzip' }).end(gzipSync(big)));
    for (const path of ['/big.mp4', '/big.mp4.gz']) {
      // A backend that takes its time over one part (an S3 part upload on a slow link), longer than the idle time.
      let read = 0;
      let paused = false;
      const slow = {
        ...storage,
        async write(key: string, body: Readable, options: { contentType: string }) {
          const chunks: Buffer[] = [];
          for await (const chunk of body) {
            chunks.push(chunk as Buffer);
            read += (chunk as Buffer).length;
            if (!paused && read > 4 * 1024 * 1024) {
              paused = true;
              await new Promise((resolve) => setTimeout(resolve, 1_000));
            }
          }
          storage.objects.set(key, { bytes: Buffer.concat(chunks), contentType: options.contentType });
        },
      };
      const outcome = await copyToStorage({ url: `${origin}${path}`, key: path, kind: 'video', storage: slow as unknown as ObjectStorage, policy });
      expect(outcome).toEqual({ ok: true, sha256: sha256(big), bytes: big.length, contentType: 'video/mp4' });
      expect(paused).toBe(true);
    }
    // A source that goes quiet mid-file while the copy reads is still silent.
    routes.set('/stalls.mp4', (res) => {
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': big.length });
      res.write(big.subarray(0, 1000));
    });
    expect(await copy('/stalls.mp4')).toEqual({ ok: false, retryable: true, gone: false, reason: 'the copy failed: timeout of 300ms exceeded' });

    // And one that goes quiet after the storage held the body back once: the idle limit still
    // holds (it used to fire once per download, leaving the copy to its whole-copy time limit).
    routes.set('/stalls-later.mp4', (res) => {
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': big.length });
      res.write(big.subarray(0, 8 * 1024 * 1024));
    });
    let heldBack = false;
    const slowOnce = {
      ...storage,
      async write(_key: string, body: Readable) {
        let read = 0;
        for await (const chunk of body) {
          read += (chunk as Buffer).length;
          if (!heldBack && read > 2 * 1024 * 1024) {
            heldBack = true;
            await new Promise((resolve) => setTimeout(resolve, 1_000));
          }
        }
      },
    };
    const stalled = await copyToStorage({ url: `${origin}/stalls-later.mp4`, key: 'later', kind: 'video', storage: slowOnce as unknown as ObjectStorage, policy });
    expect(heldBack).toBe(true);
    expect(stalled).toEqual({ ok: false, retryable: true, gone: false, reason: 'the copy failed: timeout of 300ms exceeded' });
  });

  it('fails, worth retrying, when the whole copy outlasts its time limit though bytes keep coming, and stores nothing', async () => {
    policy = { ...policy, timeoutMs: 150 };
    routes.set('/slow.mp4', (res) => {
      res.writeHead(200, { 'content-type': 'video/mp4' });
      const drip = setInterval(() => res.write(FILE.subarray(0, 100)), 20);
      res.on('close', () => clearInterval(drip));
    });
    expect(await copy('/slow.mp4')).toEqual({ ok: false, retryable: true, gone: false, reason: 'the copy did not finish within 150 ms' });
    expect(storage.objects.size).toBe(0);
  });

  it('fails, worth retrying, when the source breaks off mid-file, and stores nothing', async () => {
    routes.set('/cut.mp4', (res) => {
      res.writeHead(200, { 'content-length': FILE.length });
      res.write(FILE.subarray(0, 1000), () => res.destroy());
    });
    expect(await copy('/cut.mp4')).toMatchObject({ ok: false, retryable: true, gone: false, reason: 'the copy failed: aborted' });
    expect(storage.objects.size).toBe(0);
  });

  it('refuses a file whose announced length is over the limit at once, without downloading it or storing anything', async () => {
    // An idle time far past the bound below, so that a loaded machine has room under the bound.
    policy = { ...policy, maxBytes: 10_000, idleTimeoutMs: 30_000 };
    // Announces 3 GB, then sends a little and nothing more (as a slow host would, for a long time).
    routes.set('/huge.mp4', (res) => {
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': String(3 * 1024 ** 3) });
      res.write(FILE.subarray(0, 1000));
    });
    const started = Date.now();
    expect(await copy('/huge.mp4')).toEqual({
      ok: false,
      retryable: false,
      gone: false,
      reason: `the file is larger than storage.max_bytes (10000 bytes): the provider announced ${3 * 1024 ** 3} bytes`,
    });
    // Not after the idle time (30 s here) or the transfer of the first 10,000 bytes (which never come).
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(storage.objects.size).toBe(0);
  });

  it("tells a source's failure from the storage's own, which it words for the tenant and keeps for the log", async () => {
    routes.set('/cut.mp4', (res) => {
      res.writeHead(200, { 'content-length': FILE.length });
      res.write(FILE.subarray(0, 1000), () => res.destroy());
    });
    routes.set('/out.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4' }).end(FILE));
    const onDisk = (path: string, directory: string) =>
      copyToStorage({ url: `${origin}${path}`, key: 'acme/vid_1/0.mp4', kind: 'video', storage: new FilesystemStorage(directory), policy });
    // The source broke off: its own words, through the filesystem backend too.
    const cut = await onDisk('/cut.mp4', mkdtempSync(join(tmpdir(), 'kling-gw-copy-')));
    expect(cut).toMatchObject({ ok: false, retryable: true, reason: 'the copy failed: aborted' });
    expect(cut).not.toHaveProperty('storageError');
    // The backend failed (here: its folder is a file): worth retrying, said as the gateway's storage, the error kept aside.
    const directory = mkdtempSync(join(tmpdir(), 'kling-gw-copy-'));
    writeFileSync(join(directory, '.partial'), 'not a folder');
    const failed = await onDisk('/out.mp4', directory);
    expect(failed).toMatchObject({ ok: false, retryable: true, gone: false, reason: "the gateway's storage could not write the copy" });
    expect(String((failed as { storageError?: unknown }).storageError)).toContain(directory);
  });

  it('retries a host that asks to slow down (429) or timed the request out (408)', async () => {
    routes.set('/slow.mp4', (res) => res.writeHead(429, { 'retry-after': '1' }).end());
    routes.set('/late.mp4', (res) => res.writeHead(408).end());
    expect(await copy('/slow.mp4')).toEqual({ ok: false, retryable: true, gone: false, reason: 'the provider answered 429 for the result URL' });
    expect(await copy('/late.mp4')).toEqual({ ok: false, retryable: true, gone: false, reason: 'the provider answered 408 for the result URL' });
  });

  it('stores a file of exactly storage.max_bytes, its length announced or not', async () => {
    policy = { ...policy, maxBytes: FILE.length };
    routes.set('/announced.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': FILE.length }).end(FILE));
    routes.set('/streamed.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4' }).end(FILE));
    expect(await copy('/announced.mp4')).toEqual({ ok: true, sha256: sha256(FILE), bytes: FILE.length, contentType: 'video/mp4' });
    expect(await copy('/streamed.mp4')).toEqual({ ok: true, sha256: sha256(FILE), bytes: FILE.length, contentType: 'video/mp4' });
  });

  it('refuses a result URL that is not http(s) at once, without trying it again', async () => {
    for (const [url, scheme] of [['file:///etc/passwd', 'file'], ['ftp://files.example.com/out.mp4', 'ftp']]) {
      expect(await copyToStorage({ url: url!, key: 'acme/vid_1/0.mp4', kind: 'video', storage: storage as unknown as ObjectStorage, policy })).toEqual({
        ok: false,
        retryable: false,
        gone: false,
        reason: `the result URL is not http(s) (${scheme})`,
      });
    }
    expect(storage.objects.size).toBe(0);
  });

  it('records a media type that is not one type alone as the one its URL names', async () => {
    routes.set('/odd.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4, text/html' }).end(FILE));
    expect(await copy('/odd.mp4')).toMatchObject({ ok: true, contentType: 'video/mp4' });
  });

  it('refuses a file that turns out larger than storage.max_bytes as it streams, without trying it again', async () => {
    policy = { ...policy, maxBytes: 10_000 };
    routes.set('/unannounced.mp4', (res) => res.writeHead(200, { 'content-type': 'video/mp4' }).end(FILE));
    expect(await copy('/unannounced.mp4')).toEqual({ ok: false, retryable: false, gone: false, reason: 'the file is larger than storage.max_bytes (10000 bytes)' });
    expect(storage.objects.size).toBe(0);
  });

  it('says a copy stopped by the gateway stopping was stopped, not that it failed (no try is counted against it)', async () => {
    const stopping = new AbortController();
    routes.set('/held.mp4', (res) => {
      res.writeHead(200, { 'content-type': 'video/mp4' });
      res.write(FILE.subarray(0, 1000), () => stopping.abort());
    });
    const copying = copyToStorage({ url: `${origin}/held.mp4`, key: 'acme/vid_1/0.mp4', kind: 'video', storage: storage as unknown as ObjectStorage, policy, signal: stopping.signal });
    await expect(copying).rejects.toThrow(CopyAbortedError);
    expect(storage.objects.size).toBe(0);
  });
});
