/**
 * Several gateway replicas on one PostgreSQL, each in its own process on its own port, the
 * providers' simulators in another process that outlives them, and a round-robin balancer in
 * front: what `npm run cluster` starts for development and what the multi-replica tests drive
 * (kill a replica with SIGKILL, start it again, read the upstream traffic).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { startBalancer, type Balancer } from './balancer.js';
import { readyLine } from './ready-line.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Starting a replica may include compiling TypeScript with tsx, and migrating the schema. */
const START_TIMEOUT_MS = 90_000;

export interface ClusterOptions {
  /** Number of gateway replicas. */
  replicas: number;
  /** `postgres://…` (a `?schema=` in it puts the tables in their own schema). */
  databaseUrl: string;
  /** First replica's port (0: any free ports). */
  basePort?: number;
  /** Balancer port (0: any). */
  balancerPort?: number;
  /** Changes to config.yaml, merged into it (e.g. rate limits, circuit settings). */
  config?: Record<string, unknown>;
  /** Extra environment for every process. */
  env?: Record<string, string>;
  /** Where process logs go (default: a fresh temporary folder). */
  logDirectory?: string;
  /**
   * Run the compiled build (`dist/src`, as `npm start` and the Docker image do) instead of the
   * sources through tsx: a restarted replica is back in well under a second instead of about three.
   */
  compiled?: boolean;
}

/** How to start one of the project's entry points (`main`, `simulators`) in a process of its own. */
function nodeArguments(entry: 'main' | 'simulators', compiled: boolean): string[] {
  return compiled ? [join(ROOT, `dist/src/${entry}.js`)] : ['--import', 'tsx', join(ROOT, `src/${entry}.ts`)];
}

export interface UpstreamRequest {
  method: string;
  path: string;
  at: number;
}

function merge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = result[key];
    result[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object' && !Array.isArray(current)
        ? merge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return result;
}

/** One gateway replica process. */
export class Replica {
  private child: ChildProcess | undefined;
  /** Times this replica was started. */
  starts = 0;

  constructor(
    readonly index: number,
    public port: number,
    private readonly env: Record<string, string>,
    private readonly logFile: string,
    /** No port configured: each start listens on one the system picks (see `start`). */
    private readonly anyPort = false,
    private readonly compiled = false,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Starts the process and waits until it answers `/readyz`. A replica whose port is not
   * configured listens on one the system picks (`PORT=0`) and says which in its ready line: a
   * port picked free beforehand could be taken by another process before the replica listened.
   */
  async start(): Promise<void> {
    if (this.anyPort && !['info', 'debug', 'trace'].includes(this.env.LOG_LEVEL ?? 'info')) {
      throw new Error(`replica ${this.index}: on a picked port it says where it listens at info, but LOG_LEVEL is ${this.env.LOG_LEVEL}`);
    }
    this.starts += 1;
    const log = createWriteStream(this.logFile, { flags: 'a' });
    const child = spawn(process.execPath, nodeArguments('main', this.compiled), {
      cwd: ROOT,
      env: { ...process.env, ...this.env, PORT: this.anyPort ? '0' : String(this.port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    this.child = child;
    if (this.anyPort) this.port = Number(new URL((await readyLine(child, START_TIMEOUT_MS)).url).port);
    await waitUntilReady(`${this.url}/readyz`, child, `replica ${this.index}`);
    if (this.anyPort) return;
    // Another process may have answered on a port this one could not take: it would exit.
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (!this.running) throw new Error(`replica ${this.index} exited right after starting (see its log)`);
  }

  /** Ends the process at once, as a crash would (SIGKILL), or gracefully (SIGTERM). */
  async stop(signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }
}

async function waitUntilReady(url: string, child: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${name} exited while starting (see its log)`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  throw new Error(`${name} did not become ready within ${START_TIMEOUT_MS / 1000} s`);
}

export class Cluster {
  private constructor(
    readonly replicas: Replica[],
    readonly balancer: Balancer,
    /** The simulator host's control API. */
    readonly simulatorsUrl: string,
    private readonly simulatorsProcess: ChildProcess,
    readonly logDirectory: string,
  ) {}

  /** Starts the simulators, then every replica (in parallel), then the balancer. */
  static async start(options: ClusterOptions): Promise<Cluster> {
    const logDirectory = options.logDirectory ?? mkdtempSync(join(tmpdir(), 'kling-cluster-'));
    const basePort = options.basePort ?? 0;
    // Port 0: each replica listens on a port the system picks, and says which once it serves.
    const ports = Array.from({ length: options.replicas }, (_, i) => (basePort === 0 ? 0 : basePort + i));
    const configFile = join(logDirectory, 'config.yaml');
    const document = (parseYaml(readFileSync(join(ROOT, 'config.yaml'), 'utf8')) ?? {}) as Record<string, unknown>;
    // Stored results go beside the logs: one directory every replica of this cluster shares.
    const storage = { storage: { filesystem: { path: join(logDirectory, 'outputs') } } };
    writeFileSync(configFile, stringifyYaml(merge(merge(document, storage), options.config ?? {})));
    // At `info` at least: a replica on a picked port says where it listens in an `info` line.
    const env = { CONFIG_FILE: configFile, LOG_LEVEL: process.env.CLUSTER_LOG_LEVEL ?? 'info', ...options.env };

    const compiled = options.compiled ?? false;
    const simulators = await startSimulatorsProcess(env, join(logDirectory, 'simulators.log'), compiled);
    let balancer: Balancer | undefined;
    const replicas: Replica[] = [];
    try {
      // The balancer first: it is the public URL upstream callbacks come back to.
      balancer = await startBalancer(() => replicas.map((replica) => replica.url), options.balancerPort ?? 0);
      const replicaEnv = {
        ...env,
        DATABASE_URL: options.databaseUrl,
        PUBLIC_URL: balancer.url,
        SIMULATORS_URL: simulators.url,
      };
      ports.forEach((port, index) => replicas.push(new Replica(index, port, replicaEnv, join(logDirectory, `replica-${index}.log`), basePort === 0, compiled)));
      // The first replica migrates the schema; the others start once it has.
      await replicas[0]?.start();
      await Promise.all(replicas.slice(1).map((replica) => replica.start()));
      return new Cluster(replicas, balancer, simulators.url, simulators.child, logDirectory);
    } catch (error) {
      await Promise.all(replicas.map((replica) => replica.stop()));
      await balancer?.close();
      simulators.child.kill('SIGKILL');
      throw error;
    }
  }

  /** Upstream requests a simulator received since `since` (epoch ms). */
  async upstreamRequests(provider: string, since = 0): Promise<UpstreamRequest[]> {
    const response = await fetch(`${this.simulatorsUrl}/simulators/${provider}/requests?since=${since}`);
    return (await response.json()) as UpstreamRequest[];
  }

  /** Tasks a simulator created (id, path, the body it received). */
  async upstreamTasks(provider: string): Promise<{ id: string; path: string; body: Record<string, unknown>; created_at: number }[]> {
    const response = await fetch(`${this.simulatorsUrl}/simulators/${provider}/tasks`);
    return (await response.json()) as { id: string; path: string; body: Record<string, unknown>; created_at: number }[];
  }

  /** Webhooks or callbacks a simulator sent (each try) and the answers they got. */
  async upstreamCallbacks(provider: string): Promise<{ url: string; task_id: string; attempt: number; sent_at: number; status: number | null; detail: string | null }[]> {
    const response = await fetch(`${this.simulatorsUrl}/simulators/${provider}/callbacks`);
    return (await response.json()) as { url: string; task_id: string; attempt: number; sent_at: number; status: number | null; detail: string | null }[];
  }

  /** Makes a simulator answer its next calls with a fault. */
  async injectFault(provider: string, fault: Record<string, unknown>): Promise<void> {
    const response = await fetch(`${this.simulatorsUrl}/simulators/${provider}/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(fault),
    });
    if (!response.ok) throw new Error(`could not inject a fault: ${response.status} ${await response.text()}`);
  }

  async clearFaults(provider: string): Promise<void> {
    await fetch(`${this.simulatorsUrl}/simulators/${provider}/faults`, { method: 'DELETE' });
  }

  /** Stops every replica, the balancer and the simulators. */
  async stop(): Promise<void> {
    await Promise.all(this.replicas.map((replica) => replica.stop('SIGKILL')));
    await this.balancer.close();
    const exited = new Promise<void>((resolve) => this.simulatorsProcess.once('exit', () => resolve()));
    this.simulatorsProcess.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    this.simulatorsProcess.kill('SIGKILL');
  }
}

async function startSimulatorsProcess(env: Record<string, string>, logFile: string, compiled: boolean): Promise<{ url: string; child: ChildProcess }> {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, nodeArguments('simulators', compiled), {
    cwd: ROOT,
    env: { ...process.env, ...env, SIMULATORS_PORT: env.SIMULATORS_PORT ?? '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.pipe(log);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the simulators did not start')), START_TIMEOUT_MS);
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      buffered += chunk.toString();
      const line = buffered.split('\n').find((candidate) => candidate.startsWith('{'));
      if (!line) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`the simulators exited during start (code ${code})`)));
  });
  return { url, child };
}

/** Ports nobody listens on right now. */
export async function freePorts(count: number): Promise<number[]> {
  const { createServer } = await import('node:net');
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<import('node:net').Server>((resolve) => {
          const server = createServer();
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
