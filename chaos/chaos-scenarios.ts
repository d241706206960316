/**
 * The chaos scenarios of `npm run chaos` (issue 11): gateway replicas as processes on SQLite or
 * PostgreSQL, the simulators in a process of their own that outlives them (they count every
 * upstream create: each chaos create has a prompt of its own), creates slowed so that kills land
 * mid-request, some creates' connections dropped after the upstream accepted them, clients
 * retrying by Idempotency-Key. Each scenario ends by waiting for every task to finish and judges
 * what the upstreams and the gateway hold against each other.
 */
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, type Replica } from '../cluster/cluster.js';
import { chaosRequest, judge, postCreate, waitUntilAllFinished, type ChaosTask, type ChaosVerdict, type UpstreamTask } from './chaos-client.js';

const PROVIDERS = ['freepik', 'kling3api', 'kling-legacy'] as const;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ScenarioOptions {
  /** `sqlite` (one replica) or `postgres` (two replicas on one schema). */
  database: { kind: 'sqlite' } | { kind: 'postgres'; url: string };
  /** Creates sent in all. */
  creates: number;
  /** Clients sending at once. */
  clients: number;
  /** How replicas are stopped, how often. */
  stops: { signal: 'SIGKILL' | 'SIGTERM'; count: number; everyMs: number };
  /** How long the upstreams take to answer a create (so stops land mid-request). */
  createDelayMs: number;
  /** Every this many ms, one create per provider has its connection dropped after acceptance. */
  dropEveryMs: number;
  /** Longest wait for every task to finish at the end. */
  settleMs: number;
  log?: (line: string) => void;
}

export interface ScenarioResult {
  verdict: ChaosVerdict;
  /** `interrupted` tasks the upstream holds, by provider. */
  interruptedHeldByProvider: Record<string, number>;
  /** Stops carried out. */
  stops: number;
  /** Client answers by status. */
  answers: Record<string, number>;
  durationMs: number;
  tasks: ChaosTask[];
}

function clusterConfig(createDelayMs: number): Record<string, unknown> {
  const provider = { timeout_ms: Math.max(3_000, createDelayMs + 2_000), max_in_flight: 200, rate_limits: [], circuit_breaker: { consecutive_failures: 50, half_open_after_ms: 1_000 } };
  return {
    tracking: { poll_min_interval_ms: 500, poll_max_interval_ms: 2_000, tick_ms: 200, lease_ms: 2_000, webhook_safety_poll_ms: 3_000 },
    sandbox: { queued_ms: 2_000, processing_ms: 6_000 },
    tasks: { deadline_ms: 600_000 },
    server: { drain_timeout_ms: 20_000 },
    providers: { freepik: provider, kling3api: provider, 'kling-legacy': provider },
  };
}

/** Which provider(s) create number `n` goes to: a mix of all three. */
function requestFor(n: number): Record<string, unknown> {
  switch (n % 4) {
    case 0:
    case 1:
      return chaosRequest(`${n}`);
    case 2:
      return { ...chaosRequest(`${n}`), model: 'kling-v1' };
    default:
      return chaosRequest(`${n}`, ['kling3api', 'freepik']);
  }
}

export async function runScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const directory = mkdtempSync(join(tmpdir(), 'kling-chaos-'));
  const replicas = options.database.kind === 'sqlite' ? 1 : 2;
  const databaseUrl = options.database.kind === 'sqlite' ? `sqlite:${join(directory, 'gateway.db')}` : options.database.url;
  const cluster = await Cluster.start({ replicas, databaseUrl, logDirectory: directory, config: clusterConfig(options.createDelayMs), compiled: true });
  log(`  started ${replicas} replica(s) on ${options.database.kind}; logs in the run's temporary folder`);
  try {
    const slow = { on: 'submit', delayMs: options.createDelayMs, times: 100_000 };
    for (const provider of PROVIDERS) await cluster.injectFault(provider, slow);

    let sent = 0;
    let done = false;
    const answered = new Set<string>();
    const answers: Record<string, number> = {};
    const victim = cluster.replicas[replicas - 1]!;
    const live = (): Replica[] => cluster.replicas.filter((replica) => replica.running);

    // Clients: each create goes to a live replica and is retried with its key until answered.
    // Creates are spread over the time the stops take, so every stop lands among them.
    const paceMs = ((options.stops.count + 1) * options.stops.everyMs * options.clients) / options.creates;
    const clients = Array.from({ length: options.clients }, async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (;;) {
        const n = sent++;
        if (n >= options.creates) break;
        const key = `chaos-${started}-${n}`;
        for (let tries = 0; tries < 200; tries++) {
          const targets = live();
          const target = targets[(n + tries) % Math.max(1, targets.length)];
          if (!target) {
            await sleep(200);
            continue;
          }
          const answer = await postCreate(agent, target.url, requestFor(n), key);
          const label = String(answer.status === 'error' ? answer.errorCode : answer.status);
          answers[label] = (answers[label] ?? 0) + 1;
          if (answer.taskId) answered.add(answer.taskId);
          if (answer.status !== 'error' && answer.status < 500 && answer.status !== 409) break;
          await sleep(150);
        }
        await sleep(paceMs * (0.5 + Math.random()));
      }
      agent.destroy();
    });

    // Drops: now and then, the next create at each provider is accepted and its answer lost.
    const dropper = (async () => {
      while (!done) {
        await sleep(options.dropEveryMs);
        if (done) break;
        for (const provider of PROVIDERS) {
          await cluster.clearFaults(provider);
          await cluster.injectFault(provider, { on: 'submit', transport: 'drop_after_accept', times: 1 });
          await cluster.injectFault(provider, slow);
        }
      }
    })();

    // Stops: the victim replica is stopped and started again.
    let stops = 0;
    const stopper = (async () => {
      while (stops < options.stops.count && !done) {
        await sleep(options.stops.everyMs);
        if (done) break;
        await victim.stop(options.stops.signal);
        stops += 1;
        log(`  ${options.stops.signal} ${stops}/${options.stops.count} (${answered.size} creates answered so far)`);
        await sleep(300);
        await victim.start();
      }
    })();

    await Promise.all(clients);
    done = true;
    await Promise.all([dropper, stopper]);
    for (const provider of PROVIDERS) await cluster.clearFaults(provider);
    if (!victim.running) await victim.start();
    log(`  all ${options.creates} creates answered; waiting for every task to finish`);

    const reader = cluster.replicas[0]!;
    const tasks = await waitUntilAllFinished(reader.url, options.settleMs);
    const upstream: Record<string, UpstreamTask[]> = {};
    for (const provider of PROVIDERS) upstream[provider] = await cluster.upstreamTasks(provider);
    const verdict = judge(tasks, answered, upstream);
    const interruptedHeldByProvider: Record<string, number> = {};
    const heldPrompts = new Set(Object.values(upstream).flat().map((task) => String(task.body.prompt ?? '')));
    for (const task of tasks) {
      const interrupted = task.attempts.find((attempt) => attempt.outcome === 'interrupted');
      if (interrupted && heldPrompts.has(task.request.prompt ?? '')) {
        interruptedHeldByProvider[interrupted.provider] = (interruptedHeldByProvider[interrupted.provider] ?? 0) + 1;
      }
    }
    return { verdict, interruptedHeldByProvider, stops, answers, durationMs: Date.now() - started, tasks };
  } finally {
    await cluster.stop();
  }
}

/** What must hold after any scenario; the list of broken promises (empty when all held). */
export function brokenPromises(result: ScenarioResult, graceful: boolean): string[] {
  const broken: string[] = [];
  const { verdict } = result;
  if (verdict.lost > 0) broken.push(`${verdict.lost} answered task(s) lost`);
  if (verdict.doubleCreates > 0) broken.push(`${verdict.doubleCreates} task(s) created twice upstream`);
  if (verdict.unfinished > 0) broken.push(`${verdict.unfinished} task(s) not finished`);
  for (const provider of ['freepik', 'kling-legacy']) {
    const count = result.interruptedHeldByProvider[provider] ?? 0;
    if (count > 0) broken.push(`${count} ${provider} task(s) interrupted although the upstream holds them`);
  }
  if (graceful && verdict.interrupted > 0) broken.push(`${verdict.interrupted} task(s) interrupted after graceful stops`);
  return broken;
}
