/**
 * Phase 4 (`BENCH_MODE=processes` only): the gateway's resident memory with many tasks stored
 * and many in flight, on a gateway process of its own with `config.yaml`'s polling for real jobs.
 *
 *   1. The main phases' database (thousands of tasks created and finished through the API) is
 *      copied and its finished tasks duplicated in SQL until `finishedTasks` are stored.
 *   2. Simulators whose jobs take an hour, and the compiled gateway on that database: it creates
 *      `inFlightTasks` through the API, which stay in flight; RSS is read once it has settled.
 *   3. The gateway stops, the store is filled up to `storedTasks` finished tasks, the gateway
 *      starts again (recovery picks the tasks in flight up), serves reads of random stored tasks,
 *      and RSS is read again.
 */
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { GatewayClient, sumMetric } from './bench-client.js';
import { BENCH_TENANT_KEY, benchDatabaseDirectory } from './bench-config.js';
import { BASELINE_PROVIDER, benchCreateRequest } from './bench-requests.js';
import type { BenchSettings } from './bench-settings.js';
import { mapConcurrently, runClosedLoop } from './load.js';
import { cpuMsOf, GatewayProcess, rssOf, SimulatorProcess } from './process-stack.js';

export interface MemoryPoint {
  label: string;
  storedTasks: number;
  inFlightTasks: number;
  rssBytes: number;
  /** V8 heap in use (the gateway's own `/metrics`), against the heap bound. */
  heapUsedBytes: number;
}

export interface MemoryPhaseResult {
  heapLimitMb: number;
  points: MemoryPoint[];
  /** CPU the gateway spent per create of a task that then stays in flight. */
  cpuMsPerInFlightCreate: number;
}

/** Columns of a table, from SQLite's catalogue. */
function columnsOf(db: Database.Database, table: string): string[] {
  return (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((column) => column.name);
}

/**
 * Duplicates finished tasks (and their attempts and usage lines) until `target` are stored.
 * Unique columns get a suffix per round, so every copy is a task of its own.
 */
export function fillWithFinishedTasks(file: string, target: number): number {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    const count = () => (db.prepare("SELECT count(*) AS n FROM tasks WHERE phase = 'done'").get() as { n: number }).n;
    const suffixed: Record<string, string[]> = {
      tasks: ['id', 'callback_token', 'provider_task_id'],
      attempts: ['task_id', 'provider_task_id'],
      task_usage: ['task_id'],
    };
    const tables = Object.keys(suffixed).filter((table) => columnsOf(db, table).length > 0);
    for (let round = 1; count() < target; round++) {
      const missing = target - count();
      // Unique across calls too: a second fill copies the first one's copies.
      const suffix = `_m${Date.now().toString(36)}${round}`;
      db.transaction(() => {
        db.exec(`CREATE TEMP TABLE picked AS SELECT id FROM tasks WHERE phase = 'done' LIMIT ${missing}`);
        for (const table of tables) {
          // An integer key numbered by SQLite is left for it to number.
          const columns = columnsOf(db, table).filter((column) => !(table === 'attempts' && column === 'id'));
          const values = columns.map((column) => ((suffixed[table] ?? []).includes(column) ? `${column} || '${suffix}'` : column));
          const key = table === 'tasks' ? 'id' : 'task_id';
          db.exec(
            `INSERT INTO ${table} (${columns.join(', ')}) SELECT ${values.join(', ')} FROM ${table} WHERE ${key} IN (SELECT id FROM picked)`,
          );
        }
        db.exec('DROP TABLE picked');
      })();
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    return count();
  } finally {
    db.close();
  }
}

async function heapUsed(client: GatewayClient): Promise<number> {
  return sumMetric(await client.metrics(), 'kling_gateway_nodejs_heap_size_used_bytes');
}

async function settle(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

export async function measureMemory(
  settings: BenchSettings,
  sourceDatabase: string,
  log: (line: string) => void,
): Promise<MemoryPhaseResult> {
  const directory = benchDatabaseDirectory();
  const file = join(directory, 'gateway.db');
  copyFileSync(sourceDatabase, file);
  const points: MemoryPoint[] = [];
  const heapLimitMb = Number(process.env.GATEWAY_MAX_HEAP_MB ?? 160);
  let simulators: SimulatorProcess | undefined;
  let gateway: GatewayProcess | undefined;
  try {
    log(`memory: storing ${settings.finishedTasks} finished tasks`);
    const finished = fillWithFinishedTasks(file, settings.finishedTasks);
    // Jobs of an hour: everything created from here on stays in flight.
    simulators = await SimulatorProcess.start({ ...settings, queuedMs: 1_000, processingMs: 3_600_000 }, directory, 'long-simulators');
    gateway = await GatewayProcess.start(settings, directory, simulators.url, true);
    const client = new GatewayClient({ gatewayUrl: gateway.url, gatewayKey: BENCH_TENANT_KEY, simulators: {}, pid: gateway.pid });
    points.push({ label: 'started', storedTasks: finished, inFlightTasks: 0, rssBytes: rssOf(gateway.pid), heapUsedBytes: await heapUsed(client) });

    log(`memory: creating ${settings.inFlightTasks} tasks that stay in flight`);
    const cpuBefore = cpuMsOf(gateway.pid);
    const body = JSON.stringify(benchCreateRequest(BASELINE_PROVIDER));
    let failed = 0;
    await mapConcurrently(Array.from({ length: settings.inFlightTasks }), 16, async () => {
      if ((await client.createStatus(body)) !== 202) failed += 1;
    });
    const cpuMsPerInFlightCreate = (cpuMsOf(gateway.pid) - cpuBefore) / settings.inFlightTasks;
    if (failed > 0) log(`memory: ${failed} creates were not accepted`);
    await settle(10_000);
    points.push({
      label: `${finished} finished, then ${settings.inFlightTasks - failed} in flight`,
      storedTasks: finished,
      inFlightTasks: settings.inFlightTasks - failed,
      rssBytes: rssOf(gateway.pid),
      heapUsedBytes: await heapUsed(client),
    });

    await gateway.close();
    gateway = undefined;
    log(`memory: storing ${settings.storedTasks} finished tasks`);
    const stored = fillWithFinishedTasks(file, settings.storedTasks);
    gateway = await GatewayProcess.start(settings, directory, simulators.url, true);
    const restarted = new GatewayClient({ gatewayUrl: gateway.url, gatewayKey: BENCH_TENANT_KEY, simulators: {}, pid: gateway.pid });
    // Reads spread over the whole store, as callers and the console would make them.
    const ids = sampleTaskIds(file, 5_000);
    let next = 0;
    await runClosedLoop(16, 5, [() => restarted.getStatus(ids[next++ % ids.length] ?? '')]);
    await settle(5_000);
    points.push({
      label: `${stored} finished, ${settings.inFlightTasks - failed} in flight, after a restart and reads`,
      storedTasks: stored,
      inFlightTasks: settings.inFlightTasks - failed,
      rssBytes: rssOf(gateway.pid),
      heapUsedBytes: await heapUsed(restarted),
    });
    return { heapLimitMb, points, cpuMsPerInFlightCreate };
  } finally {
    await gateway?.close();
    await simulators?.close();
    rmSync(directory, { recursive: true, force: true });
  }
}

function sampleTaskIds(file: string, count: number): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare(`SELECT id FROM tasks WHERE phase = 'done' ORDER BY random() LIMIT ${count}`).all() as { id: string }[]).map(
      (row) => row.id,
    );
  } finally {
    db.close();
  }
}
