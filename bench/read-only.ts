/**
 * `npm run bench:read`: only the `GET /v1/videos/{id}` phase of `npm run bench` (about 30 s),
 * for iterating on the read path: the compiled gateway, the simulators and the bare baseline
 * server each in a process of their own, as in the full run, and the same `BENCH_*` settings
 * (`BENCH_READ_SECONDS`, `BENCH_READ_CONCURRENCY`, `BENCH_GATEWAY_PROFILE_DIR`,
 * `BENCH_BARE_PROFILE_DIR`). Prints req/s and CPU per request of both and their ratio; quote the
 * full run's table, not this.
 */
import { BareServerProcess, cpuMsOf, launchProcessStack } from './process-stack.js';
import { measureReadThroughput } from './read-throughput.js';
import { readBenchSettings } from './bench-settings.js';
import { phaseContext } from './phase.js';

async function main(): Promise<void> {
  const settings = { ...readBenchSettings(process.env), mode: 'processes' as const };
  const log = (line: string) => process.stderr.write(`[bench:read] ${line}\n`);
  const processes = await launchProcessStack(settings);
  try {
    const result = await measureReadThroughput(phaseContext(processes, settings, log), {
      start: async (template, rows) => {
        const server = await BareServerProcess.start(processes.directory, template, rows);
        return { url: server.url, ids: server.ids, cpuMs: () => cpuMsOf(server.pid), close: () => server.close() };
      },
    });
    const row = (name: string, figures: typeof result.gateway) =>
      `${name.padEnd(8)} ${figures.requestsPerSecond.toFixed(0).padStart(6)} req/s  ${(figures.cpuMsPerRequest * 1000).toFixed(0).padStart(5)} µs CPU per request`;
    process.stdout.write(
      [
        row('bare', result.direct),
        row('gateway', result.gateway),
        `ratio    ${((100 * result.gateway.requestsPerSecond) / result.direct.requestsPerSecond).toFixed(1)} % of bare (goal ≥ 70 %)`,
        `machine  other processes ${result.machineNoise.otherCores.toFixed(2)} cores, steal ${result.machineNoise.stealPercent.toFixed(1)} %`,
        '',
      ].join('\n'),
    );
  } finally {
    await processes.close();
  }
}

await main();
