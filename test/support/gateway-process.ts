/**
 * The gateway as a process of its own (`src/main.ts` through tsx, as `npm run dev` runs it), on a
 * port it picks when it listens (`PORT=0`): a port picked free beforehand could be taken by
 * another test file before the gateway listens on it. Its URL is read from the line it logs once
 * it serves (`cluster/ready-line.ts`; so `LOG_LEVEL` must be `info` or lower).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readyLine, type ReadyLine } from '../../cluster/ready-line.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface GatewayProcess {
  child: ChildProcess;
  url: string;
  port: number;
  ready: ReadyLine;
}

export interface GatewayProcessOptions {
  /**
   * Run the compiled build (`node dist/src/main.js`, as `npm start` does) instead of the sources
   * through tsx; the caller makes sure the build is fresh (`compiledBuild`).
   */
  compiled?: boolean;
  /**
   * Listen on this port instead of one the system picks: a restart on the port the process it
   * replaces listened on, as `npm start` on its configured port is.
   */
  port?: number;
}

/**
 * Starts the gateway with `env` and resolves once it serves. Every line of its standard output
 * goes to `onLine`; it rejects when the gateway ends first, or says nothing of serving within
 * `timeoutMs`.
 */
export async function startGatewayProcess(
  env: Record<string, string>,
  onLine: (line: string) => void = () => undefined,
  timeoutMs = 60_000,
  options: GatewayProcessOptions = {},
): Promise<GatewayProcess> {
  const entry = options.compiled ? [join(REPO, 'dist/src/main.js')] : ['--import', 'tsx', join(REPO, 'src/main.ts')];
  const child = spawn(process.execPath, entry, {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(options.port ?? 0) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await readyLine(child, timeoutMs, onLine);
  return { child, url: ready.url, port: Number(new URL(ready.url).port), ready };
}

/** An `onLine` that keeps each JSON log line of a gateway's output in `lines`, and skips what is not one. */
export function intoLogLines<Line>(lines: Line[]): (line: string) => void {
  return (line) => {
    try {
      lines.push(JSON.parse(line) as Line);
    } catch {
      // not a log line
    }
  };
}

/** Compiles the sources into `dist/` unless the build there is already as new as they are (`npm start`'s prestart). */
export function compiledBuild(): void {
  execFileSync(process.execPath, [join(REPO, 'scripts/build-server.mjs'), '--if-stale'], { cwd: REPO, stdio: 'ignore' });
}

/**
 * Runs the gateway with `env` (after the modules in `preloads`, which `node --import`s first) until
 * it exits by itself, or is stopped after `timeoutMs`: its exit code and what it wrote to
 * standard error (a refused start). The default is generous: a refused start (tsx compiling the
 * sources first) takes 3-5 s in a passing CI run, and many times that on a loaded machine, where a
 * stop at 20 s turned its refusal into a signal.
 */
export function gatewayExit(env: Record<string, string>, preloads: string[] = [], timeoutMs = 45_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...preloads.flatMap((preload) => ['--import', preload]), join(REPO, 'src/main.ts')], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.resume();
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** The worker processes a `WORKERS` primary runs (node; tsx also runs an esbuild service under it). */
export function workerPidsOf(primary: ChildProcess): number[] {
  const out = execFileSync('ps', ['--ppid', String(primary.pid), '-o', 'pid=,comm='], { encoding: 'utf8' });
  return out.split('\n').flatMap((line) => {
    const [pid, command] = line.trim().split(/\s+/);
    return command === 'node' ? [Number(pid)] : [];
  });
}

/** Whether a process with this id still runs. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
