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
});
