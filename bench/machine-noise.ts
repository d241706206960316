/**
 * How much else the machine was doing while a phase ran. These machines are shared: when
 * other processes (or the hypervisor, as steal time) take the cores, the gateway and its
 * baseline queue for CPU and every latency grows, so each phase reports the cores used by
 * everything except the benchmark's own two processes. Linux only (`/proc/stat`); elsewhere
 * the figures are NaN.
 */
import { readFileSync } from 'node:fs';

/** Milliseconds per clock tick of `/proc/stat` (USER_HZ, 100 on every mainstream kernel). */
const TICK_MS = 10;

interface CpuTimes {
  /** Time any core spent running something (user, nice, system, irq, softirq). */
  busyMs: number;
  /** Time the hypervisor ran someone else while this VM wanted to run. */
  stealMs: number;
  totalMs: number;
}

function readCpuTimes(): CpuTimes | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n').find((candidate) => candidate.startsWith('cpu '));
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = (line ?? '')
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const busy = user + nice + system + irq + softirq;
    return { busyMs: busy * TICK_MS, stealMs: steal * TICK_MS, totalMs: (busy + idle + iowait + steal) * TICK_MS };
  } catch {
    return undefined;
  }
}

/** CPU the benchmark's own processes used so far, in milliseconds. */
export type OwnCpuReader = () => Promise<number>;

export interface MachineNoise {
  /** Cores kept busy by other processes during the phase, on average. */
  otherCores: number;
  /** Cores the benchmark itself used (load generator and serving process). */
  benchmarkCores: number;
  /** Share of CPU time the hypervisor gave to other machines. */
  stealPercent: number;
}

/** Starts watching; the returned function ends the watch and tells what happened meanwhile. */
export async function watchMachineNoise(ownCpuMs: OwnCpuReader): Promise<() => Promise<MachineNoise>> {
  const startedAt = performance.now();
  const before = readCpuTimes();
  const ownBefore = await ownCpuMs();
  return async () => {
    const after = readCpuTimes();
    const ownAfter = await ownCpuMs();
    const wallMs = performance.now() - startedAt;
    const benchmarkCores = (ownAfter - ownBefore) / wallMs;
    if (!before || !after) return { otherCores: Number.NaN, benchmarkCores, stealPercent: Number.NaN };
    const busyCores = (after.busyMs - before.busyMs) / wallMs;
    const totalMs = after.totalMs - before.totalMs;
    return {
      // Tick granularity can make this slightly negative on a quiet machine.
      otherCores: Math.max(0, busyCores - benchmarkCores),
      benchmarkCores,
      stealPercent: totalMs > 0 ? ((after.stealMs - before.stealMs) / totalMs) * 100 : Number.NaN,
    };
  };
}

/** CPU time of this process, in milliseconds. */
export function processCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}
