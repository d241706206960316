/**
 * `npm start`'s prestart (`scripts/build-server.mjs --if-stale`) as replicas started together
 * from one checkout meet it: it keeps a build no source is newer than, rebuilds one that is stale,
 * and builds once when several start together, each finding the whole build when its prestart returns. Runs on a
 * scratch copy of what the build reads, so the checkout's own `dist/` is left alone.
 */
import { execFile, spawn } from 'node:child_process';
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
  /** Dates the build a minute back and `source` half a minute back: edited since it was built. */
  const editedAfterTheBuild = (source: string) => {
    const now = Date.now();
    utimesSync(join(root, 'dist/src/.built'), new Date(now - 60_000), new Date(now - 60_000));
    utimesSync(join(root, source), new Date(now - 30_000), new Date(now - 30_000));
  };

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

    editedAfterTheBuild('src/main.ts');
    const rebuilt = await build('--if-stale');
    expect(rebuilt.stdout).toContain('gateway compiled');
    expect(stampTime()).toBeGreaterThan(Date.now() - 10_000);
    expect(readFileSync(join(root, 'dist/src/.built'), 'utf8')).toMatch(/^\d{4}-/);
    // No scratch folder or lock is left behind.
    expect(readdirSync(join(root, 'dist')).sort()).toEqual(['openapi', 'packages', 'src']);
  });

  it('a start right after a build was killed (Ctrl-C, kill -9) does not wait for the lock it left', async () => {
    await build();
    editedAfterTheBuild('src/main.ts');
    const killed = spawn(process.execPath, [join(root, 'scripts/build-server.mjs')], { cwd: root, stdio: 'ignore' });
    while (!existsSync(join(root, 'dist/.building'))) await new Promise((resolve) => setTimeout(resolve, 10));
    killed.kill('SIGKILL');
    await new Promise((resolve) => killed.once('exit', resolve));
    // A build takes a second or two; the lock's own expiry is minutes.
    const next = await run(process.execPath, [join(root, 'scripts/build-server.mjs'), '--if-stale'], { cwd: root, timeout: 20_000 });
    expect(next.stdout).toContain('gateway compiled');
    expect(readdirSync(join(root, 'dist')).filter((name) => name === '.building')).toEqual([]);
  });

  it('a build killed between making its lock and naming itself in it leaves nothing a start waits for', async () => {
    await build();
    editedAfterTheBuild('src/main.ts');
    // What a build killed at that instant left: a lock naming no one, and its claim of it.
    mkdirSync(join(root, 'dist/.building'));
    const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await new Promise((resolve) => dead.once('exit', resolve));
    mkdirSync(join(root, `dist/.claim-${dead.pid}`));
    const next = await run(process.execPath, [join(root, 'scripts/build-server.mjs'), '--if-stale'], { cwd: root, timeout: 20_000 });
    expect(next.stdout).toContain('gateway compiled');
    expect(readdirSync(join(root, 'dist')).sort()).toEqual(['openapi', 'packages', 'src']);
  });

  it('replicas started together after an edit build once, and each finds the whole build when its prestart returns', async () => {
    await build();
    editedAfterTheBuild('src/gateway.ts');
    // Each replica's `npm start`: its prestart, then the gateway starts on what is in dist/ then.
    const complete = () => ['src/main.js', 'src/gateway.js', 'src/.built', 'openapi/gateway.json'].every((file) => existsSync(join(root, 'dist', file)));
    const starts = await Promise.all([0, 1, 2].map(async () => ({ output: (await build('--if-stale')).stdout, complete: complete() })));
    expect(starts.map((start) => start.complete)).toEqual([true, true, true]);
    expect(starts.filter((start) => start.output.includes('gateway compiled'))).toHaveLength(1);
    expect(stampTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(readdirSync(join(root, 'dist')).sort()).toEqual(['openapi', 'packages', 'src']);
  });
});

// `npm start` after a pull (or an edit of `console/src`) compiled the gateway again, but served the
// console bundle `npm install` had made: the new console appeared only after `npm run build`.
describe('build-server --if-stale and the web console', { timeout: 120_000 }, () => {
  let root: string;
  const build = () => run(process.execPath, [join(root, 'scripts/build-server.mjs'), '--if-stale'], { cwd: root });
  const consoleStamp = () => statSync(join(root, 'console/dist/.built')).mtimeMs;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'kg-build-console-'));
    for (const part of ['src', 'packages/client/src', 'openapi/gateway.json', 'bin/build-freshness.js', 'scripts/build-server.mjs', 'scripts/build-console.ts', 'console/src', 'console/index.html', 'console/favicon.svg', 'console/tsconfig.json', 'package.json']) {
      mkdirSync(join(root, part, '..'), { recursive: true });
      cpSync(join(REPO, part), join(root, part), { recursive: true });
    }
    symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('builds the console when it has no build, keeps a fresh one, and rebuilds it after a console source changes', async () => {
    const first = await build();
    expect(first.stdout).toContain('console built');
    expect(existsSync(join(root, 'console/dist/app.js'))).toBe(true);
    const built = consoleStamp();

    const kept = await build();
    expect(kept.stdout).not.toContain('console built');
    expect(consoleStamp()).toBe(built);

    const now = Date.now();
    utimesSync(join(root, 'console/dist/.built'), new Date(now - 60_000), new Date(now - 60_000));
    utimesSync(join(root, 'console/src/main.tsx'), new Date(now - 30_000), new Date(now - 30_000));
    const rebuilt = await build();
    expect(rebuilt.stdout).toContain('console built');
    // Only the console was stale: the gateway's build is kept.
    expect(rebuilt.stdout).not.toContain('gateway compiled');
    expect(consoleStamp()).toBeGreaterThan(now - 10_000);
  });
});
