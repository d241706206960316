/**
 * The chaos scenarios of `npm run chaos` (issue 11): gateway replicas as processes on SQLite or
 * PostgreSQL, the simulators in a process of their own that outlives them (they count every
 * upstream create: each chaos create has a prompt of its own), creates slowed so that kills land
 * mid-request, some creates' connections dropped after the upstream accepted them, clients
 * retrying by Idempotency-Key (some abandon a create mid-request first), directly or through the
 * cluster's balancer. Each scenario ends by waiting for every task to finish and judges
 * what the upstreams and the gateway hold against each other.
 */
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, type Replica } from '../cluster/cluster.js';
import { tcpProxy, type TcpProxy } from '../cluster/tcp-proxy.js';
import { chaosRequest, judge, postCreate, waitUntilAllFinished, type ChaosTask, type ChaosVerdict, type UpstreamTask } from './chaos-client.js';

const PROVIDERS = ['freepik', 'kling3api', 'kling-legacy'] as const;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ScenarioOptions {
  /** `sqlite` (one replica) or `postgres` (`replicas` on one schema, default two). */
  database: { kind: 'sqlite' } | { kind: 'postgres'; url: string; replicas?: number };
  /** Creates sent in all. */
  creates: number;
  /** Clients sending at once. */
  clients: number;
  /**
   * How replicas are stopped, how often: the last replica with one signal, or (`random`) each
   * round at random a `SIGTERM` of one replica or a `SIGKILL` of one or two (one always stays up).
   */
  stops: { signal: 'SIGKILL' | 'SIGTERM' | 'random'; count: number; everyMs: number };
  /** Clients send through the cluster's balancer (the public URL callbacks come back to) instead of to a live replica. */
  throughBalancer?: boolean;
  /** One create in this many is abandoned mid-request by its client (its connection closed) and sent again with its key. */
  abandonOneIn?: number;
  /** How long the upstreams take to answer a create (so stops land mid-request). */
  createDelayMs: number;
  /** Every this many ms, one create per provider has its connection dropped after acceptance (0: never). */
  dropEveryMs: number;
  /** PostgreSQL only: every `everyMs`, the database is out of reach for `lengthMs` (as while it restarts). */
  databaseOutages?: { everyMs: number; lengthMs: number };
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
  /** Stops carried out, by kind (`SIGTERM`, `SIGKILL x1`, `SIGKILL x2`). */
  stopKinds: Record<string, number>;
  /** Creates a client abandoned mid-request (and sent again with their key). */
  abandoned: number;
  /** Idempotency keys (chaos prompts) the gateway holds more than one task for. */
  keysWithTwoTasks: number;
  /** Database outages carried out. */
  databaseOutages: number;
  /** Callbacks the simulators sent, by provider: answers by status (or connection error), and those a stopping replica refused. */
  callbacks: Record<string, { answers: Record<string, number>; refusedStopping: number }>;
}

/** The stop gate's refusal (`http/stop-gate.ts`): a 503 whose detail says the gateway is stopping. */
function refusedByStopping(callback: { status: number | null; detail: string | null }): boolean {
  return callback.status === 503 && /stopping/.test(callback.detail ?? '');
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

/** A relay in front of PostgreSQL (`cluster/tcp-proxy.ts`, shared with the tests) whose outages stand for a database restart, and the URL through it. */
async function relayTo(databaseUrl: string): Promise<{ proxy: TcpProxy; url: string }> {
  const url = new URL(databaseUrl);
  const proxy = await tcpProxy(url.hostname, Number(url.port || 5432));
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  return { proxy, url: url.toString() };
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
  const replicas = options.database.kind === 'sqlite' ? 1 : (options.database.replicas ?? 2);
  const relay = options.database.kind === 'postgres' && options.databaseOutages ? await relayTo(options.database.url) : undefined;
  const databaseUrl = options.database.kind === 'sqlite' ? `sqlite:${join(directory, 'gateway.db')}` : (relay?.url ?? options.database.url);
  const cluster = await Cluster.start({ replicas, databaseUrl, logDirectory: directory, config: clusterConfig(options.createDelayMs), compiled: true });
  // The folder (replica and simulator logs, config) is named only when asked: `CHAOS_SHOW_FOLDER=1`.
  const folder = process.env.CHAOS_SHOW_FOLDER === '1' ? ` (${directory})` : '';
  log(`  started ${replicas} replica(s) on ${options.database.kind}${options.throughBalancer ? ' behind the balancer' : ''}; logs in the run's temporary folder${folder}`);
  try {
    const slow = { on: 'submit', delayMs: options.createDelayMs, times: 100_000 };
    for (const provider of PROVIDERS) await cluster.injectFault(provider, slow);

    let sent = 0;
    let done = false;
    let abandoned = 0;
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
        const abandon = options.abandonOneIn !== undefined && n % options.abandonOneIn === options.abandonOneIn - 1;
        for (let tries = 0; tries < 200; tries++) {
          const targets = live();
          const target = options.throughBalancer ? cluster.balancer.url : targets[(n + tries) % Math.max(1, targets.length)]?.url;
          if (!target) {
            await sleep(200);
            continue;
          }
          // An abandoned create: the client gives up mid-request (the upstream takes its time to answer).
          const answer = await postCreate(agent, target, requestFor(n), key, abandon && tries === 0 ? 100 + Math.round(Math.random() * 500) : undefined);
          if (answer.status === 'error' && answer.errorCode === 'CLIENT_TIMEOUT' && abandon && tries === 0) abandoned += 1;
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
      while (!done && options.dropEveryMs > 0) {
        await sleep(options.dropEveryMs);
        if (done) break;
        for (const provider of PROVIDERS) {
          await cluster.clearFaults(provider);
          await cluster.injectFault(provider, { on: 'submit', transport: 'drop_after_accept', times: 1 });
          await cluster.injectFault(provider, slow);
        }
      }
    })();

    // Stops: the victim replica (or, at random, one or two replicas) is stopped and started again.
    let stops = 0;
    const stopKinds: Record<string, number> = {};
    const stopper = (async () => {
      while (stops < options.stops.count && !done) {
        await sleep(options.stops.everyMs);
        if (done) break;
        let signal: 'SIGKILL' | 'SIGTERM';
        let victims: Replica[];
        if (options.stops.signal === 'random') {
          const running = live().sort(() => Math.random() - 0.5);
          const roll = Math.random();
          signal = roll < 1 / 3 ? 'SIGTERM' : 'SIGKILL';
          // One replica always stays up.
          victims = running.slice(0, Math.min(signal === 'SIGKILL' && roll >= 2 / 3 ? 2 : 1, running.length - 1));
        } else {
          signal = options.stops.signal;
          victims = [victim];
        }
        if (victims.length === 0) continue;
        await Promise.all(victims.map((replica) => replica.stop(signal)));
        stops += 1;
        const kind = signal === 'SIGTERM' ? 'SIGTERM' : `SIGKILL x${victims.length}`;
        stopKinds[kind] = (stopKinds[kind] ?? 0) + 1;
        log(`  ${kind} (replica ${victims.map((replica) => replica.index).join(', ')}) ${stops}/${options.stops.count} (${answered.size} creates answered so far)`);
        await sleep(300);
        await Promise.all(victims.map((replica) => replica.start()));
      }
    })();

    // Outages: the database is out of reach for a while, the replicas and simulators are not.
    let databaseOutages = 0;
    const outages = (async () => {
      while (!done && relay && options.databaseOutages) {
        await sleep(options.databaseOutages.everyMs);
        if (done) break;
        log(`  database out of reach for ${options.databaseOutages.lengthMs} ms (${answered.size} creates answered so far)`);
        await relay.proxy.down();
        await sleep(options.databaseOutages.lengthMs);
        await relay.proxy.up();
        databaseOutages += 1;
      }
    })();

    await Promise.all(clients);
    done = true;
    await Promise.all([dropper, stopper, outages]);
    for (const provider of PROVIDERS) await cluster.clearFaults(provider);
    await Promise.all(cluster.replicas.filter((replica) => !replica.running).map((replica) => replica.start()));
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
    const tasksPerPrompt = new Map<string, number>();
    for (const task of tasks) {
      const prompt = task.request.prompt ?? '';
      if (prompt.startsWith('chaos ')) tasksPerPrompt.set(prompt, (tasksPerPrompt.get(prompt) ?? 0) + 1);
    }
    const keysWithTwoTasks = [...tasksPerPrompt.values()].filter((count) => count > 1).length;
    const callbacks: ScenarioResult['callbacks'] = {};
    for (const provider of ['freepik', 'kling-legacy']) {
      const sentCallbacks = await cluster.upstreamCallbacks(provider);
      const byAnswer: Record<string, number> = {};
      for (const callback of sentCallbacks) {
        // A refusal says why (its problem's detail, cut short): the stop gate's, a create still being recorded, …
        const why = callback.detail ? ` ${callback.detail.slice(0, 40)}` : '';
        const label = callback.status === null ? (callback.detail ?? 'error') : callback.status < 300 ? String(callback.status) : `${callback.status}${why}`;
        byAnswer[label] = (byAnswer[label] ?? 0) + 1;
      }
      callbacks[provider] = { answers: byAnswer, refusedStopping: sentCallbacks.filter(refusedByStopping).length };
    }
    return { verdict, interruptedHeldByProvider, stops, databaseOutages, answers, durationMs: Date.now() - started, tasks, stopKinds, abandoned, keysWithTwoTasks, callbacks };
  } finally {
    await cluster.stop();
    await relay?.proxy.close();
  }
}

/**
 * What must hold after any scenario; the list of broken promises (empty when all held). After
 * graceful stops no task is `interrupted`; where no create's answer was lost (no stop, no
 * dropped connection: `everyTaskSucceeds`), every task succeeds and every upstream task is tracked.
 */
export function brokenPromises(result: ScenarioResult, expected: { graceful: boolean; everyTaskSucceeds?: boolean }): string[] {
  const broken: string[] = [];
  const { verdict } = result;
  if (verdict.lost > 0) broken.push(`${verdict.lost} answered task(s) lost`);
  if (verdict.doubleCreates > 0) broken.push(`${verdict.doubleCreates} task(s) created twice upstream`);
  if (verdict.unfinished > 0) broken.push(`${verdict.unfinished} task(s) not finished`);
  if (result.keysWithTwoTasks > 0) broken.push(`${result.keysWithTwoTasks} idempotency key(s) with two tasks`);
  const refusedLegacy = result.callbacks['kling-legacy']?.refusedStopping ?? 0;
  if (refusedLegacy > 0) broken.push(`${refusedLegacy} legacy callback(s) refused by a stopping replica (the legacy API sends each once)`);
  for (const provider of ['freepik', 'kling-legacy']) {
    const count = result.interruptedHeldByProvider[provider] ?? 0;
    if (count > 0) broken.push(`${count} ${provider} task(s) interrupted although the upstream holds them`);
  }
  if (expected.everyTaskSucceeds) {
    const failed = result.tasks.filter((task) => task.status !== 'succeeded').length;
    if (failed > 0) broken.push(`${failed} task(s) did not succeed although every upstream did`);
    for (const [provider, count] of Object.entries(verdict.orphanedUpstream)) broken.push(`${count} ${provider} task(s) no gateway task tracks (paid, abandoned)`);
  }
  if (expected.graceful && verdict.interrupted > 0) broken.push(`${verdict.interrupted} task(s) interrupted after graceful stops`);
  return broken;
}
