/**
 * The edges of a byte range on `GET /v1/videos/{id}/content` (RFC 9110 §14.1.2): a range of one
 * byte (`bytes=0-0`, what many players send first to learn the size) and the file's last byte are
 * satisfiable (206, one byte); a last byte past the end is read as the end of the file, so
 * `Content-Range`, `Content-Length` and the bytes sent agree; a suffix longer than the file is
 * the whole file (206).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
let link: string;
let size: number;
let whole: Buffer;

beforeAll(async () => {
  gw = await startTestGateway({ config: { storage: { mode: 'copy' } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a range at the edges', duration: 5 });
  const task = await gw.finish(created.body.id);
  link = task.outputs[0].url;
  size = task.outputs[0].bytes;
  whole = Buffer.from(await (await fetch(link)).arrayBuffer());
  expect(whole.length).toBe(size);
});
afterAll(() => gw.close());

async function fetchRange(range: string) {
  const response = await fetch(link, { headers: { range } });
  const bytes = Buffer.from(await response.arrayBuffer());
  return { status: response.status, contentRange: response.headers.get('content-range'), contentLength: response.headers.get('content-length'), bytes };
}

describe('byte ranges at the edges of the file', () => {
  it('one byte: the first (bytes=0-0) and the last', async () => {
    const first = await fetchRange('bytes=0-0');
    expect(first).toMatchObject({ status: 206, contentRange: `bytes 0-0/${size}`, contentLength: '1' });
    expect(first.bytes.equals(whole.subarray(0, 1))).toBe(true);
    const last = await fetchRange(`bytes=${size - 1}-${size - 1}`);
    expect(last).toMatchObject({ status: 206, contentRange: `bytes ${size - 1}-${size - 1}/${size}`, contentLength: '1' });
    expect(last.bytes.equals(whole.subarray(size - 1))).toBe(true);
  });

  it('a last byte past the end: up to the end of the file, headers and bytes agreeing', async () => {
    const past = await fetchRange(`bytes=10-${size + 10}`);
    expect(past).toMatchObject({ status: 206, contentRange: `bytes 10-${size - 1}/${size}`, contentLength: String(size - 10) });
    expect(past.bytes.equals(whole.subarray(10))).toBe(true);
  });

  it('a suffix longer than the file: the whole file as a 206', async () => {
    const suffix = await fetchRange(`bytes=-${size + 1}`);
    expect(suffix).toMatchObject({ status: 206, contentRange: `bytes 0-${size - 1}/${size}`, contentLength: String(size) });
    expect(suffix.bytes.equals(whole)).toBe(true);
  });
});
