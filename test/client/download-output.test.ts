/**
 * `downloadOutput` against a gateway that keeps copies of outputs (`storage.mode: copy`): the
 * stored copy streams from the gateway's content route, byte for byte what it stored; a copy that
 * is gone (deleted after retention, or missing from storage) is `OutputUnavailableError`, as a
 * provider's file host refusing is: the output can no longer be had, whatever the key or the task.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient, GatewayError, OutputUnavailableError, type Task } from '../../packages/client/src/index.js';
import { TENANT_KEY } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';
import { succeededTask } from '../support/fake-task-gateway.js';
import { loopbackServer } from '../support/raw-answer.js';

describe('downloadOutput of a stored copy', () => {
  let live: LiveGateway;
  let copies: string;
  let client: GatewayClient;
  let done: Task;

  beforeAll(async () => {
    copies = mkdtempSync(join(tmpdir(), 'kg-client-copies-'));
    live = await startLiveGateway({ storage: { mode: 'copy', filesystem: { path: copies } } });
    client = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY });
    const created = await client.createVideo({ model: 'kling-v3', prompt: 'a fox kept by the gateway', duration: 5 });
    done = await client.waitForVideo(created.id, { timeoutMs: 20_000 });
  });
  afterAll(async () => {
    await live.close();
    rmSync(copies, { recursive: true, force: true });
  });

  it('streams the copy the gateway stored, byte for byte', async () => {
    expect(done.outputs[0]).toMatchObject({ storage: 'stored' });
    const download = await client.downloadOutput(done.id);
    expect(download).toMatchObject({ source: 'gateway', size: done.outputs[0]!.bytes, contentType: 'video/mp4' });
    const bytes = Buffer.from(await new Response(download.body).arrayBuffer());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(done.outputs[0]!.sha256);
  });

  it('resumes from a byte offset (`from`): the stored copy by HTTP Range, a file host that ignores Range by skipping', async () => {
    const whole = Buffer.from(await new Response((await client.downloadOutput(done.id)).body).arrayBuffer());
    const from = 1000;
    const rest = await client.downloadOutput(done.id, { from });
    expect(rest).toMatchObject({ source: 'gateway', start: from, size: whole.length - from, total: whole.length });
    expect(Buffer.from(await new Response(rest.body).arrayBuffer()).equals(whole.subarray(from))).toBe(true);

    // The provider's file host of the simulator answers a Range with the whole file (200).
    const passthrough = await startLiveGateway();
    try {
      const direct = new GatewayClient({ baseUrl: passthrough.url, apiKey: TENANT_KEY });
      const made = await direct.waitForVideo((await direct.createVideo({ model: 'kling-v3', prompt: 'a fox', duration: 5 })).id, { timeoutMs: 20_000 });
      const full = Buffer.from(await new Response((await direct.downloadOutput(made.id)).body).arrayBuffer());
      const tail = await direct.downloadOutput(made.id, { from });
      expect(tail).toMatchObject({ source: 'upstream', start: from, size: full.length - from, total: full.length });
      expect(Buffer.from(await new Response(tail.body).arrayBuffer()).equals(full.subarray(from))).toBe(true);
      // Past the end of a file whose host ignores Range: refused as the gateway's 416 is, not an empty download.
      await expect(direct.downloadOutput(made.id, { from: full.length })).rejects.toThrow(
        new RangeError(`output 0 of video ${made.id} has ${full.length} bytes: there is nothing from byte ${full.length} on`),
      );
    } finally {
      await passthrough.close();
    }

    await expect(client.downloadOutput(done.id, { from: whole.length })).rejects.toThrow(
      new RangeError(`output 0 of video ${done.id} has ${whole.length} bytes: there is nothing from byte ${whole.length} on`),
    );
    await expect(client.downloadOutput(done.id, { from: -1 })).rejects.toThrow(TypeError);
  });

  it('says the validator it was served with (the ETag), and resumes with it only while the file is the same one (If-Range)', async () => {
    const first = await client.downloadOutput(done.id);
    await first.body.cancel();
    expect(first.validator).toBe(`"${done.outputs[0]!.sha256}"`);
    const whole = done.outputs[0]!.bytes!;
    const from = 1000;
    const rest = await client.downloadOutput(done.id, { from, ifRange: first.validator! });
    expect(rest).toMatchObject({ start: from, size: whole - from, total: whole, validator: first.validator });
    await rest.body.cancel();
    // Begun on another file: the gateway answers with the whole file, which starts at byte 0 and is not cut.
    const other = await client.downloadOutput(done.id, { from, ifRange: '"another-file"' });
    expect(other).toMatchObject({ start: 0, size: whole, total: whole, validator: first.validator });
    expect(createHash('sha256').update(Buffer.from(await new Response(other.body).arrayBuffer())).digest('hex')).toBe(done.outputs[0]!.sha256);
  });

  it('a copy gone from storage is OutputUnavailableError naming the gateway, with its problem, not a GatewayError refusal', async () => {
    rmSync(copies, { recursive: true, force: true });
    const error = await client.downloadOutput(done.id).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OutputUnavailableError);
    expect(error).not.toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ id: done.id, index: 0, status: 410, problem: { status: 410 } });
    expect((error as Error).message).toMatch(new RegExp(`^output 0 of video ${done.id} cannot be downloaded: the gateway answered 410 \\(.+missing from storage`));
  });
});

describe('downloadOutput resumed through a redirect to object storage', () => {
  const FILE = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));
  const ETAG = '"9b2cf535f27731c974343645a3985328"';
  let gateway: { base: string; close: () => Promise<void> };
  let storage: { base: string; close: () => Promise<void> };
  const storageSaw: { range: string | undefined; ifRange: string | undefined; authorization: string | undefined }[] = [];
  /** The `x-proxy-token` header (a client's extra header) each request came with, at the gateway and at the bucket. */
  const extraSaw: { at: 'gateway' | 'storage'; path: string; token: string | undefined }[] = [];

  beforeAll(async () => {
    // A bucket as S3 answers: an ETag, and If-Range honoured (the rest while it matches, else the whole object).
    storage = await loopbackServer((req, res) => {
      req.resume();
      const ifRange = req.headers['if-range'] as string | undefined;
      storageSaw.push({ range: req.headers.range, ifRange, authorization: req.headers.authorization });
      extraSaw.push({ at: 'storage', path: (req.url ?? '').split('?')[0]!, token: req.headers['x-proxy-token'] as string | undefined });
      const from = ifRange === undefined || ifRange === ETAG ? Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0) : 0;
      if (from > 0) {
        res.writeHead(206, { etag: ETAG, 'content-type': 'video/mp4', 'content-length': FILE.length - from, 'content-range': `bytes ${from}-${FILE.length - 1}/${FILE.length}` });
        res.end(FILE.subarray(from));
        return;
      }
      res.writeHead(200, { etag: ETAG, 'content-type': 'video/mp4', 'content-length': FILE.length }).end(FILE);
    });
    // The gateway with `storage.s3.serve: redirect`: its content route sends a presigned URL.
    gateway = await loopbackServer((req, res) => {
      req.resume();
      const path = (req.url ?? '').split('?')[0]!;
      extraSaw.push({ at: 'gateway', path, token: req.headers['x-proxy-token'] as string | undefined });
      const json = (body: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (path === '/openapi.json') return json({ paths: { '/v1/videos/{id}': { get: {} }, '/v1/videos/{id}/content': { get: {} } } });
      if (path === '/v1/videos/vid_s3/content') return res.writeHead(302, { location: `${storage.base}/bucket/vid_s3-0.mp4?X-Amz-Signature=abc` }).end();
      if (path === '/v1/videos/vid_s3') {
        const task = succeededTask(gateway.base, 'vid_s3');
        return json({ ...task, outputs: [{ type: 'video', url: `${gateway.base}/v1/videos/vid_s3/content?index=0`, duration: 5, storage: 'stored' }] });
      }
      res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404 }));
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await storage?.close();
  });

  it("carries Range and If-Range through the redirect: the rest while the object is the same, all of it when it is not; the key stays at the gateway", async () => {
    const client = new GatewayClient({ baseUrl: gateway.base, apiKey: TENANT_KEY });
    const first = await client.downloadOutput('vid_s3');
    await first.body.cancel();
    expect(first.validator).toBe(ETAG);
    const rest = await client.downloadOutput('vid_s3', { from: 1000, ifRange: first.validator! });
    expect(rest).toMatchObject({ start: 1000, size: FILE.length - 1000, total: FILE.length });
    expect(Buffer.from(await new Response(rest.body).arrayBuffer()).equals(FILE.subarray(1000))).toBe(true);
    const replaced = await client.downloadOutput('vid_s3', { from: 1000, ifRange: '"an-older-object"' });
    expect(replaced).toMatchObject({ start: 0, size: FILE.length, total: FILE.length });
    expect(Buffer.from(await new Response(replaced.body).arrayBuffer()).equals(FILE)).toBe(true);
    expect(storageSaw).toEqual([
      { range: undefined, ifRange: undefined, authorization: undefined },
      { range: 'bytes=1000-', ifRange: ETAG, authorization: undefined },
      { range: 'bytes=1000-', ifRange: '"an-older-object"', authorization: undefined },
    ]);
  });

  it("sends the client's extra headers (a proxy's token before the gateway) to the gateway only, not on to the bucket it redirects to", async () => {
    const client = new GatewayClient({ baseUrl: gateway.base, apiKey: TENANT_KEY, headers: { 'x-proxy-token': 'proxy-secret' } });
    extraSaw.length = 0;
    const download = await client.downloadOutput('vid_s3', { from: 1000, ifRange: ETAG });
    expect(Buffer.from(await new Response(download.body).arrayBuffer()).equals(FILE.subarray(1000))).toBe(true);
    expect(download).toMatchObject({ source: 'gateway', start: 1000, url: `${storage.base}/bucket/vid_s3-0.mp4?X-Amz-Signature=abc` });
    expect(extraSaw.filter((seen) => seen.path !== '/openapi.json')).toEqual([
      { at: 'gateway', path: '/v1/videos/vid_s3', token: 'proxy-secret' },
      { at: 'gateway', path: '/v1/videos/vid_s3/content', token: 'proxy-secret' },
      { at: 'storage', path: '/bucket/vid_s3-0.mp4', token: undefined },
    ]);
    expect(storageSaw.at(-1)).toEqual({ range: 'bytes=1000-', ifRange: ETAG, authorization: undefined });
  });
});

describe('downloadOutput of a task not done yet', () => {
  it("is the gateway's own 409 saying the task is still being made, not a 404 that reads as a wrong id", async () => {
    const running = { ...succeededTask('http://unused.test', 'vid_running'), status: 'processing', completed_at: null, outputs: [] };
    const gateway = await loopbackServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(running));
    });
    try {
      const error = await new GatewayClient({ baseUrl: gateway.base, apiKey: TENANT_KEY }).downloadOutput('vid_running').catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(GatewayError);
      expect(error).toMatchObject({ status: 409, problem: { status: 409, title: 'Conflict' } });
      expect((error as Error).message).toBe('Conflict: video vid_running is still processing; its outputs are served once the task has succeeded.');
    } finally {
      await gateway.close();
    }
  });
});
