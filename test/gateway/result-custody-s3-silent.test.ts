/**
 * A bucket that takes a request and never answers it (an S3-compatible server that hangs, a
 * connection cut off mid-call without a reset). Reads and deletes of stored copies had no time
 * limit: a `GET /content` with `serve: proxy` hung for as long as the client waited, where a store
 * that fails answers `503` with `Retry-After`; and a retention pass waiting on a delete never
 * ended, which held the storing worker's loop (it runs retention) and with it every copy waiting
 * for its next try. Now the bucket has `storage.idle_timeout_ms` to answer. An upload it never
 * answers is its failure too (copied again later), not the file host's.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { SAMPLE_MP4 } from '../../src/sandbox/simulator-kit.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

const BUCKET = 'kling-results';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const DAY_MS = 24 * 3600_000;

let server: S3rver;
let client: S3Client;
let proxy: Server;
let proxied: string;
/** Which requests the proxy takes and never answers. */
let holds: (req: IncomingMessage) => boolean = () => false;
let gw: TestGateway | undefined;

beforeAll(async () => {
  server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: mkdtempSync(join(tmpdir(), 's3rver-')) });
  const { port } = (await server.run()) as { port: number };
  const endpoint = `http://127.0.0.1:${port}`;
  client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDENTIALS });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  // The gateway talks to the bucket through this proxy, which passes requests on or holds them.
  proxy = createServer((req, res) => {
    if (holds(req)) return;
    const onward = httpRequest(new URL(req.url ?? '/', endpoint), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    onward.on('error', () => res.destroy());
    req.pipe(onward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxied = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  proxy?.closeAllConnections();
  await new Promise((resolve) => proxy?.close(resolve));
  client?.destroy();
  await server?.close();
});

afterEach(async () => {
  holds = () => false;
  await gw?.close();
  gw = undefined;
});

function config(extra: Record<string, unknown> = {}) {
  return {
    storage: {
      mode: 'copy',
      backend: 's3',
      idle_timeout_ms: 1_000,
      s3: {
        bucket: BUCKET,
        prefix: 'silent/',
        endpoint: proxied,
        region: 'us-east-1',
        force_path_style: true,
        access_key_id: CREDENTIALS.accessKeyId,
        secret_access_key: CREDENTIALS.secretAccessKey,
        ...extra,
      },
    },
  };
}

it('answers 503 with Retry-After when the bucket does not answer a proxied read, instead of hanging', async () => {
  gw = await startTestGateway({ config: config({ serve: 'proxy' }) });
  const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
  expect(done.outputs[0].storage).toBe('stored');
  holds = (req) => req.method === 'GET';
  const answer = await fetch(`${gw.url}/v1/videos/${done.id}/content?index=0`, {
    headers: { authorization: `Bearer ${TENANT_KEY}` },
    signal: AbortSignal.timeout(15_000),
  });
  expect(answer.status).toBe(503);
  expect(answer.headers.get('retry-after')).toBe('10');
  expect(((await answer.json()) as { detail: string }).detail).toMatch(/could not be read from storage right now/);
  // Once the bucket answers again, so does the route.
  holds = () => false;
  const again = await fetch(done.outputs[0].url);
  expect(again.status).toBe(200);
  expect(Buffer.from(await again.arrayBuffer()).equals(SAMPLE_MP4)).toBe(true);
}, 30_000);

it('ends a retention pass whose delete the bucket never answers, keeping the copy until a later pass deletes it', async () => {
  gw = await startTestGateway({ config: { ...config(), tenants: { acme: { retention_days: 1 } } } });
  const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
  const key = `silent/acme/${done.created_at.slice(0, 10)}/${done.id}-0.mp4`;
  holds = (req) => req.method === 'DELETE';
  await gw.advance(DAY_MS + 60_000);
  expect((await gw.get(done.id)).body.outputs[0].storage).toBe('stored');
  holds = () => false;
  await gw.advance(60_000);
  expect((await gw.get(done.id)).body.outputs[0]).toMatchObject({ storage: 'expired', storage_error: 'deleted after the 1-day retention' });
  await expect(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).rejects.toMatchObject({ name: 'NoSuchKey' });
}, 30_000);

it("counts an upload the bucket never answers as the storage's failure, copied again later once the bucket answers", async () => {
  holds = (req) => req.method === 'PUT' || req.method === 'POST';
  gw = await startTestGateway({ config: { storage: { ...config().storage, copy_timeout_ms: 1_000, max_attempts: 1 } } });
  const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
  expect(done.status).toBe('succeeded');
  expect(done.outputs[0].storage).toBe('not_stored');
  // Not the file host's failure: the output is copied again later, as when the bucket answers an error.
  expect(done.outputs[0].storage_error).toMatch(/^the gateway's storage could not write the copy \(gave up after 1 tries; copied again later, until /);
  holds = () => false;
  await gw.advance(61_000);
  expect((await gw.get(done.id)).body.outputs[0]).toMatchObject({ storage: 'stored', storage_error: null, bytes: SAMPLE_MP4.length });
}, 30_000);
