/**
 * `npm start`'s prestart (`scripts/build-server.mjs --if-stale`) as replicas started together
 * from one checkout meet it: it keeps a build no source is newer than, rebuilds one that is stale,
 * and never leaves `dist/src` missing or half written while another process builds. Runs on a
 * scratch copy of what the build reads, so the checkout's own `dist/` is left alone.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));

describe('build-server --if-stale', { timeout: 120_000 }, () => {
  let root: string;
  const build = (...args: string[]) => run(process.execPath, [join(root, 'scripts/build-server.mjs'), ...args], { cwd: root });
  const stampTime = () => statSync(join(root, 'dist/src/.built')).mtimeMs;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'kg-build-'));
    for (const part of ['src', 'packages/client/src', 'openapi/gateway.json', 'bin/build-freshness.js', 'scripts/build-server.mjs']) {
      mkdirSync(join(root, part, '..'), { recursive: true });
      cpSync(join(REPO, part), join(root, part), { recursive: true });
    }
    symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('builds when there is no build, keeps a fresh one, and rebuilds after a source changes', async () => {
    await build('--if-stale');
    expect(existsSync(join(root, 'dist/src/main.js'))).toBe(true);
    expect(existsSync(join(root, 'dist/openapi/gateway.json'))).toBe(true);
    const first = stampTime();

    const kept = await build('--if-stale');
    expect(kept.stdout).not.toContain('compiled');
    expect(stampTime()).toBe(first);

    const later = new Date(first + 5_000);
    utimesSync(join(root, 'src/main.ts'), later, later);
    const rebuilt = await build('--if-stale');
    expect(rebuilt.stdout).toContain('gateway compiled');
    expect(stampTime()).toBeGreaterThan(first);
    expect(readFileSync(join(root, 'dist/src/.built'), 'utf8')).toMatch(/^\d{4}-/);
    // No scratch folder or lock is left behind.
    expect(readdirSync(join(root, 'dist')).sort()).toEqual(['openapi', 'packages', 'src']);
  });

  it('three builds at once never leave a starting gateway without its compiled files', async () => {
    await build();
    let missing = 0;
    let reads = 0;
    let building = true;
    const reader = (async () => {
      while (building) {
        reads++;
        if (!existsSync(join(root, 'dist/src/main.js')) || !existsSync(join(root, 'dist/src/gateway.js'))) missing++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await Promise.all([build(), build(), build()]);
    building = false;
    await reader;
    expect(reads).toBeGreaterThan(10);
    expect(missing).toBe(0);
    expect(readdirSync(join(root, 'dist')).sort()).toEqual(['openapi', 'packages', 'src']);
  });
});
