/**
 * Result custody against a real S3-compatible server (s3rver, started here on loopback).
 */
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SAMPLE_MP4 } from '../../src/sandbox/simulator-kit.js';
import { TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

const BUCKET = 'kling-results';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const DAY_MS = 24 * 3600_000;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

let server: S3rver;
let endpoint: string;
let client: S3Client;
let gw: TestGateway | undefined;

beforeAll(async () => {
  server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: mkdtempSync(join(tmpdir(), 's3rver-')) });
  const { port } = (await server.run()) as { port: number };
  endpoint = `http://127.0.0.1:${port}`;
  client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDENTIALS });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterAll(async () => {
  client?.destroy();
  await server?.close();
});

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

/**
 * Records the method and `Range` of each request s3rver gets (beside its own handling of them),
 * until `stop`, which returns them.
 */
function requestsToS3() {
  const seen: { method: string; range: string | undefined }[] = [];
  const httpServer = (server as unknown as { httpServer: Server }).httpServer;
  const record = (req: IncomingMessage) => seen.push({ method: req.method ?? '', range: req.headers.range });
  httpServer.on('request', record);
  return {
    stop() {
      httpServer.off('request', record);
      return seen;
    },
  };
}

function s3Config(extra: Record<string, unknown> = {}) {
  return {
    storage: {
      mode: 'copy',
      backend: 's3',
      s3: {
        bucket: BUCKET,
        prefix: 'test-run/',
        endpoint,
        region: 'us-east-1',
        force_path_style: true,
        access_key_id: CREDENTIALS.accessKeyId,
        secret_access_key: CREDENTIALS.secretAccessKey,
        ...extra,
      },
    },
  };
}

async function objectBytes(key: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

/**
 * The method a presigned URL (SigV4, query string) was signed for, checked as S3 checks it: the
 * method is part of what is signed, so a URL presigned for GET answers 403 to a HEAD on AWS S3 and
 * MinIO (s3rver, which these tests run on, does not check SigV4 signatures at all).
 */
function signedMethodOf(location: string): string | undefined {
  const url = new URL(location);
  const query = url.searchParams;
  if (query.get('X-Amz-SignedHeaders') !== 'host') throw new Error(`unexpected signed headers ${query.get('X-Amz-SignedHeaders')}`);
  const encode = (text: string) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const canonicalQuery = [...query.entries()]
    .filter(([name]) => name !== 'X-Amz-Signature')
    .map(([name, value]) => [encode(name), encode(value)])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
  const date = query.get('X-Amz-Date')!;
  const [, day, region, service] = query.get('X-Amz-Credential')!.split('/');
  const hmac = (key: string | Buffer, text: string) => createHmac('sha256', key).update(text).digest();
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${CREDENTIALS.secretAccessKey}`, day!), region!), service!), 'aws4_request');
  for (const method of ['GET', 'HEAD']) {
    const canonical = [method, url.pathname, canonicalQuery, `host:${url.host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
    const toSign = ['AWS4-HMAC-SHA256', date, `${day}/${region}/${service}/aws4_request`, createHash('sha256').update(canonical).digest('hex')].join('\n');
    if (createHmac('sha256', signingKey).update(toSign).digest('hex') === query.get('X-Amz-Signature')) return method;
  }
  return undefined;
}

describe('result custody on S3-compatible storage', () => {
  it.each(['freepik', 'kling3api', 'kling-legacy'])('stores the %s result in the bucket and redirects to a working presigned URL', async (provider) => {
    gw = await startTestGateway({ config: s3Config() });
    const model = provider === 'kling-legacy' ? 'kling-v2-6' : 'kling-v3';
    const done = await gw.finish((await gw.create({ model, prompt: 'a lighthouse', duration: 5, routing: { providers: [provider] } })).body.id);
    expect(done.status).toBe('succeeded');
    const upstream = Buffer.from(await (await fetch(done.outputs[0].upstream_url)).arrayBuffer());
    expect(done.outputs[0]).toMatchObject({ storage: 'stored', sha256: sha256(upstream), bytes: upstream.length, content_type: 'video/mp4' });

    // The object is in the bucket under the prefix, byte for byte.
    expect((await objectBytes(`test-run/acme/${done.created_at.slice(0, 10)}/${done.id}-0.mp4`)).equals(upstream)).toBe(true);

    // The content route answers with a presigned URL of that object.
    const redirect = await fetch(`${gw.url}/v1/videos/${done.id}/content?index=0`, {
      headers: { authorization: `Bearer ${TENANT_KEY}` },
      redirect: 'manual',
    });
    expect(redirect.status).toBe(302);
    const location = redirect.headers.get('location')!;
    expect(location.startsWith(`${endpoint}/${BUCKET}/test-run/acme/${done.created_at.slice(0, 10)}/${done.id}-0.mp4?`)).toBe(true);
    expect(location).toContain('X-Amz-Signature=');
    expect(location).toContain('X-Amz-Expires=900');
    const presigned = await fetch(location);
    expect(presigned.status).toBe(200);
    expect(Buffer.from(await presigned.arrayBuffer()).equals(upstream)).toBe(true);
    // Ranges go straight to the store.
    const range = await fetch(location, { headers: { range: 'bytes=0-15' } });
    expect(range.status).toBe(206);
    expect(Buffer.from(await range.arrayBuffer()).equals(upstream.subarray(0, 16))).toBe(true);

    // The signed link on the task leads there too, without the gateway key.
    const viaLink = await fetch(done.outputs[0].url);
    expect(viaLink.status).toBe(200);
    expect(Buffer.from(await viaLink.arrayBuffer()).equals(upstream)).toBe(true);
  });

  it('answers a HEAD with a URL presigned for HEAD (a GET one is refused by S3), keeping the type and file name', async () => {
    gw = await startTestGateway({ config: s3Config() });
    const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    const locationFor = async (method: string) => {
      const answer = await fetch(done.outputs[0].url, { method, redirect: 'manual' });
      expect(answer.status).toBe(302);
      return answer.headers.get('location')!;
    };
    const forGet = await locationFor('GET');
    expect(signedMethodOf(forGet)).toBe('GET');
    const forHead = await locationFor('HEAD');
    expect(signedMethodOf(forHead)).toBe('HEAD');
    const head = await fetch(forHead, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(SAMPLE_MP4.length));
    expect(head.headers.get('content-type')).toBe('video/mp4');
    expect(head.headers.get('content-disposition')).toBe(`inline; filename="${done.id}-0.mp4"`);
  });

  it('serves through the gateway with ranges when serve is proxy, after the upstream file is gone', async () => {
    gw = await startTestGateway({ config: s3Config({ serve: 'proxy' }) });
    const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['freepik'] } })).body.id);
    gw.simulator('freepik').expireResult(done.provider_task_id);
    expect((await fetch(done.outputs[0].upstream_url)).status).toBe(404);

    const whole = await fetch(done.outputs[0].url);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-type')).toBe('video/mp4');
    expect(whole.headers.get('etag')).toBe(`"${sha256(SAMPLE_MP4)}"`);
    expect(Buffer.from(await whole.arrayBuffer()).equals(SAMPLE_MP4)).toBe(true);
    const asked = requestsToS3();
    const part = await fetch(done.outputs[0].url, { headers: { range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${SAMPLE_MP4.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(SAMPLE_MP4.subarray(100, 200))).toBe(true);
    // S3 was asked for those 100 bytes only, not for the rest of the object from byte 100 on.
    expect(asked.stop().filter((request) => request.method === 'GET').map((request) => request.range)).toEqual(['bytes=100-199']);
  });

  it('answers 410 when serve is proxy and the object is missing from the bucket (deleted by hand), not 503 as for a store that fails', async () => {
    gw = await startTestGateway({ config: s3Config({ serve: 'proxy' }) });
    const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    expect((await fetch(done.outputs[0].url)).status).toBe(200);
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `test-run/acme/${done.created_at.slice(0, 10)}/${done.id}-0.mp4` }));
    const missing = await fetch(done.outputs[0].url, { headers: { range: 'bytes=0-9' } });
    expect(missing.status).toBe(410);
    expect(((await missing.json()) as { detail: string }).detail).toMatch(/missing from storage/);
  });

  it('deletes the object after the retention', async () => {
    gw = await startTestGateway({ config: { ...s3Config(), tenants: { acme: { retention_days: 1 } } } });
    const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    const key = `test-run/acme/${done.created_at.slice(0, 10)}/${done.id}-0.mp4`;
    expect((await objectBytes(key)).length).toBe(SAMPLE_MP4.length);
    await gw.advance(DAY_MS + 60_000);
    expect((await gw.get(done.id)).body.outputs[0].storage).toBe('expired');
    await expect(objectBytes(key)).rejects.toMatchObject({ name: 'NoSuchKey' });
  });

  it.each([
    ['a bucket that does not exist', { bucket: 'no-such-bucket' }, /no-such-bucket/],
    ['credentials the store refuses', { access_key_id: 'NOT-A-KEY', secret_access_key: 'wrong-secret-value' }, /kling-results/],
  ])('warns at start when the bucket does not answer (%s), without the credentials', async (_case, s3, names) => {
    let raw = '';
    const logTo = new Writable({
      write(chunk, _encoding, done) {
        raw += chunk.toString();
        done();
      },
    });
    gw = await startTestGateway({ config: s3Config(s3), logTo });
    // The check runs beside the start (it does not hold it): its warning follows shortly.
    const warningOf = () =>
      raw
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { level: string; msg: string; storage?: string })
        .find((line) => line.level === 'warn' && /storage/.test(line.msg));
    const warning = await vi.waitFor(() => {
      const found = warningOf();
      if (!found) throw new Error(`no storage warning yet: ${raw}`);
      return found;
    }, { timeout: 10_000 });
    expect(JSON.stringify(warning)).toMatch(names);
    expect(raw).not.toContain('wrong-secret-value');
  });

  it('retries while the bucket cannot be written, then reports the output not stored', async () => {
    gw = await startTestGateway({ config: { ...s3Config({ bucket: 'no-such-bucket' }), storage: { ...s3Config({ bucket: 'no-such-bucket' }).storage, max_attempts: 2 } } });
    const done = await gw.finish((await gw.create({ model: 'kling-v3', prompt: 'x', routing: { providers: ['kling3api'] } })).body.id);
    expect(done.status).toBe('succeeded');
    expect(done.outputs[0]).toMatchObject({ storage: 'not_stored', url: done.outputs[0].upstream_url });
    expect(done.outputs[0].storage_error).toMatch(/gave up after 2 tries/);
  });
});
