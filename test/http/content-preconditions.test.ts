/**
 * The preconditions of RFC 9110 §13.2.2 on `GET /v1/videos/{id}/content`, beside `If-None-Match`
 * and `If-Range`: `If-Match` (strong comparison; `*` is any file) and, without it,
 * `If-Unmodified-Since` are answered `412 Precondition Failed` when they do not hold, as the
 * gateway's own static files answer them, never the file (a download resumed with `Range` and
 * `If-Match` is never spliced onto bytes of another file); `If-Modified-Since` without
 * `If-None-Match` is answered `304` when the copy is not newer than the date.
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
  const created = await gw.create({ model: 'kling-v3', prompt: 'a file with preconditions', duration: 5 });
  const task = await gw.finish(created.body.id);
  link = task.outputs[0].url;
  size = task.outputs[0].bytes;
  const first = await fetch(link);
  await first.arrayBuffer();
  etag = first.headers.get('etag')!;
  lastModified = first.headers.get('last-modified')!;
});
afterAll(() => gw.close());

async function ask(headers: Record<string, string>, method = 'GET') {
  const response = await fetch(link, { method, headers });
  const body = Buffer.from(await response.arrayBuffer());
  return {
    status: response.status,
    etag: response.headers.get('etag'),
    contentRange: response.headers.get('content-range'),
    type: response.headers.get('content-type')?.split(';')[0],
    body,
  };
}

const second = (date: string, by: number) => new Date(Date.parse(date) + by * 1000).toUTCString();

describe('If-Match on the content route', () => {
  it('another ETag, or the same one marked weak: 412 precondition-failed, not the file, with or without a Range, for GET and HEAD', async () => {
    for (const validator of ['"another-file"', `W/${etag}`]) {
      for (const headers of [{ 'if-match': validator }, { 'if-match': validator, range: 'bytes=100-' }] as Record<string, string>[]) {
        const answer = await ask(headers);
        expect([headers, answer.status, answer.type, answer.contentRange]).toEqual([headers, 412, 'application/problem+json', null]);
        expect(JSON.parse(answer.body.toString())).toMatchObject({ type: expect.stringMatching(/\/precondition-failed$/), status: 412 });
        expect(answer.etag).not.toBe(etag);
      }
      expect((await ask({ 'if-match': validator }, 'HEAD')).status).toBe(412);
    }
  });

  it('its own ETag, alone, in a list, or *: the file, and the Range applied', async () => {
    for (const validator of [etag, `"another-file", ${etag}`, '*']) {
      expect([validator, (await ask({ 'if-match': validator })).status]).toEqual([validator, 200]);
      const part = await ask({ 'if-match': validator, range: 'bytes=100-' });
      expect([validator, part.status, part.contentRange]).toEqual([validator, 206, `bytes 100-${size - 1}/${size}`]);
    }
  });
});

describe('If-Unmodified-Since on the content route', () => {
  it('a date before the copy was stored: 412; at or after it: the file; not a date, or with If-Match: not evaluated', async () => {
    expect((await ask({ 'if-unmodified-since': second(lastModified, -1) })).status).toBe(412);
    expect((await ask({ 'if-unmodified-since': lastModified })).status).toBe(200);
    expect((await ask({ 'if-unmodified-since': second(lastModified, 60) })).status).toBe(200);
    expect((await ask({ 'if-unmodified-since': 'yesterday' })).status).toBe(200);
    expect((await ask({ 'if-unmodified-since': second(lastModified, -1), 'if-match': etag })).status).toBe(200);
  });
});

describe('the dates of If-Unmodified-Since and If-Modified-Since', () => {
  /** `date` in the asctime form and the RFC 850 form HTTP also takes (RFC 9110 §5.6.7). */
  const asctime = (date: string) => {
    const d = new Date(Date.parse(date));
    const [weekday, , month] = d.toUTCString().split(' ');
    const time = d.toISOString().slice(11, 19);
    return `${weekday!.slice(0, 3)} ${month} ${String(d.getUTCDate()).padStart(2, ' ')} ${time} ${d.getUTCFullYear()}`;
  };
  const rfc850 = (date: string) => {
    const d = new Date(Date.parse(date));
    const weekday = d.toLocaleDateString('en-US', { weekday: 'long', timeZone: 'UTC' });
    const [, day, month, year, time] = d.toUTCString().split(' ');
    return `${weekday}, ${day}-${month}-${year!.slice(2)} ${time} GMT`;
  };

  it('only HTTP dates are read (a bare number or an ISO date is ignored), the asctime form as UTC whatever the local zone', async () => {
    for (const notHttpDate of ['1', '2020', new Date(Date.parse(lastModified) - 3_600_000).toISOString()]) {
      expect([notHttpDate, (await ask({ 'if-unmodified-since': notHttpDate })).status]).toEqual([notHttpDate, 200]);
    }
    const zone = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      for (const form of [asctime, rfc850]) {
        expect([form(lastModified), (await ask({ 'if-unmodified-since': form(lastModified) })).status]).toEqual([form(lastModified), 200]);
        const before = form(second(lastModified, -1));
        expect([before, (await ask({ 'if-unmodified-since': before })).status]).toEqual([before, 412]);
        expect([form(lastModified), (await ask({ 'if-modified-since': form(lastModified) })).status]).toEqual([form(lastModified), 304]);
      }
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });
});

describe('If-Modified-Since on the content route', () => {
  it('the copy not newer than the date: 304 with its ETag; older date: the file; with If-None-Match: that one decides', async () => {
    for (const date of [lastModified, second(lastModified, 60)]) {
      const answer = await ask({ 'if-modified-since': date });
      expect([date, answer.status, answer.etag, answer.body.length]).toEqual([date, 304, etag, 0]);
    }
    expect((await ask({ 'if-modified-since': lastModified }, 'HEAD')).status).toBe(304);
    expect((await ask({ 'if-modified-since': second(lastModified, -1) })).status).toBe(200);
    expect((await ask({ 'if-modified-since': 'not a date' })).status).toBe(200);
    expect((await ask({ 'if-modified-since': lastModified, 'if-none-match': '"another-file"' })).status).toBe(200);
  });
});
