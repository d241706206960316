/**
 * Starts the system under test for the load generator, in a child process (default) or in
 * this one (`BENCH_MODE=in-process`).
 *
 * Why a child by default: a real client never shares the gateway's event loop. In one process,
 * the load generator's own work (building requests, undici, parsing answers, its timers)
 * queues behind the gateway's and the gateway's behind it, so both the measured latency and
 * the open-loop schedule would bend under load. The child runs what `npm start` runs in
 * sandbox mode (gateway and simulators in one process), so the baseline (simulator alone) and
 * the gateway are measured in the same process, from the same outside client.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchConfig, benchDatabaseDirectory } from './bench-config.js';
import type { BenchSettings } from './bench-settings.js';
import { startBenchStack, type BenchStack, type StackAddresses, type UpstreamCreateSample } from './bench-stack.js';
import type { FromStack, StackCall, ToStack } from './stack-protocol.js';

const CHILD_ENTRY = fileURLToPath(new URL('./bench-stack-child.ts', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
/** Startup includes compiling TypeScript with tsx and migrating SQLite. */
const START_TIMEOUT_MS = 60_000;

export async function launchBenchStack(settings: BenchSettings): Promise<BenchStack> {
  if (settings.mode === 'in-process') {
    const directory = benchDatabaseDirectory();
    return startBenchStack(benchConfig(settings, directory), directory);
  }
  return launchChildStack(settings);
}

async function launchChildStack(settings: BenchSettings): Promise<BenchStack> {
  // `--import tsx` lets the child load TypeScript as this process does; nothing else is
  // inherited so that a debugger or profiler flag on the parent does not slow the child.
  const execArgv = ['--import', 'tsx'];
  if (settings.profile) execArgv.push('--cpu-prof', '--cpu-prof-dir', RESULTS_DIR);
  const child = fork(CHILD_ENTRY, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let nextId = 1;

  const addresses = await new Promise<StackAddresses>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error('the benchmark stack did not start within 60 s'));
    }, START_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`the benchmark stack exited during start (code ${code})`)));
    child.on('message', (message: FromStack) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve(message.addresses);
      } else if (message.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`the benchmark stack failed to start: ${message.message}`));
      } else {
        const waiter = pending.get(message.id);
        pending.delete(message.id);
        if (message.ok) waiter?.resolve(message.value);
        else waiter?.reject(new Error(message.message));
      }
    });
    child.send({ type: 'start', settings } satisfies ToStack);
  });
  child.on('exit', () => {
    for (const waiter of pending.values()) waiter.reject(new Error('the benchmark stack exited'));
    pending.clear();
  });

  const call = <T>(name: StackCall, ...args: unknown[]): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: (value) => resolve(value as T), reject });
      child.send({ type: 'call', id, call: name, args } satisfies ToStack);
    });

  return {
    addresses,
    upstreamTraffic: () => call('upstreamTraffic'),
    lastUpstreamCreate: async (providerId) => (await call<UpstreamCreateSample | null>('lastUpstreamCreate', providerId)) ?? undefined,
    memory: () => call('memory'),
    eventLoopDelay: () => call('eventLoopDelay'),
    cpuMs: () => call('cpuMs'),
    close: async () => {
      await call('close');
      await exited(child);
    },
  };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
