/**
 * What every measurement phase gets: the stack under test, the run's settings, a progress log,
 * and a way to tell how busy the rest of the machine was while it ran.
 */
import type { BenchSettings } from './bench-settings.js';
import type { BenchStack } from './bench-stack.js';
import { processCpuMs, watchMachineNoise, type MachineNoise, type OwnCpuReader } from './machine-noise.js';

export interface PhaseContext {
  stack: BenchStack;
  settings: BenchSettings;
  /** Progress line on stderr. */
  log(line: string): void;
  /** Starts watching the machine; the returned function stops and reports. */
  watchNoise(): Promise<() => Promise<MachineNoise>>;
}

export function phaseContext(stack: BenchStack, settings: BenchSettings, log: (line: string) => void): PhaseContext {
  const ownCpu = benchmarkCpuReader(stack);
  return { stack, settings, log, watchNoise: () => watchMachineNoise(ownCpu) };
}

/** CPU of the load generator plus, when it runs apart, the serving process. */
function benchmarkCpuReader(stack: BenchStack): OwnCpuReader {
  const separate = stack.addresses.pid !== process.pid;
  return async () => processCpuMs() + (separate ? await stack.cpuMs() : 0);
}
