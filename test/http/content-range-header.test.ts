/**
 * The `Range` header of `GET /v1/videos/{id}/content` is read in time proportional to its length.
 * Its reader was a regular expression with three runs of optional whitespace around the dash:
 * a range spec of a few thousand spaces, a dash, a few thousand more and one stray character
 * made it try every split (cubic), so one request from any tenant holding a link to its own video
 * held the event loop, and with it every other tenant, for seconds to minutes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuTimer } from '../support/cpu-time.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
let link: string;
let size: number;

beforeAll(async () => {
  gw = await startTestGateway({ config: { storage: { mode: 'copy' } } });
  const created = await gw.create({ model: 'kling-v3', prompt: 'a range to read', duration: 5 });
  const task = await gw.finish(created.body.id);
  link = task.outputs[0].url;
  size = task.outputs[0].bytes;
});
afterAll(() => gw.close());

/** `ms`: the CPU time the request cost this process (gateway and client), which a loaded machine does not stretch as it does the wall clock. */
async function fetchRange(range: string): Promise<{ status: number; contentRange: string | null; ms: number }> {
  const cpuMs = cpuTimer();
  const response = await fetch(link, { headers: { range } });
  await response.arrayBuffer();
  return { status: response.status, contentRange: response.headers.get('content-range'), ms: cpuMs() };
}

describe('a Range header built to make its reader backtrack', () => {
  it('whitespace around a dash with a stray character after it is answered at once, as a malformed range (the whole file)', { timeout: 60_000 }, async () => {
    const hostile = `bytes=${' '.repeat(2_000)}-${' '.repeat(2_000)}x`;
    const answer = await fetchRange(hostile);
    expect(answer.status).toBe(200);
    expect(answer.ms).toBeLessThan(1_000);
    // Many such specs, up to what node lets a header hold.
    const many = await fetchRange(`bytes=${Array.from({ length: 4 }, () => `${' '.repeat(1_500)}-${' '.repeat(1_500)}x`).join(',')}`);
    expect(many.status).toBe(200);
    expect(many.ms).toBeLessThan(1_000);
  });

  it('a range with whitespace around its numbers is still read', async () => {
    expect(await fetchRange('bytes = 0 - 9')).toMatchObject({ status: 206, contentRange: `bytes 0-9/${size}` });
    expect(await fetchRange('bytes=\t-100 ')).toMatchObject({ status: 206, contentRange: `bytes ${size - 100}-${size - 1}/${size}` });
    expect(await fetchRange('bytes=5-2')).toMatchObject({ status: 416 });
    expect(await fetchRange('bytes=0-1-2')).toMatchObject({ status: 200, contentRange: null });
    expect(await fetchRange('bytes=1 2-3')).toMatchObject({ status: 200, contentRange: null });
  });

  it('empty list elements around one range are skipped (RFC 9110 §5.6.1.2): that range (206)', async () => {
    for (const range of ['bytes=0-9,', 'bytes=, 0-9', 'bytes=0-9 , ,']) {
      expect([range, await fetchRange(range)]).toMatchObject([range, { status: 206, contentRange: `bytes 0-9/${size}` }]);
    }
    // Nothing but empty elements is still no range: the whole file.
    for (const range of ['bytes=,', 'bytes= , ']) {
      expect([range, await fetchRange(range)]).toMatchObject([range, { status: 200, contentRange: null }]);
    }
  });

  it('a Range that does not read as one byte range is ignored: the whole file (200), never a 416', async () => {
    // No number on either side of the dash, no dash, nothing after `=`: not a range (RFC 9110 §14.1.1), so not an unsatisfiable one.
    for (const range of ['bytes=-', 'bytes=x', 'bytes=', 'bytes=0-9,x']) {
      expect([range, await fetchRange(range)]).toMatchObject([range, { status: 200, contentRange: null }]);
    }
    // Several ranges: the whole file, not the first of them.
    expect(await fetchRange('bytes=0-9,20-29')).toMatchObject({ status: 200, contentRange: null });
    // The unit is read in any letter case (RFC 9110 §14.1: range units are case-insensitive).
    expect(await fetchRange('Bytes=0-9')).toMatchObject({ status: 206, contentRange: `bytes 0-9/${size}` });
  });
});
