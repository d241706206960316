/**
 * `If-Range` on `GET /v1/videos/{id}/content`, as RFC 9110 §13.1.5 has it: a download resumed with
 * the validator it began with gets the rest (206) only while the file is still the one begun,
 * and the whole file (200) otherwise, never bytes of one file spliced onto another. An entity-tag
 * must match the ETag by strong comparison (a weak one never matches); a date is not a validator
 * this route resumes on, so it gets the whole file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
let link: string;
let size: number;
let etag: string;
let lastModified: string;

beforeAll(async () => {
  gw = await startTestGateway({ config: { storage: { mode: 'copy' } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a file resumed', duration: 5 });
  const task = await gw.finish(created.body.id);
  link = task.outputs[0].url;
  size = task.outputs[0].bytes;
  const first = await fetch(link);
  await first.arrayBuffer();
  etag = first.headers.get('etag')!;
  lastModified = first.headers.get('last-modified')!;
  expect(etag).toBe(`"${task.outputs[0].sha256}"`);
});
afterAll(() => gw.close());

async function resume(headers: Record<string, string>): Promise<{ status: number; contentRange: string | null; length: number }> {
  const response = await fetch(link, { headers });
  return { status: response.status, contentRange: response.headers.get('content-range'), length: (await response.arrayBuffer()).byteLength };
}

describe('If-Range on the content route', () => {
  it('the ETag the file was served with: the rest of it (206)', async () => {
    expect(await resume({ range: 'bytes=100-', 'if-range': etag })).toEqual({ status: 206, contentRange: `bytes 100-${size - 1}/${size}`, length: size - 100 });
  });

  it('another ETag, the same one marked weak, or a date: the whole file (200), the Range not applied', async () => {
    for (const validator of ['"another-file"', `W/${etag}`, lastModified, 'not a validator']) {
      expect([validator, await resume({ range: 'bytes=100-', 'if-range': validator })]).toEqual([validator, { status: 200, contentRange: null, length: size }]);
    }
  });

  it('a range outside the file with a validator that does not match: the whole file (200), not 416', async () => {
    expect(await resume({ range: `bytes=${size}-`, 'if-range': '"another-file"' })).toEqual({ status: 200, contentRange: null, length: size });
    expect(await resume({ range: `bytes=${size}-`, 'if-range': etag })).toMatchObject({ status: 416, contentRange: `bytes */${size}` });
  });

  it('If-Range without Range: the whole file', async () => {
    expect(await resume({ 'if-range': etag })).toEqual({ status: 200, contentRange: null, length: size });
  });
});

describe('If-None-Match on the content route', () => {
  it('compares weakly (RFC 9110 §13.1.2): the ETag, marked weak or not, alone or in a list, is a 304; another is the file', async () => {
    for (const validator of [etag, `W/${etag}`, `"another-file", W/${etag}`, '*']) {
      expect([validator, await resume({ 'if-none-match': validator })]).toEqual([validator, { status: 304, contentRange: null, length: 0 }]);
    }
    expect(await resume({ 'if-none-match': '"another-file", W/"another"' })).toEqual({ status: 200, contentRange: null, length: size });
  });
});
