/**
 * Compiles the gateway's sources (`src/`, and the API client the CLI imports) into `dist/` as
 * plain JavaScript, file by file,
 * so that `npm start`, the `kling-gateway` command, the Docker image and the benchmark run
 * compiled code instead of compiling TypeScript at run time (tsx costs about 40 MB and a second
 * at every start). esbuild only strips types (about a second for the whole tree); type checking
 * is `npm run typecheck`'s job. Runs on `npm install` / `npm ci` (prepare), before `npm start`
 * (prestart) and in `npm run build`. Plain JavaScript so that it needs no TypeScript loader.
 *
 * A checkout without sources (the Docker image's runtime stage) has nothing to compile: the
 * script says so and leaves the existing build alone.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import { buildIsFresh, consoleIsFresh, hasConsoleSources } from '../bin/build-freshness.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const sources = join(root, 'src');
/** The typed API client the CLI imports (`packages/client/src`), compiled beside it. */
const clientSources = join(root, 'packages/client/src');
const outdir = join(root, 'dist');
/** Held while a build runs, so that replicas started together from one checkout build once. */
const lock = join(outdir, '.building');
/** The process holding the lock, written in it: a lock whose holder is gone was left by a killed build. */
const lockHolder = join(lock, 'pid');
/** A lock older than this was left by a build that was killed (when its holder cannot be told). */
const STALE_LOCK_MS = 120_000;

/** Every `.ts` file under `directory`. */
function typescriptFiles(directory) {
  return readdirSync(directory, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts'))
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

/**
 * Compiles into a scratch folder beside `dist/src`, then swaps it in with two renames, so that a
 * gateway starting from the same checkout meanwhile never finds the build half written or gone.
 */
export async function buildServer() {
  const { build } = await import('esbuild');
  const scratch = join(outdir, `.next-${process.pid}`);
  rmSync(scratch, { recursive: true, force: true });
  await build({
    entryPoints: [...typescriptFiles(sources), ...typescriptFiles(clientSources)],
    outdir: scratch,
    outbase: root,
    bundle: false,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    sourcemap: true,
    logLevel: 'warning',
  });
  // The client package's own JavaScript (`packages/client/dist`, what its package.json exports
  // at run time): an app that installs the package by its path imports it from there, inside the
  // package folder, with no TypeScript loader. Types stay its sources (the `types` condition).
  await build({
    entryPoints: typescriptFiles(clientSources),
    outdir: join(scratch, 'client-dist'),
    outbase: clientSources,
    bundle: false,
    format: 'esm',
    platform: 'neutral',
    target: 'node20.19',
    sourcemap: true,
    logLevel: 'warning',
  });
  // Files the code reads beside itself at run time: the simulators' assets, and the JSON
  // documents imported with `with { type: 'json' }` (the import keeps its relative path).
  cpSync(join(sources, 'sandbox/assets'), join(scratch, 'src/sandbox/assets'), { recursive: true });
  mkdirSync(join(scratch, 'openapi'), { recursive: true });
  cpSync(join(root, 'openapi/gateway.json'), join(scratch, 'openapi/gateway.json'));
  // Written last: `bin/kling-gateway.js` and `--if-stale` trust a build only when no source is newer.
  writeFileSync(join(scratch, 'src/.built'), `${new Date().toISOString()}\n`);
  for (const part of ['src', 'packages', 'openapi']) {
    const old = join(outdir, `.old-${process.pid}-${part}`);
    if (existsSync(join(outdir, part))) renameSync(join(outdir, part), old);
    renameSync(join(scratch, part), join(outdir, part));
    rmSync(old, { recursive: true, force: true });
  }
  const clientDist = join(root, 'packages/client/dist');
  const oldClientDist = join(root, `packages/client/.old-dist-${process.pid}`);
  if (existsSync(clientDist)) renameSync(clientDist, oldClientDist);
  renameSync(join(scratch, 'client-dist'), clientDist);
  rmSync(oldClientDist, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
}

/** Whether process `pid` is running (a process of another user counts). */
function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** The process the lock names; undefined while it names none yet (or the lock is gone). */
function holderOfLock() {
  try {
    const pid = Number(readFileSync(lockHolder, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the lock was left by a build that cannot finish: its holder (a build stopped with
 * Ctrl-C or kill -9 never removes it) is no longer running, or it is older than any build takes.
 */
function lockIsStale() {
  const holder = holderOfLock();
  if (holder !== undefined && !isRunning(holder)) return true;
  const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
  return age > STALE_LOCK_MS;
}

/** Runs `work` holding the build lock; waits for a build another process is running. */
async function whileLocked(work) {
  mkdirSync(outdir, { recursive: true });
  // The lock appears with its holder already written in it (made aside, then renamed into
  // place): a build killed between making the lock and naming itself would leave a lock that
  // names nobody, which every start would wait out as a live build for minutes.
  const claim = join(outdir, `.claim-${process.pid}`);
  for (const name of readdirSync(outdir)) {
    const pid = /^\.claim-(\d+)$/.exec(name)?.[1];
    if (pid && !isRunning(Number(pid))) rmSync(join(outdir, name), { recursive: true, force: true });
  }
  mkdirSync(claim, { recursive: true });
  writeFileSync(join(claim, 'pid'), `${process.pid}\n`);
  for (;;) {
    try {
      renameSync(claim, lock);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST' && error.code !== 'ENOTEMPTY') throw error;
      if (lockIsStale()) rmSync(lock, { recursive: true, force: true });
      else await sleep(100);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // `--if-stale` (npm start's prestart): keep a build no source is newer than.
  const ifStale = process.argv.includes('--if-stale');
  if (!existsSync(sources)) {
    console.log('no sources to compile; running the existing build');
  } else {
    await whileLocked(async () => {
      if (!ifStale || !buildIsFresh()) {
        const started = Date.now();
        await buildServer();
        console.log(`gateway compiled into ${relative(process.cwd(), join(outdir, 'src')) || 'dist/src'} in ${Date.now() - started} ms`);
      }
      // `npm start` after a pull or an edit of `console/src` serves the console it has now, not the
      // bundle `npm install` made (its TypeScript build script, run the way `npm run build:console` runs it).
      if (ifStale && hasConsoleSources() && !consoleIsFresh()) {
        execFileSync(process.execPath, ['--import', 'tsx', join(root, 'scripts/build-console.ts')], { cwd: root, stdio: 'inherit' });
      }
    });
  }
}
