/**
 * `npm run bench:create`: only the create-latency phase of `npm run bench` (the compiled gateway
 * and the simulators each in a process of their own, as in the full run, and the same `BENCH_*`
 * settings: `BENCH_RATES`, `BENCH_SECONDS`, `BENCH_GATEWAY_PROFILE_DIR`). Prints the added
 * latency and the gateway's CPU per create at each rate; for iterating on the create path, not
 * for quoting: quote the full run's table.
 */
import { measureCreateLatency } from './create-latency.js';
import { bareCreateBaseline, launchProcessStack } from './process-stack.js';
import { readBenchSettings } from './bench-settings.js';
import { phaseContext } from './phase.js';

async function main(): Promise<void> {
  const settings = { ...readBenchSettings(process.env), mode: 'processes' as const };
  const log = (line: string) => process.stderr.write(`[bench:create] ${line}\n`);
  const processes = await launchProcessStack(settings);
  try {
    const result = await measureCreateLatency(phaseContext(processes, settings, log), bareCreateBaseline(processes));
    const lines = result.rows.map((row) => {
      const added = (pick: 'p50' | 'p99') => (row.gateway.latencyMs[pick] - row.direct.latencyMs[pick]).toFixed(1);
      const failures = Object.values(row.gateway.failures).reduce((sum, count) => sum + count, 0);
      return (
        `${String(row.rate).padStart(4)}/s  added p50 +${added('p50')} ms  p99 +${added('p99')} ms  ` +
        `CPU ${row.gatewayCpuMsPerCreate.toFixed(2)} ms per create  ` +
        `(direct p50 ${row.direct.latencyMs.p50.toFixed(1)} ms, ${failures} gateway failures)  ` +
        `event loop p99 ${row.serverEventLoopDelayMs.p99.toFixed(0)} / max ${row.serverEventLoopDelayMs.max.toFixed(0)} ms, ` +
        `GC ${row.serverEventLoopDelayMs.gcTotal.toFixed(0)} ms`
      );
    });
    const bareLines = result.rows.flatMap(({ rate, bare }) => {
      if (!bare) return [];
      const added = (pick: 'p50' | 'p99') => (bare.bare.latencyMs[pick] - bare.direct.latencyMs[pick]).toFixed(1);
      const failures = Object.values(bare.bare.failures).reduce((sum, count) => sum + count, 0);
      return [`${String(rate).padStart(4)}/s  bare create server: added p50 +${added('p50')} ms  p99 +${added('p99')} ms  CPU ${bare.cpuMsPerCreate.toFixed(2)} ms per create  (${failures} failures)`];
    });
    process.stdout.write(`${[...lines, ...bareLines].join('\n')}\n`);
  } finally {
    await processes.close();
  }
}

await main();
