/**
 * What every provider simulator shares: an express app on loopback, the log of requests and
 * tasks, injected faults and outcomes, a task lifecycle driven by the injected clock, result
 * files that really play, and callback delivery with retries. A provider's simulator adds only
 * its own routes and bodies.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, fstatSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import express, { type Express, type Request, type Response } from 'express';
import type {
  ProviderSimulator,
  SimulatedCallback,
  SimulatedFault,
  SimulatedOutcome,
  SimulatedTask,
  SimulatorOptions,
} from '../core/upstream/provider.js';

const assetsDir = new URL('./assets/', import.meta.url);
/** A two-second 160×90 H.264/AAC MP4 that any player opens. */
export const SAMPLE_MP4: Buffer = readFileSync(new URL('sample.mp4', assetsDir));
/** A 160×90 PNG for image operations. */
export const SAMPLE_PNG: Buffer = readFileSync(new URL('sample.png', assetsDir));

/** Where every simulator serves its result files (`<path>/<task id>.mp4|.png`). */
export const SIM_FILES_PATH = '/sim-files';

/** Lifecycle phase of a simulated task at a given time. */
export type SimulatedPhase = 'queued' | 'processing' | 'done';

export interface KitTask extends SimulatedTask {
  /** Extra per-provider data (e.g. callback URL, type). */
  data: Record<string, unknown>;
  /** The latest phase a transition timer announced (a timer may fire a millisecond "early"). */
  reached?: SimulatedPhase;
}

const PHASE_ORDER: Record<SimulatedPhase, number> = { queued: 0, processing: 1, done: 2 };

/** Tasks in a journal older than this are not taken back (and dropped from it) when a simulator starts. */
export const JOURNAL_MAX_AGE_MS = 24 * 3_600_000;

/**
 * The most of a journal a simulator reads when it starts: its newest lines. A journal is rewritten
 * at each start but grows unbounded while the simulator runs (as its tasks in memory do); read
 * whole, one written until the gateway ran out of memory would stop every start the same way.
 */
export const JOURNAL_MAX_READ_BYTES = 16 * 1024 * 1024;

const OUTCOMES: ReadonlySet<unknown> = new Set<SimulatedOutcome>(['succeed', 'fail', 'content_policy']);

/** One line of a simulator's journal: what it needs to answer for a task it created. */
interface JournalEntry {
  id: string;
  path: string;
  body: unknown;
  createdAt: number;
  outcome: SimulatedOutcome;
  data: Record<string, unknown>;
}

/** A journal line read back, or undefined when it is not one (cut short by a kill, edited, foreign). */
function journalEntryOf(line: string): JournalEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const entry = value as Partial<JournalEntry>;
  const { id, path, createdAt, outcome, data } = entry;
  if (typeof id !== 'string' || id === '' || typeof path !== 'string') return undefined;
  if (typeof createdAt !== 'number' || !Number.isFinite(createdAt) || !OUTCOMES.has(outcome)) return undefined;
  if (!data || typeof data !== 'object' || Array.isArray(data)) return undefined;
  return { id, path, body: entry.body, createdAt, outcome: outcome as SimulatedOutcome, data };
}

/**
 * The newest `JOURNAL_MAX_READ_BYTES` of a journal, from the first whole line among them (all of
 * it when it is no longer).
 */
function readJournalTail(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    // From the byte before, so that a line starting right at the bound is read whole.
    const start = size > JOURNAL_MAX_READ_BYTES ? size - JOURNAL_MAX_READ_BYTES - 1 : 0;
    const bytes = Buffer.alloc(size - start);
    let read = 0;
    while (read < bytes.length) {
      const got = readSync(fd, bytes, read, bytes.length - read, start + read);
      if (got === 0) break;
      read += got;
    }
    const text = bytes.subarray(0, read).toString('utf8');
    // Read from the middle of a line: that line is left out whole (before it, the older lines too).
    return start === 0 ? text : text.slice(text.indexOf('\n') + 1);
  } finally {
    closeSync(fd);
  }
}

/** Requests kept for inspection; older ones are dropped so a long-running sandbox stays small. */
const MAX_LOGGED_REQUESTS = 10_000;
/** Callbacks sent kept for inspection, likewise. */
const MAX_LOGGED_CALLBACKS = 10_000;
/**
 * Finished tasks kept beyond which the oldest are forgotten (their status then answers as an
 * unknown task's would). A sandbox runs inside the gateway process (`npm start` with no keys), so
 * keeping every task ever created made that process grow with each video; the gateway is done
 * with a task's status once it has its result, seconds after it finished. Tasks still queued or
 * processing are never forgotten.
 */
export const MAX_KEPT_TASKS = 10_000;

/** A problem answer's `detail`, if the text is one. */
function detailOf(text: string): string | null {
  try {
    const detail = (JSON.parse(text) as { detail?: unknown }).detail;
    return typeof detail === 'string' ? detail : null;
  } catch {
    return null;
  }
}

interface QueuedFault extends SimulatedFault {
  remaining: number;
}

export class SimulatorKit {
  readonly app: Express;
  readonly tasks: KitTask[] = [];
  readonly requests: { method: string; path: string; at: number }[] = [];
  /** Every webhook or callback sent (each try) and its answer. */
  readonly callbacks: SimulatedCallback[] = [];
  private readonly tasksById = new Map<string, KitTask>();
  private readonly requestListeners: ((request: { method: string; path: string; at: number }) => void)[] = [];
  readonly clock: SimulatorOptions['clock'];
  readonly queuedMs: number;
  readonly processingMs: number;
  private faults: QueuedFault[] = [];
  /** Result files deleted on purpose (`expireResult`): their URLs answer 404. */
  private readonly expiredResults = new Set<string>();
  private outcomes: { outcome: SimulatedOutcome; remaining: number }[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private baseUrl = '';
  private closed = false;
  /** Where created tasks are appended (`SimulatorOptions.journalPath`). */
  private readonly journalPath: string | undefined;
  private journalRead = false;

  constructor(
    readonly providerId: string,
    readonly options: SimulatorOptions,
  ) {
    this.clock = options.clock;
    this.queuedMs = options.timing?.queuedMs ?? 1_000;
    this.processingMs = options.timing?.processingMs ?? 4_000;
    this.journalPath = options.journalPath;
    this.app = express();
    this.app.disable('x-powered-by');
    this.app.use((req, _res, next) => {
      const request = { method: req.method, path: req.path, at: this.clock.now() };
      for (const listener of this.requestListeners) listener(request);
      this.requests.push(request);
      if (this.requests.length > MAX_LOGGED_REQUESTS) this.requests.splice(0, this.requests.length - MAX_LOGGED_REQUESTS);
      next();
    });
    this.app.get(`${SIM_FILES_PATH}/:name`, (req, res) => {
      const name = String(req.params.name);
      if (this.resultIsGone(name.replace(/\.[a-z0-9]+$/, ''))) {
        res.status(404).type('text/plain').send('Not Found');
        return;
      }
      if (name.endsWith('.mp4')) {
        res.type('video/mp4').send(SAMPLE_MP4);
      } else if (name.endsWith('.png')) {
        res.type('image/png').send(SAMPLE_PNG);
      } else {
        res.status(404).end();
      }
    });
  }

  /** Base URL other parties should use for this simulator (result files, callbacks). */
  get publicUrl(): string {
    return (this.options.publicUrl ?? this.baseUrl).replace(/\/+$/, '');
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = this.app.listen(port, host);
    this.server = server;
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('simulator has no TCP address');
    this.baseUrl = `http://${host}:${address.port}`;
    return this.baseUrl;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.server = undefined;
  }

  injectFault(fault: SimulatedFault): void {
    this.faults.push({ ...fault, remaining: fault.times ?? 1 });
  }

  onRequest(listener: (request: { method: string; path: string; at: number }) => void): void {
    this.requestListeners.push(listener);
  }

  clearFaults(): void {
    this.faults = [];
  }

  setOutcome(outcome: SimulatedOutcome, times = 1): void {
    this.outcomes.push({ outcome, remaining: times });
  }

  /** The outcome the next created task will have. */
  nextOutcome(): SimulatedOutcome {
    const head = this.outcomes[0];
    if (!head) return 'succeed';
    head.remaining -= 1;
    if (head.remaining <= 0) this.outcomes.shift();
    return head.outcome;
  }

  private takeFault(call: 'submit' | 'status'): QueuedFault | undefined {
    const index = this.faults.findIndex((fault) => (fault.on ?? 'submit') === call || fault.on === 'any');
    const fault = this.faults[index];
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults.splice(index, 1);
    return fault;
  }

  /**
   * Applies the next queued fault for this kind of call. Returns true when the fault answered
   * (or swallowed) the request; false when the handler should answer normally — after the
   * fault's delay, if it had one.
   */
  async applyFault(
    call: 'submit' | 'status',
    req: Request,
    res: Response,
    errorFor: (fault: SimulatedFault) => { status: number; body: unknown; headers?: Record<string, string> },
  ): Promise<boolean> {
    const fault = this.takeFault(call);
    if (!fault) return false;
    if (fault.delayMs) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
    if (fault.hold) {
      fault.hold.reached?.();
      await fault.hold.until;
    }
    if (fault.transport === 'reset') {
      req.socket.destroy();
      return true;
    }
    if (fault.transport === 'drop_after_accept') {
      // The handler goes on as usual; its answer never leaves.
      const drop = () => {
        req.socket.destroy();
        return res;
      };
      res.json = drop;
      res.send = drop;
      return false;
    }
    if (fault.transport === 'hang') {
      // Never answer; the socket is destroyed when the simulator closes or the client gives up.
      return true;
    }
    if (fault.status === undefined && fault.kind === undefined && fault.body === undefined) return false;
    const built = errorFor(fault);
    const status = fault.status ?? built.status;
    res.status(status).set({ ...built.headers, ...fault.headers });
    res.json(fault.body ?? built.body);
    return true;
  }

  /** Records a new task created through `path` with `body`. */
  createTask(id: string, path: string, body: unknown, data: Record<string, unknown> = {}): KitTask {
    const task: KitTask = {
      id,
      path,
      body,
      createdAt: this.clock.now(),
      outcome: this.nextOutcome(),
      status: '',
      data,
    };
    this.tasks.push(task);
    this.tasksById.set(id, task);
    this.forgetOldestFinished();
    this.journal(task);
    return task;
  }

  /** Drops the oldest tasks past `MAX_KEPT_TASKS`, up to the first one not finished yet. */
  private forgetOldestFinished(): void {
    let excess = this.tasks.length - MAX_KEPT_TASKS;
    if (excess <= 0) return;
    let forgotten = 0;
    while (excess > 0 && this.phaseOf(this.tasks[forgotten]!) === 'done') {
      this.tasksById.delete(this.tasks[forgotten]!.id);
      forgotten += 1;
      excess -= 1;
    }
    if (forgotten > 0) this.tasks.splice(0, forgotten);
  }

  /** Appends a created task to the journal, before its create is answered: a kill after that answer cannot lose it. */
  private journal(task: KitTask): void {
    if (this.journalPath === undefined) return;
    const entry: JournalEntry = { id: task.id, path: task.path, body: task.body, createdAt: task.createdAt, outcome: task.outcome, data: task.data };
    try {
      // Opened by its name each time, never held: a journal renamed over (another gateway started on
      // the same file rewrites it) or deleted goes on receiving the tasks created after.
      appendFileSync(this.journalPath, `${JSON.stringify(entry)}\n`);
    } catch {
      // The simulator goes on without it: a restart then forgets this task, as with no journal.
    }
  }

  /**
   * Takes back the tasks of the journal (`SimulatorOptions.journalPath`) created in the last
   * `JOURNAL_MAX_AGE_MS`, with their own creation time, outcome and data, so that their phase by
   * the clock is what it would have been. `resume` gets each one before it is known: it restores
   * what the provider's simulator keeps beside the task and re-arms what is left of its
   * lifecycle (`resumeTransitions`), and says false for a task it cannot answer for (which is
   * dropped). Lines that are not tasks are skipped. The journal is then rewritten with only the
   * tasks taken back (a new file, renamed over it). Once, before any task is created; returns
   * the tasks taken back, oldest first.
   */
  restoreJournal(resume: (task: KitTask) => boolean): KitTask[] {
    const path = this.journalPath;
    if (path === undefined || this.journalRead) return [];
    this.journalRead = true;
    let text: string;
    try {
      text = readJournalTail(path);
    } catch {
      return [];
    }
    const oldest = this.clock.now() - JOURNAL_MAX_AGE_MS;
    const restored: KitTask[] = [];
    const kept: string[] = [];
    for (const line of text.split('\n')) {
      const entry = journalEntryOf(line);
      if (!entry || entry.createdAt < oldest || this.tasksById.has(entry.id)) continue;
      const task: KitTask = { ...entry, status: '' };
      let answerable: boolean;
      try {
        answerable = resume(task);
      } catch {
        answerable = false;
      }
      if (!answerable) continue;
      this.tasks.push(task);
      this.tasksById.set(task.id, task);
      restored.push(task);
      kept.push(line);
    }
    const temporary = `${path}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, kept.map((line) => `${line}\n`).join(''));
      renameSync(temporary, path);
    } catch {
      rmSync(temporary, { force: true });
    }
    return restored;
  }

  findTask(id: string): KitTask | undefined {
    return this.tasksById.get(id);
  }

  /**
   * Where a task is in its life at the current clock time, and never behind what a transition
   * timer already announced: real timers may fire when the clock still reads a millisecond short.
   */
  phaseOf(task: KitTask): SimulatedPhase {
    const age = this.clock.now() - task.createdAt;
    const byClock: SimulatedPhase =
      age < this.queuedMs ? 'queued' : age < this.queuedMs + this.processingMs ? 'processing' : 'done';
    return task.reached && PHASE_ORDER[task.reached] > PHASE_ORDER[byClock] ? task.reached : byClock;
  }

  /**
   * Calls `onPhase` when the task starts processing and when it is done, counted from its
   * creation on the injected clock; with `after`, only for the phases it reaches later than that.
   */
  scheduleTransitions(task: KitTask, onPhase: (phase: SimulatedPhase) => void, after?: number): void {
    const now = this.clock.now();
    const processingAt = task.createdAt + this.queuedMs;
    const phases: [SimulatedPhase, number][] = [
      ['processing', processingAt],
      ['done', processingAt + this.processingMs],
    ];
    for (const [phase, at] of phases) {
      if (after !== undefined && at <= after) continue;
      this.clock.setTimeout(() => this.announce(task, phase, onPhase), Math.max(0, at - now));
    }
  }

  /**
   * For a task taken back from the journal: calls `onPhase` for the phases it has not reached
   * yet, when it reaches them. Phases it went through before are not announced again.
   */
  resumeTransitions(task: KitTask, onPhase: (phase: SimulatedPhase) => void): void {
    this.scheduleTransitions(task, onPhase, this.clock.now());
  }

  private announce(task: KitTask, phase: SimulatedPhase, onPhase: (phase: SimulatedPhase) => void): void {
    if (this.closed) return;
    task.reached = phase;
    onPhase(phase);
  }

  /**
   * Deletes the result files of a task (its URL then answers 404), as a provider does when its
   * retention runs out.
   */
  expireResult(taskId: string): void {
    this.expiredResults.add(taskId);
  }

  /**
   * Whether the file named `base` (`<task id>` or `<task id>-<n>`) is gone: deleted on purpose,
   * or older than the provider's documented lifetime (`SimulatorOptions.resultLifetimeMs`).
   */
  private resultIsGone(base: string): boolean {
    const taskId = this.findTask(base) ? base : base.replace(/-\d+$/, '');
    if (this.expiredResults.has(taskId)) return true;
    const lifetime = this.options.resultLifetimeMs;
    const task = this.findTask(taskId);
    return lifetime !== undefined && task !== undefined && this.clock.now() > task.createdAt + this.queuedMs + this.processingMs + lifetime;
  }

  /** A URL under this simulator that serves a playable result file. */
  resultUrl(taskId: string, kind: 'mp4' | 'png'): string {
    return `${this.publicUrl}${SIM_FILES_PATH}/${encodeURIComponent(taskId)}.${kind}`;
  }

  /**
   * POSTs `body` about `taskId` to `url` with `headers`; retries a few times with backoff on the
   * injected clock when the receiver does not answer 2xx, as real providers do. Each try and its
   * answer is recorded (`callbacks`).
   */
  deliver(url: string, body: string, headers: Record<string, string>, taskId = '', attempt = 1): void {
    if (this.closed) return;
    const record: SimulatedCallback = { url, task_id: taskId, attempt, sent_at: this.clock.now(), status: null, detail: null };
    this.callbacks.push(record);
    if (this.callbacks.length > MAX_LOGGED_CALLBACKS) this.callbacks.splice(0, this.callbacks.length - MAX_LOGGED_CALLBACKS);
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      signal: AbortSignal.timeout(5_000),
    })
      .then(async (response) => {
        record.status = response.status;
        const text = await response.text().catch(() => '');
        if (!response.ok) {
          record.detail = detailOf(text);
          throw new Error(`callback answered ${response.status}`);
        }
      })
      .catch((error: unknown) => {
        if (record.status === null) {
          const cause = (error as { cause?: { code?: unknown } }).cause;
          record.detail = typeof cause?.code === 'string' ? cause.code : error instanceof Error ? error.name : 'error';
        }
        if (attempt >= 4) return;
        this.clock.setTimeout(() => this.deliver(url, body, headers, taskId, attempt + 1), 1_000 * 2 ** attempt);
      });
  }
}

/**
 * The `ProviderSimulator` surface every simulator shares, served by its kit; a provider's
 * simulator extends this and only adds its routes to `kit.app`.
 */
export abstract class KitSimulator implements ProviderSimulator {
  protected readonly kit: SimulatorKit;

  constructor(
    readonly providerId: string,
    options: SimulatorOptions,
  ) {
    this.kit = new SimulatorKit(providerId, options);
  }

  get tasks(): readonly SimulatedTask[] {
    return this.kit.tasks;
  }

  get requests(): readonly { method: string; path: string; at: number }[] {
    return this.kit.requests;
  }

  get callbacks(): readonly SimulatedCallback[] {
    return this.kit.callbacks;
  }

  /** Takes back the journal's tasks (`SimulatorOptions.journalPath`), then listens. */
  listen(port?: number, host?: string): Promise<string> {
    this.kit.restoreJournal((task) => this.resume(task));
    return this.kit.listen(port, host);
  }

  /**
   * Makes a task taken back from the journal answer as it would have in the simulator that
   * created it: restores what the simulator keeps beside the kit's task, and re-arms what is
   * left of its lifecycle (`kit.resumeTransitions`). False when it cannot answer for the task
   * (its data is not what this simulator writes): the task is dropped. A simulator that does
   * not override this takes none back.
   */
  protected resume(_task: KitTask): boolean {
    return false;
  }

  close(): Promise<void> {
    return this.kit.close();
  }

  injectFault(fault: SimulatedFault): void {
    this.kit.injectFault(fault);
  }

  clearFaults(): void {
    this.kit.clearFaults();
  }

  setOutcome(outcome: SimulatedOutcome, times?: number): void {
    this.kit.setOutcome(outcome, times);
  }

  expireResult(taskId: string): void {
    this.kit.expireResult(taskId);
  }

  onRequest(listener: (request: { method: string; path: string; at: number }) => void): void {
    this.kit.onRequest(listener);
  }
}

/** A random id in the style of `prefix` + hex. */
export function randomId(prefix = '', bytes = 12): string {
  return `${prefix}${randomBytes(bytes).toString('hex')}`;
}

/** A random RFC 4122 v4 UUID (Freepik task ids). */
export function randomUuid(): string {
  return crypto.randomUUID();
}

/*
 * An http(s) URI by RFC 3986's grammar, as a validator of `format: uri` reads one: the scheme,
 * `//`, an optional userinfo, a host (an IPv6 literal in brackets, or a non-empty reg-name or
 * IPv4 address), an optional port, then path, query and fragment of a URI's characters, each
 * `%` starting an escape. Written from the RFC's ABNF, apart from the gateway's own check, so
 * that the simulators judge what the adapters send as the upstreams would.
 */
const PCHAR = String.raw`(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})`;
const REG_NAME_CHAR = String.raw`(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})`;
const USERINFO_CHAR = String.raw`(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})`;
const HTTP_URI = new RegExp(
  String.raw`^https?://(?:${USERINFO_CHAR}*@)?(?:\[[0-9A-Fa-f:.]+\]|${REG_NAME_CHAR}+)(?::[0-9]*)?(?:/${PCHAR}*)*(?:\?(?:${PCHAR}|[/?])*)?(?:#(?:${PCHAR}|[/?])*)?$`,
  'i',
);

/** True when `value` is an http(s) URI as RFC 3986 writes one (`format: uri` with an http(s) scheme). */
export function isHttpUri(value: unknown): value is string {
  return typeof value === 'string' && HTTP_URI.test(value);
}
