/**
 * The system under test as it runs in production, each part a process of its own (the default,
 * `BENCH_MODE=processes`): the compiled gateway (`node dist/src/main.js`, bounded heap, exactly
 * what `npm start` runs) pointed at the simulators in their own process
 * (`node dist/src/simulators.js`, as `npm run simulators`), and the read baseline, a bare
 * express + zod + better-sqlite3 server (`bare-server.mjs`). The load generator (this process)
 * reads each one's CPU time and RSS from `/proc`, so every figure is that process's alone.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../cluster/cluster.js';
import { SIM_FILES_PATH } from '../src/sandbox/simulator-kit.js';
import { BENCH_TENANT_KEY, benchConfigDocument, benchDatabaseDirectory } from './bench-config.js';
import { parsePrometheusText } from './bench-client.js';
import type { BenchSettings } from './bench-settings.js';
import type { BenchStack, EventLoopDelay, StackMemory, UpstreamCreateSample, UpstreamTraffic } from './bench-stack.js';
import type { BareCreateBaseline, BareUpstreamCreate } from './create-latency.js';
import { BASELINE_PROVIDER } from './bench-requests.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const START_TIMEOUT_MS = 60_000;
/** The heap bound `npm start` gives the gateway (`GATEWAY_MAX_HEAP_MB`). */
const GATEWAY_HEAP_MB = Number(process.env.GATEWAY_MAX_HEAP_MB ?? 160);
/** Linux clock ticks per second for `/proc/<pid>/stat` (the kernel's USER_HZ, 100 everywhere). */
const CLOCK_TICKS = 100;

/** CPU time (user + system) of a process, in milliseconds, from `/proc`. */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at state (field 3).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/**
 * A process and every process under it (the workers of `WORKERS`), from `/proc`: the gateway's
 * figures are those of all its processes together.
 */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(parent, [...(parents.get(parent) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const tree = [pid];
  for (let index = 0; index < tree.length; index++) tree.push(...(parents.get(tree[index]!) ?? []));
  return tree;
}

/** CPU time of a process and the processes under it, in milliseconds. */
export function treeCpuMs(pid: number): number {
  return processTree(pid).reduce((sum, each) => sum + ifAlive(() => cpuMsOf(each)), 0);
}

/** Resident set size of a process and the processes under it, in bytes. */
export function treeRss(pid: number): number {
  return processTree(pid).reduce((sum, each) => sum + ifAlive(() => rssOf(each)), 0);
}

/** A figure of a process that may have ended since it was listed (then 0). */
function ifAlive(read: () => number): number {
  try {
    return read();
  } catch {
    return 0;
  }
}

/** Resident set size of a process, in bytes, from `/proc`. */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kilobytes = /VmRSS:\s+(\d+)/.exec(status)?.[1];
  return Number(kilobytes ?? 0) * 1024;
}

/** Starts a process and resolves with the first JSON line it prints on stdout. */
function startWithJsonLine<T>(command: string, args: string[], env: NodeJS.ProcessEnv, name: string): Promise<{ child: ChildProcess; line: T }> {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`${name} did not start within ${START_TIMEOUT_MS / 1000} s`));
    }, START_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`${name} exited during start (code ${code})`)));
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (text) => {
      if (!text.startsWith('{')) return;
      clearTimeout(timer);
      lines.removeAllListeners('line');
      // Keep draining stdout so a chatty child never blocks on a full pipe.
      child.stdout!.resume();
      resolve({ child, line: JSON.parse(text) as T });
    });
  });
}

async function waitForHealth(url: string, child: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited during start (code ${child.exitCode})`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${name} did not answer /healthz within ${START_TIMEOUT_MS / 1000} s`);
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Compiles the gateway (`npm run build:server`): the benchmark always measures the current sources. */
export function buildGateway(): void {
  const build = spawnSync(process.execPath, [join(ROOT, 'scripts/build-server.mjs')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (build.status !== 0) throw new Error('compiling the gateway failed');
}

interface HostedEndpoint {
  base_url: string;
  api_key: string;
  webhook_secret: string;
}

/** A simulator host process (`dist/src/simulators.js`) with the given job timing. */
export class SimulatorProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly endpoints: Record<string, HostedEndpoint>,
  ) {}

  static async start(settings: BenchSettings, directory: string, name = 'simulators'): Promise<SimulatorProcess> {
    const configFile = join(directory, `${name}.config.json`);
    writeFileSync(configFile, JSON.stringify(benchConfigDocument(settings, directory)));
    const { child, line } = await startWithJsonLine<{ url: string }>(
      process.execPath,
      ['dist/src/simulators.js'],
      { CONFIG_FILE: configFile, SIMULATORS_PORT: '0', SIMULATORS_HOST: '127.0.0.1' },
      'the simulator process',
    );
    const endpoints = (await (await fetch(`${line.url}/endpoints`)).json()) as Record<string, HostedEndpoint>;
    return new SimulatorProcess(child, line.url, endpoints);
  }

  async requestsSince(providerId: string, since: number): Promise<{ method: string; path: string; at: number }[]> {
    return (await (await fetch(`${this.url}/simulators/${providerId}/requests?since=${since}`)).json()) as { method: string; path: string; at: number }[];
  }

  async lastCreate(providerId: string): Promise<UpstreamCreateSample | undefined> {
    const tasks = (await (await fetch(`${this.url}/simulators/${providerId}/tasks`)).json()) as { path: string; body: unknown }[];
    const last = tasks[tasks.length - 1];
    return last ? { path: last.path, body: last.body } : undefined;
  }

  close(): Promise<void> {
    return stop(this.child);
  }
}

/** The compiled gateway in a process of its own, on `directory`'s SQLite file. */
export class GatewayProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {}

  get pid(): number {
    return this.child.pid ?? 0;
  }

  static async start(settings: BenchSettings, directory: string, simulatorsUrl: string, realPolling = false): Promise<GatewayProcess> {
    const port = (await freePorts(1))[0]!;
    const configFile = join(directory, 'gateway.config.json');
    writeFileSync(configFile, JSON.stringify(benchConfigDocument(settings, directory, { port, simulatorsUrl, realPolling })));
    // `BENCH_GATEWAY_PROFILE_DIR`: a V8 CPU profile of the gateway process, written when it stops.
    const profile = process.env.BENCH_GATEWAY_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_GATEWAY_PROFILE_DIR] : [];
    // `BENCH_GATEWAY_NODE_ARGS`: more node flags for the gateway process (to compare V8 settings).
    const extra = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const child = spawn(process.execPath, [...profile, `--max-old-space-size=${GATEWAY_HEAP_MB}`, ...extra, 'dist/src/main.js'], {
      cwd: ROOT,
      env: { ...process.env, CONFIG_FILE: configFile, NODE_ENV: 'production' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const url = `http://127.0.0.1:${port}`;
    await waitForHealth(url, child, 'the gateway process');
    return new GatewayProcess(child, url);
  }

  close(): Promise<void> {
    return stop(this.child);
  }
}

/** The read baseline server (`bare-server.mjs`) over `rows` copies of `template`. */
export class BareServerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly ids: string[],
  ) {}

  get pid(): number {
    return this.child.pid ?? 0;
  }

  static async start(directory: string, template: unknown, rows: number): Promise<BareServerProcess> {
    const templateFile = join(directory, 'bare-template.json');
    writeFileSync(templateFile, JSON.stringify(template));
    const { child, line } = await startWithJsonLine<{ url: string; ids: string[] }>(
      process.execPath,
      [...(process.env.BENCH_BARE_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_BARE_PROFILE_DIR] : []), join(ROOT, 'bench/bare-server.mjs')],
      { BARE_DATABASE: join(directory, 'bare.db'), BARE_TEMPLATE: templateFile, BARE_ROWS: String(rows), BARE_KEY: BENCH_TENANT_KEY },
      'the bare baseline server',
    );
    return new BareServerProcess(child, line.url, line.ids);
  }

  close(): Promise<void> {
    return stop(this.child);
  }
}

/** The create baseline server (`bare-create-server.mjs`), making `upstream`'s create for each of its own. */
export class BareCreateServerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {}

  get pid(): number {
    return this.child.pid ?? 0;
  }

  static async start(directory: string, upstream: BareUpstreamCreate, webhookSecret: string): Promise<BareCreateServerProcess> {
    const { child, line } = await startWithJsonLine<{ url: string }>(
      process.execPath,
      [...(process.env.BENCH_BARE_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_BARE_PROFILE_DIR] : []), join(ROOT, 'bench/bare-create-server.mjs')],
      {
        BARE_DATABASE: join(directory, 'bare-create.db'),
        BARE_KEY: BENCH_TENANT_KEY,
        BARE_UPSTREAM: JSON.stringify(upstream),
        BARE_WEBHOOK_SECRET: webhookSecret,
      },
      'the bare create server',
    );
    return new BareCreateServerProcess(child, line.url);
  }

  close(): Promise<void> {
    return stop(this.child);
  }
}

/** Which simulator requests are creates and status reads (see `bench-stack.ts`). */
function callKind(method: string, path: string): keyof UpstreamTraffic {
  if (path.startsWith(`${SIM_FILES_PATH}/`)) return 'other';
  if (method === 'POST') return 'submit';
  if (method === 'GET') return 'status';
  return 'other';
}

/**
 * The gateway's event-loop delay since the previous call, from its own `/metrics` (prom-client's
 * `monitorEventLoopDelay` figures, 10 ms resolution, reset by each scrape), and the garbage
 * collection time since the previous call (the sum of `nodejs_gc_duration_seconds`; the longest
 * pause is not in the exposition). Call it once before a window and once after.
 */
function loopFiguresOf(metricsUrl: string): () => Promise<EventLoopDelay> {
  let gcSecondsBefore: number | undefined;
  return async () => {
    const answer = await fetch(metricsUrl);
    if (!answer.ok) throw new Error(`${metricsUrl} answered ${answer.status}`);
    const samples = parsePrometheusText(await answer.text());
    const seconds = (name: string) => samples.find((sample) => sample.name === `kling_gateway_nodejs_eventloop_lag_${name}_seconds`)?.value ?? Number.NaN;
    const gcSeconds = samples.filter((sample) => sample.name === 'kling_gateway_nodejs_gc_duration_seconds_sum').reduce((sum, sample) => sum + sample.value, 0);
    const gcTotal = gcSecondsBefore === undefined ? Number.NaN : (gcSeconds - gcSecondsBefore) * 1000;
    gcSecondsBefore = gcSeconds;
    return { p50: seconds('p50') * 1000, p99: seconds('p99') * 1000, max: seconds('max') * 1000, gcMaxPause: Number.NaN, gcTotal };
  };
}

/** The bare create server against `processes`' Freepik simulator, for `measureCreateLatency`. */
export function bareCreateBaseline(processes: ProcessStack): BareCreateBaseline {
  const endpoint = processes.simulators.endpoints[BASELINE_PROVIDER];
  if (!endpoint) throw new Error(`the simulator process runs no ${BASELINE_PROVIDER} simulator`);
  return {
    webhookSecret: endpoint.webhook_secret,
    start: async (upstream, webhookSecret) => {
      const server = await BareCreateServerProcess.start(processes.directory, upstream, webhookSecret);
      return { url: server.url, cpuMs: () => cpuMsOf(server.pid), close: () => server.close() };
    },
  };
}

/** The stack of separate processes; `gateway` and `simulators` stay reachable for the memory phase. */
export interface ProcessStack extends BenchStack {
  readonly directory: string;
  readonly simulators: SimulatorProcess;
  readonly gateway: GatewayProcess;
}

export async function launchProcessStack(settings: BenchSettings): Promise<ProcessStack> {
  buildGateway();
  const directory = benchDatabaseDirectory();
  const simulators = await SimulatorProcess.start(settings, directory);
  let gateway: GatewayProcess;
  try {
    gateway = await GatewayProcess.start(settings, directory, simulators.url);
  } catch (error) {
    await simulators.close();
    throw error;
  }
  // Status reads are counted from the simulator host's request log, read incrementally.
  const traffic: Record<string, UpstreamTraffic> = {};
  let countedUntil = 0;
  const providerIds = Object.keys(simulators.endpoints);
  for (const id of providerIds) traffic[id] = { status: 0, submit: 0, other: 0 };

  return {
    directory,
    simulators,
    gateway,
    addresses: {
      gatewayUrl: gateway.url,
      gatewayKey: BENCH_TENANT_KEY,
      simulators: Object.fromEntries(Object.entries(simulators.endpoints).map(([id, e]) => [id, { baseUrl: e.base_url, apiKey: e.api_key }])),
      pid: gateway.pid,
    },
    async upstreamTraffic() {
      const until = Date.now();
      for (const id of providerIds) {
        for (const request of await simulators.requestsSince(id, countedUntil)) {
          if (request.at < until) traffic[id]![callKind(request.method, request.path)] += 1;
        }
      }
      countedUntil = until;
      return Object.fromEntries(Object.entries(traffic).map(([id, counts]) => [id, { ...counts }]));
    },
    lastUpstreamCreate: (providerId) => simulators.lastCreate(providerId),
    async memory(): Promise<StackMemory> {
      return { rss: treeRss(gateway.pid), heapUsed: Number.NaN };
    },
    eventLoopDelay: loopFiguresOf(`${gateway.url}/metrics`),
    async cpuMs() {
      return treeCpuMs(gateway.pid);
    },
    async close() {
      await gateway.close();
      await simulators.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
