/**
 * The model of following tasks (event streams and `?wait=`): see test/http/follow-model.test.ts.
 */import fc from 'fast-check';
import { expect, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { OTHER_TENANT_KEY, testConfig, type TestGateway } from './harness.js';
import { openEventStream } from './event-stream.js';


/** Cases the runs reached (the default run asserts it reached each). */
const reached = new Set<string>();

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const RANK: Record<string, number> = { queued: 0, processing: 1, succeeded: 2, failed: 2, canceled: 2 };
const request = { model: 'kling-v3', prompt: 'a heron in the reeds', duration: 5, routing: { providers: ['kling3api'] } };
const CONFIG = {
  providers: { kling3api: { max_in_flight: 1 } },
  sandbox: { queued_ms: 1_000, processing_ms: 120_000 },
  tasks: { deadline_ms: 300_000 },
};

/** `promise`, or a failure naming `what` after `ms` of real time (a hang is a finding, not a timeout of the whole test). */
function within<T>(promise: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no end after ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

interface StreamEvent {
  id: number;
  status: string;
  data: any;
  connection: number;
}

/** One client following one task, as an EventSource would: it reconnects with the last id it read. */
class Stream {
  events: StreamEvent[] = [];
  connection = 0;
  /** The status it holds without an event (a resume with an id at or past the task's status). */
  baseline: string | undefined;
  open = false;
  /** Whether the client itself dropped it (it resumes only when a step says so). */
  dropped = false;
  finished = false;
  statuses: number[] = [];
  private controller = new AbortController();
  reading: Promise<void> = Promise.resolve();
  constructor(
    readonly task: number,
    readonly label: string,
  ) {}

  /** The id it sends when it reconnects: the last it read, or the one it was opened with. */
  resumeId: string | undefined;
  get lastId(): number | undefined {
    return this.events.at(-1)?.id;
  }
  get known(): string | undefined {
    return this.events.at(-1)?.status ?? this.baseline;
  }

  async connect(url: string, id: string, lastEventId: string | undefined): Promise<number> {
    this.controller = new AbortController();
    this.resumeId = lastEventId;
    const connection = ++this.connection;
    const stream = await openEventStream(url, id, {
      headers: lastEventId !== undefined ? { 'last-event-id': lastEventId } : {},
      signal: this.controller.signal,
      onEvent: (event) => {
        this.events.push({ id: Number(event.id), status: event.event, data: event.data, connection });
        this.resumeId = event.id;
      },
    });
    this.statuses.push(stream.status);
    if (stream.status !== 200) return stream.status;
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    this.open = true;
    this.reading = stream.ended().then(() => {
      expect(stream.rest(), 'a stream ends between events').toBe('');
      this.open = false;
    });
    return 200;
  }

  drop(): Promise<void> {
    this.dropped = true;
    this.controller.abort();
    return this.reading;
  }
}

interface PendingWait {
  task: number;
  seconds: number;
  startedAt: number;
  statusAtStart: string;
  answer: { status: number; body: any } | undefined;
  checked?: boolean;
  stopped?: boolean;
  promise: Promise<void>;
}

type Step =
  | { kind: 'create'; fail: boolean }
  | { kind: 'advance'; ms: number }
  | { kind: 'cancel'; pick: number }
  | { kind: 'open'; pick: number; mode: 'fresh' | 'zero' | 'garbage' | 'ahead' }
  | { kind: 'drop'; pick: number }
  | { kind: 'resume'; pick: number }
  | { kind: 'wait'; pick: number; seconds: number }
  | { kind: 'foreign'; pick: number }
  | { kind: 'badWait'; pick: number; value: string }
  | { kind: 'restart' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('create' as const), fail: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(500, 1_000, 3_000, 10_000, 25_000, 60_000) }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat(5) }), weight: 1 },
  {
    arbitrary: fc.record({ kind: fc.constant('open' as const), pick: fc.nat(5), mode: fc.constantFrom('fresh' as const, 'fresh' as const, 'zero' as const, 'garbage' as const, 'ahead' as const) }),
    weight: 4,
  },
  { arbitrary: fc.record({ kind: fc.constant('drop' as const), pick: fc.nat(9) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('resume' as const), pick: fc.nat(9) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('wait' as const), pick: fc.nat(5), seconds: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 30, max: 60 })) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('foreign' as const), pick: fc.nat(5) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('badWait' as const), pick: fc.nat(5), value: fc.constantFrom('61', '-1', '1.5', 'abc', '', '0x3') }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('restart' as const) }), weight: 1 },
);

/** The gateways of a run: `gw` serves the clients, `writer` the creates, cancels and worker passes (the same one, or another replica). */
export interface FollowGateways {
  gw: TestGateway;
  writer: TestGateway;
  close(): Promise<void>;
}

class World {
  gw!: TestGateway;
  writer!: TestGateway;
  gateways!: FollowGateways;
  ids: string[] = [];
  streams: Stream[] = [];
  waits: PendingWait[] = [];
  /** Per task, every status `GET` showed after a step, in order. */
  seen: string[][] = [];
  upstreamCalls = 0;
  log: string[] = [];
  constructor(
    readonly clock: ManualClock,
    readonly start: () => Promise<FollowGateways>,
  ) {}

  async startAll(): Promise<void> {
    this.gateways = await this.start();
    this.gw = this.gateways.gw;
    this.writer = this.gateways.writer;
  }

  async get(index: number): Promise<any> {
    const answer = await this.gw.get(this.ids[index]!);
    expect(answer.status).toBe(200);
    return answer.body;
  }

  /** Reads only: no upstream call may happen meanwhile. */
  async readOnly<T>(read: () => Promise<T>): Promise<T> {
    const before = this.upstreamCalls;
    const result = await read();
    expect(this.upstreamCalls, 'a client read caused an upstream call').toBe(before);
    return result;
  }

  async openStream(stream: Stream, lastEventId: string | undefined): Promise<void> {
    const id = this.ids[stream.task]!;
    const before = await this.get(stream.task);
    const record = (await this.gw.gateway.store.getTask(id))!;
    const numeric = lastEventId !== undefined && /^\d+$/.test(lastEventId) ? Number(lastEventId) : undefined;
    // README: a client that names a version from the one the task took its status at has that status.
    const alreadyRead = numeric !== undefined && (record.status_version ?? record.version) <= numeric;
    const has = stream.known;
    if (stream.events.length > 0 && numeric === stream.lastId) expect(alreadyRead, `${stream.label} resumes after ${numeric}`).toBe(has === before.status);
    const count = stream.events.length;
    const status = await this.readOnly(() => within(stream.connect(this.gw.url, id, lastEventId), `opening ${stream.label}`));
    if (alreadyRead && TERMINAL.has(before.status)) {
      expect(status, `${stream.label} after the terminal event`).toBe(204);
      reached.add('204 after the terminal event');
      stream.finished = true;
      return;
    }
    expect(status).toBe(200);
    if (alreadyRead) {
      // Nothing until the task changes.
      stream.baseline = before.status;
      reached.add(stream.events.length > 0 ? 'resume with the current status' : 'id ahead of the task');
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(stream.events.length, `${stream.label} sent what it has`).toBe(count);
      return;
    }
    // Otherwise its first event on this connection is the task as it is.
    await vi.waitFor(() => expect(stream.events.length).toBeGreaterThan(count), { timeout: 10_000, interval: 5 });
    const first = stream.events[count]!;
    expect(first.status, `first event of ${stream.label}`).toBe(before.status);
    expect(first.data.status).toBe(before.status);
  }

  /** After each step: every stream caught up with `GET`, every wait answered when it should be. */
  async check(final = false): Promise<void> {
    const now = await Promise.all(this.ids.map((_, index) => this.get(index)));
    now.forEach((task, index) => {
      const seen = (this.seen[index] ??= []);
      if (seen.at(-1) !== task.status) seen.push(task.status);
      for (let i = 1; i < seen.length; i++) expect(RANK[seen[i]!]).toBeGreaterThan(RANK[seen[i - 1]!]!);
    });
    for (const stream of this.streams) {
      const task = now[stream.task];
      if (stream.open && !stream.dropped) {
        await vi.waitFor(() => expect(stream.known, `${stream.label} caught up`).toBe(task.status), { timeout: 10_000, interval: 5 });
        if (TERMINAL.has(task.status)) {
          // Ends right after the terminal event.
          await Promise.race([stream.reading, new Promise((_, reject) => setTimeout(() => reject(new Error(`${stream.label} still open after its terminal event`)), 10_000))]);
          expect(stream.open).toBe(false);
          stream.finished = true;
        }
      }
      const events = stream.events;
      for (let i = 1; i < events.length; i++) {
        expect(events[i]!.id, `${stream.label} ids`).toBeGreaterThan(events[i - 1]!.id);
        expect(RANK[events[i]!.status], `${stream.label} order ${events.map((e) => e.status)}`).toBeGreaterThan(RANK[events[i - 1]!.status]!);
      }
      const afterBaseline = stream.baseline ? events.filter((e) => e.connection === stream.connection) : [];
      if (afterBaseline.length > 0) expect(RANK[afterBaseline[0]!.status]).toBeGreaterThan(RANK[stream.baseline!]!);
      // A processing the task went through is not skipped by a stream that saw it queued.
      const statuses = events.map((e) => e.status);
      const from = stream.baseline ?? statuses[0];
      const last = statuses.at(-1);
      if (from === 'queued' && last && TERMINAL.has(last) && task.provider_task_id) expect(statuses, `${stream.label} skipped processing`).toContain('processing');
      const terminal = events.find((e) => TERMINAL.has(e.status));
      if (terminal) {
        expect(events.at(-1)).toBe(terminal);
        expect(terminal.data).toMatchObject({ id: task.id, status: task.status, error: task.error, provider_task_id: task.provider_task_id });
        expect(terminal.data.outputs).toEqual(task.outputs);
        expect(stream.open).toBe(false);
      }
    }
    for (const wait of this.waits) {
      if (wait.checked) continue;
      const task = now[wait.task];
      const due = TERMINAL.has(task.status) || this.clock.now() - wait.startedAt >= wait.seconds * 1000 || final;
      if (due) {
        await Promise.race([wait.promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`wait=${wait.seconds} on ${task.id} (${task.status}) not answered`)), 10_000))]);
      }
      if (wait.answer) {
        wait.checked = true;
        const answer = wait.answer as { status: number; body: any };
        expect(answer.status).toBe(200);
        expect(answer.body.id).toBe(task.id);
        expect(RANK[answer.body.status]).toBeGreaterThanOrEqual(RANK[wait.statusAtStart]!);
        expect(RANK[answer.body.status]).toBeLessThanOrEqual(RANK[task.status]!);
        reached.add(TERMINAL.has(answer.body.status) ? (wait.statusAtStart === answer.body.status ? 'wait on a finished task' : 'wait answered by the end') : 'wait answered by its N');
        if (!TERMINAL.has(answer.body.status) && !final) {
          // Answered before it ended: only once its N seconds passed (or a stop).
          expect(this.clock.now() - wait.startedAt >= wait.seconds * 1000 || wait.stopped === true, `wait=${wait.seconds} on ${task.id} answered ${answer.body.status} after ${this.clock.now() - wait.startedAt} ms`).toBe(true);
        }
        if (TERMINAL.has(answer.body.status)) expect(answer.body).toMatchObject({ status: task.status, error: task.error, outputs: task.outputs });
      } else {
        expect(due, `wait=${wait.seconds} on ${task.id} answered`).toBe(false);
      }
    }
  }

  async act(s: Step): Promise<void> {
    const pickTask = (n: number) => (this.ids.length > 0 ? n % this.ids.length : undefined);
    switch (s.kind) {
      case 'create': {
        if (this.ids.length >= 4) return;
        this.writer.simulator('kling3api').setOutcome(s.fail ? 'fail' : 'succeed', 1);
        const created = await this.writer.create({ ...request, prompt: `${request.prompt} ${this.ids.length}` });
        expect(created.status).toBe(202);
        this.ids.push(created.body.id);
        this.log.push(`create ${created.body.id} ${created.body.status}${s.fail ? ' (fails)' : ''}`);
        return;
      }
      case 'advance':
        await this.writer.advance(s.ms);
        if (this.writer !== this.gw) {
          // The other replica hears of the changes and may start a pass of its own: let it finish
          // (no upstream call for 100 ms), so no call of the workers is counted against a read.
          await this.gw.gateway.runOnce();
          for (let calls = -1, i = 0; calls !== this.upstreamCalls && i < 20; i++) {
            calls = this.upstreamCalls;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        this.log.push(`advance ${s.ms}`);
        return;
      case 'cancel': {
        const task = pickTask(s.pick);
        if (task === undefined) return;
        const answer = await this.writer.request('POST', `/v1/videos/${this.ids[task]}/cancel`);
        expect([200, 409]).toContain(answer.status);
        this.log.push(`cancel ${task} → ${answer.status}`);
        reached.add(`cancel ${answer.status}`);
        return;
      }
      case 'open': {
        const task = pickTask(s.pick);
        if (task === undefined) return;
        const stream = new Stream(task, `stream ${this.streams.length} (${s.mode}) of task ${task}`);
        this.streams.push(stream);
        const lastEventId = { fresh: undefined, zero: '0', garbage: 'yesterday', ahead: '999999999' }[s.mode];
        this.log.push(`open ${stream.label}`);
        await this.openStream(stream, lastEventId);
        return;
      }
      case 'drop': {
        const open = this.streams.filter((stream) => stream.open);
        const stream = open[s.pick % Math.max(1, open.length)];
        if (!stream) return;
        this.log.push(`drop ${stream.label}`);
        await stream.drop();
        return;
      }
      case 'resume': {
        const dropped = this.streams.filter((stream) => !stream.open && !stream.finished);
        const stream = dropped[s.pick % Math.max(1, dropped.length)];
        if (!stream) return;
        stream.dropped = false;
        this.log.push(`resume ${stream.label} after ${stream.resumeId}`);
        await this.openStream(stream, stream.resumeId);
        return;
      }
      case 'wait': {
        const task = pickTask(s.pick);
        if (task === undefined) return;
        const before = await this.get(task);
        const wait: PendingWait = { task, seconds: s.seconds, startedAt: this.clock.now(), statusAtStart: before.status, answer: undefined, promise: Promise.resolve() };
        const calls = this.upstreamCalls;
        const followers = this.followersOf(this.gw, task);
        wait.promise = this.gw.request('GET', `/v1/videos/${this.ids[task]}?wait=${s.seconds}`).then((answer) => {
          wait.answer = answer;
        });
        this.waits.push(wait);
        this.log.push(`wait=${s.seconds} on ${task} (${before.status})`);
        if (s.seconds === 0 || TERMINAL.has(before.status)) {
          // Answered at once.
          await wait.promise;
          expect(wait.answer!.body.status).toBe(before.status);
        } else {
          // Held by the gateway before the clock moves on: its N seconds start there (on a busy
          // machine the request can take longer to arrive than any fixed pause).
          await vi.waitFor(() => expect(this.followersOf(this.gw, task), 'the wait is held').toBeGreaterThan(followers), { timeout: 15_000, interval: 5 });
        }
        expect(this.upstreamCalls).toBe(calls);
        return;
      }
      case 'foreign': {
        const task = pickTask(s.pick);
        if (task === undefined) return;
        await this.readOnly(async () => {
          for (const path of [`/v1/videos/${this.ids[task]}?wait=2`, `/v1/videos/${this.ids[task]}/events`, `/v1/videos/${this.ids[task]}`]) {
            const answer = await this.gw.request('GET', path, undefined, {}, OTHER_TENANT_KEY);
            expect(answer.status, path).toBe(404);
          }
        });
        return;
      }
      case 'badWait': {
        const task = pickTask(s.pick);
        if (task === undefined) return;
        const answer = await this.readOnly(() => this.gw.request('GET', `/v1/videos/${this.ids[task]}?wait=${encodeURIComponent(s.value)}`));
        expect(answer.status, `wait=${s.value}`).toBe(400);
        expect(answer.body.errors?.[0]?.path).toBe('wait');
        return;
      }
      case 'restart': {
        this.log.push('restart');
        const pending = this.waits.filter((wait) => !wait.answer);
        for (const wait of pending) wait.stopped = true;
        await within(this.gateways.close(), 'the graceful stop');
        // Every stream ended cleanly, every wait answered.
        await within(Promise.all(this.streams.map((stream) => stream.reading)), 'the streams at the stop');
        await within(Promise.all(pending.map((wait) => wait.promise)), 'the waits at the stop');
        for (const stream of this.streams) expect(stream.open).toBe(false);
        await within(this.startAll(), 'the restart');
        // The clients that were following reconnect, with the last id they read.
        for (const stream of this.streams) {
          if (stream.dropped || stream.finished) continue;
          const last = stream.events.at(-1);
          if (last && TERMINAL.has(last.status)) continue;
          reached.add('stream resumed after a restart');
          await this.openStream(stream, stream.resumeId);
        }
        return;
      }
    }
  }

  /** Nothing follows any task any more. */
  leaks(): void {
    for (const gw of new Set([this.gw, this.writer])) this.leaksOf(gw);
  }

  /** How many follow task `index` on `gw` now (its event streams and waits). */
  private followersOf(gw: TestGateway, index: number): number {
    return (gw.gateway.engine.events as unknown as { emitter: { listenerCount(name: string): number } }).emitter.listenerCount(this.ids[index]!);
  }

  private leaksOf(gw: TestGateway): void {
    for (let index = 0; index < this.ids.length; index++) expect(this.followersOf(gw, index), `listeners of ${this.ids[index]}`).toBe(0);
    const service = gw.gateway.service as unknown as { watchEnds: Set<unknown>; stopping: AbortController };
    expect(service.watchEnds.size, 'watches').toBe(0);
    const signal = service.stopping.signal;
    const key = Object.getOwnPropertySymbols(signal).find((symbol) => symbol.description === 'kDependantSignals');
    expect(key ? ((signal as unknown as Record<symbol, Set<unknown>>)[key]?.size ?? 0) : 0, 'signals on the stop signal').toBe(0);
  }
}

/** What a run needs from its test: gateways on a fresh database (`start` again is a restart), and removing it. */
export interface FollowRun {
  start(): Promise<FollowGateways>;
  remove(): Promise<void>;
}

/** Runs the model; `run` sets up each run's database and gateways on the model's clock and simulators. */
export async function runFollowModel(options: {
  runs: number;
  seed: number;
  assertReached: boolean;
  run(world: { clock: ManualClock; endpoints: ReadonlyMap<string, ProviderEndpoint>; simulators: Map<string, ProviderSimulator>; config: Record<string, unknown> }): Promise<FollowRun>;
}): Promise<void> {
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 8, maxLength: 30 }), async (drawn) => {
        const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
        const config = testConfig(CONFIG);
        const sandbox = await startSandbox(config, PROVIDERS, clock);
        const run = await options.run({ clock, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config: CONFIG });
        const world = new World(clock, run.start);
        for (const simulator of sandbox.simulators.values()) simulator.onRequest(() => world.upstreamCalls++);
        await world.startAll();
        try {
          await world.act({ kind: 'create', fail: false });
          await world.act({ kind: 'open', pick: 0, mode: 'fresh' });
          for (const s of drawn) {
            await within(world.act(s), JSON.stringify(s), 15_000);
            await within(world.check(), 'the checks', 15_000);
            steps++;
          }
          // Every task ends (the deadline at the latest); every follower sees it.
          for (let i = 0; i < 12; i++) {
            // A client waits for the end of each task still running.
            for (const [index, task] of (await Promise.all(world.ids.map((_, index) => world.get(index)))).entries())
              if (!TERMINAL.has(task.status) && i % 2 === 0) await world.act({ kind: 'wait', pick: index, seconds: 60 });
            await world.act({ kind: 'advance', ms: 30_000 });
            await world.check();
          }
          for (const task of await Promise.all(world.ids.map((_, index) => world.get(index)))) {
            expect(TERMINAL.has(task.status)).toBe(true);
            reached.add(`ended ${task.status}${task.error ? ` ${task.error.code}` : ''}`);
          }
          for (const stream of world.streams) {
            const statuses = stream.events.map((e) => e.status).join('>');
            if (statuses.startsWith('queued')) reached.add(`stream ${statuses}`);
          }
          await world.check(true);
          // An EventSource reconnects after every close, the one after the terminal event too: 204 stops it.
          for (const stream of world.streams) {
            const last = stream.events.at(-1);
            if (last && TERMINAL.has(last.status)) await world.openStream(stream, stream.resumeId);
          }
          for (const stream of world.streams) if (stream.open) await stream.drop();
          await new Promise((resolve) => setTimeout(resolve, 20));
          await vi.waitFor(() => world.leaks(), { timeout: 10_000, interval: 10 });
          if (process.env.FOLLOW_MODEL_LOG) console.log(world.log.join(' | '));
        } catch (error) {
          console.log(`${world.log.join('\n')}\n=> ${String(error)}`);
          throw error;
        } finally {
          for (const stream of world.streams) if (stream.open) await stream.drop().catch(() => undefined);
          await world.gateways?.close().catch(() => undefined);
          await sandbox.close().catch(() => undefined);
          await run.remove().catch(() => undefined);
        }
      }),
      { seed: options.seed, numRuns: options.runs, endOnFailure: Boolean(process.env.FOLLOW_MODEL_NO_SHRINK) },
    );
    expect(steps).toBeGreaterThan(0);
    if (process.env.FOLLOW_MODEL_LOG) console.log([...reached].sort().join('\n'));
    if (options.assertReached) {
      for (const want of [
        '204 after the terminal event',
        'id ahead of the task',
        'resume with the current status',
        'wait answered by its N',
        'wait answered by the end',
        'stream resumed after a restart',
        'cancel 200',
        'stream queued>processing>succeeded',
      ])
        expect(reached, want).toContain(want);
    }
}
