/**
 * `/console` serves the built console with a strict Content-Security-Policy, and says how to
 * build it when it is not built; `/` leads a browser there.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { consoleRoutes } from '../../src/http/console-routes.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

async function serve(directory: string | null) {
  const app = express();
  app.use('/console', consoleRoutes(directory));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe('console routes', () => {
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
  });

  it('serves the built files under a policy that allows only the console itself and media from anywhere', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'console-dist-'));
    writeFileSync(join(directory, 'index.html'), '<!doctype html><div id="app"></div>');
    writeFileSync(join(directory, 'app.js'), 'console.log(1)');
    const server = await serve(directory);
    try {
      const redirect = await fetch(`${server.url}/console`, { redirect: 'manual' });
      expect(redirect.status).toBe(301);
      expect(redirect.headers.get('location')).toBe('/console/');

      const index = await fetch(`${server.url}/console/`);
      expect(index.status).toBe(200);
      expect(index.headers.get('content-type')).toContain('text/html');
      expect(await index.text()).toContain('<div id="app">');
      const policy = index.headers.get('content-security-policy') ?? '';
      expect(policy).toContain("script-src 'self'");
      expect(policy).toContain("connect-src 'self'");
      expect(policy).toContain("media-src 'self' blob: http: https:");
      expect(policy).toContain("frame-ancestors 'none'");
      expect(index.headers.get('x-content-type-options')).toBe('nosniff');

      const script = await fetch(`${server.url}/console/app.js`);
      expect(script.headers.get('content-type')).toContain('javascript');
      // Revalidated on every load, so a new build is picked up at once.
      expect(script.headers.get('cache-control')).toBe('public, max-age=0');
      expect(script.headers.get('etag')).toEqual(expect.any(String));
    } finally {
      await server.close();
    }
  });

  it('answers 503 with the build command when the console was not built', async () => {
    const server = await serve(null);
    try {
      const answer = await fetch(`${server.url}/console/`);
      expect(answer.status).toBe(503);
      expect(await answer.text()).toContain('npm run build:console');
    } finally {
      await server.close();
    }
  });

  it('is mounted in the gateway without a key, and / leads to it; the API still wants one', async () => {
    gw = await startTestGateway();
    const home = await fetch(`${gw.url}/`, { redirect: 'manual' });
    expect([home.status, home.headers.get('location')]).toEqual([302, '/console/']);
    const redirect = await fetch(`${gw.url}/console`, { redirect: 'manual' });
    expect(redirect.headers.get('location')).toBe('/console/');
    expect((await gw.request('GET', '/v1/videos', undefined, {}, null)).status).toBe(401);
  });

  // The static files' own refusals (a range past the end, a failed precondition) are problems typed
  // and titled by their status, as the API's are: they were typed `bad-request`, titled "Bad request".
  it.each(['/console/index.html', '/docs/swagger-ui.css'])('%s: a range past its end is a 416 range-not-satisfiable problem with Content-Range, a failed If-Match a 412', async (path) => {
    gw = await startTestGateway();
    const file = await fetch(`${gw.url}${path}`, { method: 'HEAD' });
    const size = Number(file.headers.get('content-length'));
    expect(size).toBeGreaterThan(0);
    const fileEtag = file.headers.get('etag');
    expect(fileEtag).toBeTruthy();

    const range = await fetch(`${gw.url}${path}`, { headers: { range: `bytes=${size + 10}-` } });
    expect(range.status).toBe(416);
    expect(range.headers.get('content-type')).toContain('application/problem+json');
    expect(range.headers.get('content-range')).toBe(`bytes */${size}`);
    expect(range.headers.get('x-request-id')).toBeTruthy();
    // The problem is not the file: none of its validators, and not kept by a cache.
    expect(range.headers.get('etag')).not.toBe(fileEtag);
    expect(range.headers.get('last-modified')).toBeNull();
    expect(range.headers.get('cache-control')).toBe('no-store');
    expect(await range.json()).toMatchObject({ type: expect.stringMatching(/\/range-not-satisfiable$/), title: 'Range not satisfiable', status: 416, detail: expect.any(String) });

    const precondition = await fetch(`${gw.url}${path}`, { headers: { 'if-match': '"not-this-one"' } });
    expect(precondition.status).toBe(412);
    expect(precondition.headers.get('last-modified')).toBeNull();
    expect(precondition.headers.get('etag')).not.toBe(fileEtag);
    expect(await precondition.json()).toMatchObject({ type: expect.stringMatching(/\/precondition-failed$/), title: 'Precondition failed', status: 412, detail: expect.any(String) });
  });
});
