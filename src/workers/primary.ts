/**
 * The primary of `WORKERS`: the gateway as several node:cluster worker processes sharing one
 * port and one store, so a machine's cores all serve. The primary serves no request itself. It
 * readies the store (migrations; on a SQLite file, the leases a previous run left), holds the
 * port and hands each connection to a worker in turn (`shared-port.ts`), forks the workers and
 * tells each what to serve with (the simulators run here, once for all), relays news
 * between them (a task changed, an account's standing changed), keeps the per-tenant counters
 * they share (rate-limiter-flexible's cluster master), gathers their metrics for a scrape, and
 * replaces a worker that dies — ending that worker's leases and giving back the trial calls it
 * held on accounts in doubt first, so its tasks are taken up, and the accounts probed, at once
 * instead of when the leases and trials run out. A stop is passed to every worker, and waited for;
 * the port closes once every worker has drained, and a worker exits only after the connections
 * handed to it were answered.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { RateLimiterClusterMaster } from 'rate-limiter-flexible';
import { CONFIG_REFUSED_EXIT, reachablePublicUrl } from '../config/config.js';
import { BoundedWaits } from '../core/clock.js';
import type { Logger } from '../observability/logger.js';
import type { ProviderEndpoint } from '../sandbox/sandbox.js';
import { openStore, type Store } from '../store/database.js';
import { forgetWorkerProcess, noteWorkerProcess } from '../store/sqlite-owner.js';
import { SharedStateStore } from '../store/shared-state-store.js';
import { TaskStore } from '../store/task-store.js';
import { SharedPort } from './shared-port.js';
import { WorkerMetricsLedger } from './worker-metrics.js';
import { PRIMARY_TAG, type PrimaryMessage, type WorkerMessage } from './worker-protocol.js';

export interface PrimaryOptions {
  workers: number;
  /** Where the workers serve: the primary listens there. */
  port: number;
  host: string;
  databaseUrl: string;
  /** The configuration file as the start read it, for every worker (a replacement too). */
  configText: string;
  endpoints: ReadonlyMap<string, ProviderEndpoint>;
  resultOrigins: readonly string[];
  /** `server.public_url`, handed to the workers (port 0 becomes the port the primary listens on). */
  publicUrl: string;
  logger: Logger;
  /** Called once every worker serves, with the URL they serve on and the URL upstreams call back. */
  onReady?: (url: string, publicUrl: string) => void;
  /**
   * Called with the exit status to end with when the gateway cannot run: a worker was refused the
   * configuration (exit `CONFIG_REFUSED_EXIT`) or ended before the gateway first served (its
   * start failed: an unwritable storage folder, say). A replacement would fail alike; the worker
   * said why on its standard error. The primary is stopping its workers already: the caller's
   * `stop()` waits for that same stop.
   */
  onGaveUp?: (exitCode: number) => void;
}

/** What the primary does about a worker that ended while the gateway was not stopping. */
export type WorkerExitAction = { kind: 'replace' } | { kind: 'give-up'; exitCode: number; why: string };

/**
 * Whether a worker that ended is replaced or stops the gateway. A replacement would fail alike
 * when the worker was refused the configuration, or when it ended by itself before it ever served
 * in the gateway's first start (its start failed: an unwritable storage folder, say). A worker
 * that had served, or that was killed from outside (SIGKILL, the OOM killer), is replaced, also
 * while another worker of the first start is still starting: that is no failed start.
 */
export function afterWorkerExit(exit: { code: number | null; signal: string | null; served: boolean; gatewayServed: boolean }): WorkerExitAction {
  if (exit.code === CONFIG_REFUSED_EXIT) return { kind: 'give-up', exitCode: CONFIG_REFUSED_EXIT, why: 'was refused the configuration' };
  if (!exit.gatewayServed && !exit.served && exit.signal === null) return { kind: 'give-up', exitCode: exit.code || 1, why: 'ended before it served' };
  return { kind: 'replace' };
}

/** How long the metrics of one scrape wait for the slowest worker. */
const COLLECT_WAIT_MS = 2_500;
/** A worker that dies is replaced after this, doubled while replacements keep dying young. */
const FIRST_RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that lived this long was healthy: the next replacement starts without delay growth. */
export const HEALTHY_AFTER_MS = 30_000;
/**
 * A crash loop: this many starts in a row of one worker (its slot's replacements) ended before
 * they served, within `CRASH_LOOP_WINDOW_MS`, with no worker serving meanwhile. A replacement
 * would fail alike: the primary stops every worker and exits 1, so a supervisor sees the failure.
 * With the pauses above (0.5, 1, 2, 4 s) a worker that crashes at once on every start ends the
 * gateway in about 8 s of pauses plus its starts; one whose start fails after the database's 10 s
 * connect limit, in about a minute. Each worker's starts count on their own: several workers
 * failing side by side (all replaced while the database restarts) are not several in a row, or
 * `WORKERS=5` would end at the first start failed together.
 */
export const CRASH_LOOP_LIMIT = 5;
export const CRASH_LOOP_WINDOW_MS = 5 * 60_000;

/** What the primary does about a worker that died while the gateway runs: replace it after a pause, or stop. */
export type RestartAction = { kind: 'replace'; delayMs: number } | { kind: 'give-up'; crashes: number; windowMs: number };

/**
 * When the workers that die are replaced: after a pause that doubles while replacements keep
 * dying young (from `FIRST_RESTART_DELAY_MS` to `MAX_RESTART_DELAY_MS`; a worker that lived
 * `HEALTHY_AFTER_MS` is replaced after the first pause again), and not at all once
 * `CRASH_LOOP_LIMIT` workers of one slot in a row ended before they served within `CRASH_LOOP_WINDOW_MS`.
 */
export class WorkerRestarts {
  private delay = FIRST_RESTART_DELAY_MS;
  /** For each worker slot, when its workers that never served died, since a worker last served. */
  private readonly unserved = new Map<number, number[]>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A worker serves: the failed starts before it were no loop. */
  served(): void {
    this.unserved.clear();
  }

  /** The worker of `slot` died after `livedMs`, having `served` or not. */
  died(livedMs: number, served: boolean, slot = 0): RestartAction {
    if (!served) {
      const now = this.now();
      const unserved = (this.unserved.get(slot) ?? []).filter((at) => at > now - CRASH_LOOP_WINDOW_MS);
      unserved.push(now);
      this.unserved.set(slot, unserved);
      if (unserved.length >= CRASH_LOOP_LIMIT) return { kind: 'give-up', crashes: unserved.length, windowMs: CRASH_LOOP_WINDOW_MS };
    }
    // The first death waits the first delay; each replacement that dies young waits twice as long.
    const delayMs = livedMs >= HEALTHY_AFTER_MS ? FIRST_RESTART_DELAY_MS : this.delay;
    this.delay = Math.min(delayMs * 2, MAX_RESTART_DELAY_MS);
    return { kind: 'replace', delayMs };
  }
}
/** How often the primary asks each worker whether its event loop runs. */
const HEARTBEAT_MS = 1_000;
/** A worker silent this long (hung, stopped) is handed no new connection until it answers again. */
const SILENT_AFTER_MS = 5_000;
/**
 * During a stop, a worker silent this long is ended with SIGKILL: one that drains still answers
 * the heartbeat (its event loop runs), a hung one would hold the stop open forever.
 */
const STOP_SILENT_KILL_MS = 20_000;
/** Longest the stop, once every worker has ended, waits for the primary's own database connections to close. */
const STORE_CLOSE_WAIT_MS = 5_000;

interface Slot {
  index: number;
  owner: string;
  worker: Worker;
  startedAt: number;
  ready: boolean;
  /** Its drain is over (a stop): it takes no more connections. */
  drained: boolean;
  /** When it last answered the heartbeat (or said it serves). */
  answeredAt: number;
  /** It has not answered the heartbeat for `SILENT_AFTER_MS`: new connections go to the others. */
  silent: boolean;
  /** It was told to say what the start finds wrong (`startWarningsSaid` once it serves). */
  warns: boolean;
}

interface Collection {
  requester: Worker;
  requestId: number;
  waiting: Set<number>;
  /** The workers that answered. */
  answered: Set<number>;
  timer: NodeJS.Timeout;
}

export class Primary {
  private readonly slots = new Map<number, Slot>();
  private readonly collections = new Map<string, Collection>();
  /** Every worker's last metrics and the dead ones' counts: what a scrape adds up. */
  private readonly metrics = new WorkerMetricsLedger();
  private nextCollection = 1;
  private readonly restarts = new WorkerRestarts();
  private stopping = false;
  /** The stop, once begun: a signal during a give-up waits for it rather than stopping again. */
  private stopped: Promise<void> | undefined;
  private announced = false;
  /**
   * A worker has said what the start finds wrong (stranded tasks, providers disabled for want of
   * a key) and served: no other worker of this start, nor a replacement, says it again. The
   * configuration warnings are the primary's own (`main.ts`).
   */
  private startWarningsSaid = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly port: SharedPort;
  private url = '';
  /** What the workers are told upstreams call back: `publicUrl`, with port 0 made the one listened on. */
  private publicUrl = '';

  private constructor(
    private readonly options: PrimaryOptions,
    private readonly store: Store,
    private readonly tasks: TaskStore,
  ) {
    this.port = new SharedPort(() => this.takingConnections(), options.logger);
  }

  /** Readies the store and starts the workers. */
  static async start(options: PrimaryOptions): Promise<Primary> {
    // Each worker folds the log in from its own thread; the primary hardly writes.
    const store = await openStore(options.databaseUrl, { sharedByProcesses: true, maxConnections: 2, backgroundCheckpoints: false });
    if (store.migrated?.length) options.logger.info({ database: store.description, migrations: store.migrated }, 'database migrated to the current schema');
    const tasks = new TaskStore(store);
    // No worker runs yet: on a file only this gateway uses, whatever holds a lease was left by a
    // previous run. Replicas on PostgreSQL may be alive, so their leases run out by themselves.
    if (store.dialect === 'sqlite') await tasks.expireLeases();
    new RateLimiterClusterMaster();
    const primary = new Primary(options, store, tasks);
    // Connections that come before a worker serves wait for one (answered 503 if none comes in time).
    primary.url = await primary.port.listen(options.port, options.host);
    primary.publicUrl = reachablePublicUrl(options.publicUrl, primary.url);
    cluster.on('message', (worker, message) => primary.receive(worker, message));
    cluster.on('exit', (worker, code, signal) => primary.exited(worker, code, signal));
    for (let index = 1; index <= options.workers; index++) primary.fork(index);
    primary.heartbeat = setInterval(() => primary.beat(), HEARTBEAT_MS);
    primary.heartbeat.unref();
    return primary;
  }

  private fork(index: number): void {
    const owner = `gw-w${index}-${randomBytes(4).toString('hex')}`;
    const worker = cluster.fork({ KLING_GATEWAY_WORKER: String(index) });
    // Named by a start that finds it still running after this primary ended.
    noteWorkerProcess(worker.process.pid);
    this.slots.set(index, { index, owner, worker, startedAt: Date.now(), ready: false, drained: false, answeredAt: Date.now(), silent: false, warns: false });
  }

  /**
   * The workers a new connection goes to: those that serve and answer the heartbeat. A hung
   * worker (a blocked event loop, a stopped process) would leave each connection handed to it
   * unanswered for as long as it hangs. When none answers, all that serve take them, as before.
   */
  private takingConnections(): Worker[] {
    const serving = [...this.slots.values()].filter((slot) => slot.ready && !slot.drained && slot.worker.isConnected());
    const answering = serving.filter((slot) => !slot.silent);
    return (answering.length > 0 ? answering : serving).map((slot) => slot.worker);
  }

  /** Notes the workers that stopped answering, and asks every worker again. */
  private beat(): void {
    const now = Date.now();
    for (const slot of this.slots.values()) {
      if (!slot.ready) continue;
      if (!slot.silent && now - slot.answeredAt > SILENT_AFTER_MS) {
        slot.silent = true;
        this.options.logger.warn(
          { worker: slot.index, owner: slot.owner, pid: slot.worker.process.pid },
          `worker ${slot.index} has not answered for ${SILENT_AFTER_MS / 1000} s; new connections go to the other workers until it does`,
        );
      }
      if (this.stopping && now - slot.answeredAt > STOP_SILENT_KILL_MS && !slot.worker.isDead()) {
        this.options.logger.error(
          { worker: slot.index, owner: slot.owner, pid: slot.worker.process.pid },
          `worker ${slot.index} has not answered for ${STOP_SILENT_KILL_MS / 1000} s during the stop; ended with SIGKILL (what it had in flight is resolved by recovery at the next start)`,
        );
        slot.worker.process.kill('SIGKILL');
        continue;
      }
      this.send(slot.worker, { tag: PRIMARY_TAG, type: 'ping' });
    }
  }

  /** The workers that take connections: started, not drained, and still reachable. */
  private serving(): Worker[] {
    return [...this.slots.values()].filter((slot) => slot.ready && !slot.drained && slot.worker.isConnected()).map((slot) => slot.worker);
  }

  private slotOf(worker: Worker): Slot | undefined {
    for (const slot of this.slots.values()) if (slot.worker === worker) return slot;
    return undefined;
  }

  private send(worker: Worker, message: PrimaryMessage): void {
    if (!worker.isConnected()) return;
    worker.send(message, (error: Error | null) => {
      if (error && !this.stopping) this.options.logger.debug({ err: error }, 'could not reach a worker');
    });
  }

  private receive(worker: Worker, raw: unknown): void {
    if (typeof raw !== 'object' || raw === null || (raw as { tag?: unknown }).tag !== PRIMARY_TAG) return;
    const message = raw as WorkerMessage;
    const slot = this.slotOf(worker);
    if (!slot) return;
    switch (message.type) {
      case 'hello':
        // One worker says them; if it dies before it serves, the next to start does.
        slot.warns = !this.startWarningsSaid && ![...this.slots.values()].some((each) => each.warns);
        this.send(worker, {
          tag: PRIMARY_TAG,
          type: 'start',
          start: {
            index: slot.index,
            owner: slot.owner,
            configText: this.options.configText,
            endpoints: [...this.options.endpoints],
            resultOrigins: [...this.options.resultOrigins],
            publicUrl: this.publicUrl,
            startWarnings: slot.warns,
          },
        });
        break;
      case 'ready':
        slot.ready = true;
        this.restarts.served();
        if (slot.warns) this.startWarningsSaid = true;
        slot.answeredAt = Date.now();
        // The owner is what its leases and trial calls carry in the store.
        this.options.logger.info({ worker: slot.index, owner: slot.owner, pid: worker.process.pid }, `worker ${slot.index} serving`);
        this.port.resume();
        if (!this.announced && this.allServe()) {
          this.announced = true;
          this.options.onReady?.(this.url, this.publicUrl);
        }
        break;
      case 'drained':
        void this.drained(slot);
        break;
      case 'pong':
        slot.answeredAt = Date.now();
        if (slot.silent) {
          slot.silent = false;
          this.options.logger.info({ worker: slot.index, owner: slot.owner }, `worker ${slot.index} answers again; it takes connections again`);
        }
        break;
      case 'feed':
        for (const other of this.slots.values()) {
          if (other.worker !== worker) this.send(other.worker, { tag: PRIMARY_TAG, type: 'feed', text: message.text });
        }
        break;
      case 'metrics?':
        this.collect(worker, message.id);
        break;
      case 'metrics':
        this.collected(message.id, worker, message.metrics);
        break;
      default:
        break;
    }
  }

  /**
   * Every one of the workers serves: a worker that died during the first start is no longer in
   * `slots` until its replacement is forked, so those left serving are not yet all of them.
   */
  private allServe(): boolean {
    return this.slots.size === this.options.workers && [...this.slots.values()].every((slot) => slot.ready);
  }

  /** Asks every worker for its metrics; answers `requester` once all have (or time is up). */
  private collect(requester: Worker, requestId: number): void {
    const id = String(this.nextCollection++);
    const workers = [...this.slots.values()].map((slot) => slot.worker).filter((worker) => worker.isConnected());
    const timer = setTimeout(() => this.answer(id), COLLECT_WAIT_MS);
    this.collections.set(id, { requester, requestId, waiting: new Set(workers.map((worker) => worker.id)), answered: new Set(), timer });
    for (const worker of workers) this.send(worker, { tag: PRIMARY_TAG, type: 'collect', id });
  }

  private collected(id: string, worker: Worker, metrics: unknown): void {
    // Kept even when it comes too late for its scrape: it stands for the worker in the next ones.
    this.metrics.answered(worker.id, metrics);
    const collection = this.collections.get(id);
    if (!collection || !collection.waiting.delete(worker.id)) return;
    if (metrics !== null) collection.answered.add(worker.id);
    if (collection.waiting.size === 0) this.answer(id);
  }

  private answer(id: string): void {
    const collection = this.collections.get(id);
    if (!collection) return;
    this.collections.delete(id);
    clearTimeout(collection.timer);
    this.send(collection.requester, { tag: PRIMARY_TAG, type: 'collected', id: collection.requestId, parts: this.metrics.parts(collection.answered) });
  }

  /**
   * A worker's drain is over: it is told once it gets no more connections. Another worker takes
   * them from now on; when none does and the gateway is stopping, the port closes first (what it
   * accepted until then goes to this worker, which answers it 503).
   */
  private async drained(slot: Slot): Promise<void> {
    const others = this.serving().filter((worker) => worker !== slot.worker);
    if (others.length === 0 && this.stopping) await this.port.close();
    slot.drained = true;
    this.send(slot.worker, { tag: PRIMARY_TAG, type: 'no-more-connections' });
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    const slot = this.slotOf(worker);
    if (!slot) return;
    this.slots.delete(slot.index);
    forgetWorkerProcess(worker.process.pid);
    // What it counted stays counted: the sum of a scrape never goes down.
    this.metrics.retire(worker.id);
    // Connections queued for it go to the workers that serve.
    this.port.lost(worker);
    for (const [id, collection] of this.collections) {
      if (collection.waiting.delete(worker.id) && collection.waiting.size === 0) this.answer(id);
    }
    if (this.stopping) {
      // The last worker that took connections died during the stop: nobody answers them any more.
      if (this.serving().length === 0) void this.port.close();
      return;
    }
    const action = afterWorkerExit({ code, signal, served: slot.ready, gatewayServed: this.announced });
    if (action.kind === 'give-up') {
      // As a lone gateway's start stops, rather than replacing workers that would fail alike forever.
      this.options.logger.error({ worker: slot.index, owner: slot.owner, code, signal }, `worker ${slot.index} ${action.why}; stopping every worker`);
      void this.stop();
      this.options.onGaveUp?.(action.exitCode);
      return;
    }
    const restart = this.restarts.died(Date.now() - slot.startedAt, slot.ready, slot.index);
    if (restart.kind === 'give-up') {
      // A crash loop: a supervisor restarting the whole gateway (or an operator) is the remedy, not a replacement for ever.
      this.options.logger.error(
        { worker: slot.index, owner: slot.owner, code, signal, crashes: restart.crashes, window_ms: restart.windowMs },
        `${restart.crashes} workers in a row ended before they served, within ${restart.windowMs / 1000} s and none serving meanwhile (worker ${slot.index} last): a crash loop, which a replacement would not end; stopping every worker`,
      );
      void this.stop();
      this.options.onGaveUp?.(code || 1);
      return;
    }
    const delay = restart.delayMs;
    // A worker that served and ended with 0 stopped on a signal of its own (a worker ends with 0
    // only by its stop): sent to it alone, or the gateway's stop reaching the workers before this
    // primary (each process signalled in turn). Said only if it is replaced: not when this
    // primary's own stop follows within the pause, which is no death of a worker.
    const stoppedAlone = slot.ready && code === 0 && signal === null;
    if (!stoppedAlone) this.options.logger.error({ worker: slot.index, owner: slot.owner, code, signal }, `worker ${slot.index} died; replacing it in ${delay} ms`);
    // Its leases end now: the other workers take up its submissions, polls and copies at once.
    this.tasks
      .expireLeases(slot.owner)
      .catch((error) => this.options.logger.warn({ err: error, worker: slot.index }, 'could not end the leases of a dead worker; they run out'));
    // A trial call it held (the one call allowed to an account in doubt) will never end: the
    // other workers may probe the account now, not after the call's timeout.
    new SharedStateStore(this.store)
      .releaseTrialsOf(slot.owner, Date.now())
      .catch((error) => this.options.logger.warn({ err: error, worker: slot.index }, 'could not give back the trial calls of a dead worker; they run out'));
    setTimeout(() => {
      if (this.stopping) return;
      if (stoppedAlone) {
        this.options.logger.warn(
          { worker: slot.index, owner: slot.owner, code, signal },
          `worker ${slot.index} ended with 0 on a stop signal sent to it alone (the primary got none); replaced`,
        );
      }
      this.fork(slot.index);
    }, delay).unref();
  }

  /**
   * Stops every worker (each drains as a lone gateway would) and waits for them; the store closes
   * once, however many ask.
   */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.stopped ??= this.stopWorkers(signal);
    return this.stopped;
  }

  private async stopWorkers(signal: NodeJS.Signals): Promise<void> {
    this.stopping = true;
    const exits = [...this.slots.values()].map(
      ({ worker }) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          worker.once('exit', () => resolve());
          worker.process.kill(signal);
        }),
    );
    await Promise.all(exits);
    clearInterval(this.heartbeat);
    await this.port.close();
    // A database that stopped answering (a host gone silent in a failover) would hold the stop for ever.
    const waits = new BoundedWaits(Date.now() + STORE_CLOSE_WAIT_MS);
    if (!(await waits.wait('the database connections', this.store.close()))) {
      this.options.logger.warn(
        { abandoned: waits.abandoned, wait_ms: STORE_CLOSE_WAIT_MS },
        `stopping with the database connections left running after ${STORE_CLOSE_WAIT_MS} ms (the database may not be answering)`,
      );
    }
  }
}
