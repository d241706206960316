/**
 * `@kling-gateway/client` as an app adopting it meets it: installed by its path into another
 * project and imported by name from plain JavaScript in Node 20, with no TypeScript loader. Runs on
 * a scratch copy of what the build reads (as the build test does), so the checkout is left alone.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TENANT_KEY } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLIENT = join(REPO, 'packages/client');

/** Every module specifier a file imports or re-exports from. */
function importsOf(source: string): string[] {
  return [...source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"`;]*?from\s+'([^']+)'/g)].map((match) => match[1]!);
}

describe('the client package', { timeout: 120_000 }, () => {
  let root: string;
  let live: LiveGateway;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'kg-client-package-'));
    for (const part of ['src', 'packages/client', 'openapi/gateway.json', 'bin/build-freshness.js', 'scripts/build-server.mjs']) {
      mkdirSync(join(root, part, '..'), { recursive: true });
      cpSync(join(REPO, part), join(root, part), { recursive: true, filter: (from) => !from.startsWith(join(CLIENT, 'dist')) });
    }
    symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
    // What `npm install` (prepare) does in a clone.
    await run(process.execPath, [join(root, 'scripts/build-server.mjs')], { cwd: root });
    live = await startLiveGateway();
  });
  afterAll(async () => {
    await live?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('is imported by name from plain JavaScript in another project (Node 20, no TypeScript loader) and talks to a gateway', async () => {
    // `npm install <path to packages/client>` links the folder into the app's node_modules.
    const app = join(root, 'app');
    mkdirSync(join(app, 'node_modules/@kling-gateway'), { recursive: true });
    symlinkSync(join(root, 'packages/client'), join(app, 'node_modules/@kling-gateway/client'));
    writeFileSync(join(app, 'package.json'), JSON.stringify({ type: 'module', dependencies: { '@kling-gateway/client': 'file:../packages/client' } }));
    writeFileSync(
      join(app, 'app.mjs'),
      `import { GatewayClient, GatewayError } from '@kling-gateway/client';
import { verifyGatewayWebhook } from '@kling-gateway/client/webhooks';
const client = new GatewayClient({ baseUrl: process.env.GATEWAY_URL, apiKey: process.env.GATEWAY_KEY });
const models = await client.listModels();
const refused = await client.getVideo('vid_none').catch((error) => error);
console.log(JSON.stringify({ models: models.data.map((model) => model.model), refused: refused instanceof GatewayError && refused.status, verify: typeof verifyGatewayWebhook }));
`,
    );
    const { stdout } = await run(process.execPath, ['app.mjs'], { cwd: app, env: { ...process.env, GATEWAY_URL: live.url, GATEWAY_KEY: TENANT_KEY } });
    const said = JSON.parse(stdout) as { models: string[]; refused: number; verify: string };
    expect(said).toMatchObject({ refused: 404, verify: 'function' });
    expect(said.models).toContain('kling-v3');
  });

  it('imports nothing but its own files and the dependencies its package.json names (no gateway code, no Node built-ins)', () => {
    const manifest = JSON.parse(readFileSync(join(CLIENT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const declared = Object.keys(manifest.dependencies);
    const outside: string[] = [];
    for (const file of readdirSync(join(CLIENT, 'src')).filter((name) => name.endsWith('.ts'))) {
      for (const specifier of importsOf(readFileSync(join(CLIENT, 'src', file), 'utf8'))) {
        const own = /^\.\/[^/]+\.js$/.test(specifier);
        const dependency = declared.some((name) => specifier === name || specifier.startsWith(`${name}/`));
        if (!own && !dependency) outside.push(`${file}: ${specifier}`);
      }
    }
    expect(outside).toEqual([]);
    // The check reads the imports it is meant to read.
    expect(importsOf(readFileSync(join(CLIENT, 'src/gateway-client.ts'), 'utf8'))).toContain('openapi-fetch');
  });
});
