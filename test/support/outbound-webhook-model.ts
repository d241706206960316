/**
 * The model-based test of outbound webhook delivery (`test/gateway/outbound-webhook-model.test.ts`
 * describes it): the receiver and its scripts, the world, its steps and the checks made after each,
 * shared by the one-gateway model on SQLite and its replicas variant on PostgreSQL
 * (`outbound-webhook-model-replicas-postgres.test.ts`). A world runs `replicas` gateways on one
 * database, the same simulators and the same manual clock; each step names the replica it goes
 * through (`via`; a worker pass also on every replica at once), and a restart stops one replica
 * while the others keep working.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { expect, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { deliveryBackoffMs } from '../../src/core/tasks/outbound-webhooks.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import type { Store } from '../../src/store/database.js';
import { OTHER_TENANT_KEY, TENANT_KEY, TENANT_WEBHOOK_SECRET, TestGateway, testConfig } from './harness.js';
import { OTHER_WEBHOOK_SECRET } from './webhook-receiver.js';
import { startModelGateway } from './task-life-model.js';

/** Each try's time limit (real time): what the slow scripts outlast. */
const TIMEOUT_MS = 600;
export const MAX_ATTEMPTS = 4;
/** How long a claim leases a delivery (`webhooks.timeout_ms` + 5 s, README *Outbound webhooks*). */
export const DELIVERY_LEASE_MS = TIMEOUT_MS + 5_000;
const SECRETS = { acme: TENANT_WEBHOOK_SECRET, other: OTHER_WEBHOOK_SECRET } as const;
const KEYS = { acme: TENANT_KEY, other: OTHER_TENANT_KEY } as const;
type Tenant = keyof typeof SECRETS;
const STATUS_OF: Record<string, string> = { 'video.processing': 'processing', 'video.succeeded': 'succeeded', 'video.failed': 'failed' };

/** How the receiver answers one POST. */
type Answer =
  | { kind: 'status'; status: number }
  | { kind: 'throttle'; status: 429 | 503; seconds: number; asDate: boolean }
  | { kind: 'slow' }
  | { kind: 'slowBody' }
  | { kind: 'reset' }
  | { kind: 'close' };

const answerArb: fc.Arbitrary<Answer> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(200, 204).map((status) => ({ kind: 'status' as const, status })) },
  { weight: 3, arbitrary: fc.constantFrom(307, 400, 404, 500, 502).map((status) => ({ kind: 'status' as const, status })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'status' as const, status: 410 }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('throttle' as const), status: fc.constantFrom(429 as const, 503 as const), seconds: fc.constantFrom(1, 30, 120, 600, 7_200), asDate: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constantFrom<Answer>({ kind: 'slow' }, { kind: 'slowBody' }, { kind: 'reset' }, { kind: 'close' }) },
);

function describeAnswer(answer: Answer): string {
  switch (answer.kind) {
    case 'status':
      return String(answer.status);
    case 'throttle':
      return `${answer.status} Retry-After ${answer.seconds}s${answer.asDate ? ' (date)' : ''}`;
    default:
      return answer.kind;
  }
}

/** The status the gateway gets from an answer (none: a timeout or a connection error). */
function statusSeen(answer: Answer): number | null {
  if (answer.kind === 'status' || answer.kind === 'throttle') return answer.status;
  return answer.kind === 'slowBody' ? 200 : null;
}

/** One POST the receiver got. */
interface Seen {
  id: string;
  taskId: string;
  type: string;
  body: string;
  /** The gateway's clock when it arrived. */
  at: number;
  /** The model's worker pass it came in. */
  pass: number;
  answer: Answer;
  /** Sent by a process that died before it recorded the answer. */
  unrecorded: boolean;
  /** The `Retry-After` the answer carried. */
  retryAfter?: string;
}

/**
 * Where a run's replicas keep their data: the database URL of their config, and what the variant
 * does beyond what a gateway does on its own.
 */
export interface WebhookModelDatabase {
  url: string;
  /** A store for each replica's start (a small pool of the run's own); absent, the gateway opens `url`. */
  openStore?(): Promise<Store>;
  /**
   * How long after a try a process died in may another send it again: 0 on SQLite (the next start
   * takes over every lease), the delivery's lease where replicas share the database.
   */
  takeoverMs: number;
  /** Ends a dead replica's connections from the server's side, as a dead process's vanish (before its pool is closed). */
  vanish?(store: Store): Promise<void>;
  /** Drops what the run made. */
  remove(): Promise<void>;
}

interface TaskModel {
  id: string;
  tenant: Tenant;
  outcome: 'succeed' | 'fail';
}

class World {
  readonly tasks = new Map<string, TaskModel>();
  readonly seen: Seen[] = [];
  readonly log: string[] = [];
  readonly problems: string[] = [];
  /** Each tenant's webhook secrets as configured now (newest first), and those retired. */
  readonly secrets: Record<Tenant, string[]> = { acme: [SECRETS.acme], other: [SECRETS.other] };
  readonly retired: string[] = [];
  /** The worker pass after which each rotation took effect. */
  readonly rotations: { tenant: Tenant; pass: number }[] = [];
  /** The running replicas, by index, and the stores the test opened for them. */
  readonly replicas: TestGateway[] = [];
  private readonly stores: (Store | undefined)[] = [];
  private starts = 0;
  /** POSTs whose answer has not ended yet (the connection still open), by `webhook-id`. */
  private readonly open = new Map<string, Seen[]>();
  pass = 0;
  /** The receiver holds every POST (a process about to die). */
  holding = false;
  readonly held: { seen: Seen; res: ServerResponse; socket: Socket }[] = [];
  private answerIndex = 0;
  readonly server: Server;
  url = '';

  constructor(
    readonly clock: ManualClock,
    readonly endpoints: ReadonlyMap<string, ProviderEndpoint>,
    readonly simulators: Map<string, ProviderSimulator>,
    readonly database: WebhookModelDatabase,
    readonly answers: Answer[],
    readonly replicaCount: number,
  ) {
    this.server = createServer((req, res) => this.receive(req, res));
  }

  /** The replica a step goes through (`via` of any size: taken modulo the number of replicas). */
  gw(via = 0): TestGateway {
    return this.replicas[via % this.replicas.length]!;
  }

  context(): string {
    return `\n${this.log.join('\n')}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }

  /** Starts every replica. */
  async startAll(): Promise<void> {
    for (let index = 0; index < this.replicaCount; index++) await this.start(index);
  }

  /** Replica `index` on the world's database, with the tenants' secrets as configured now. */
  async start(index: number): Promise<void> {
    const config = testConfig({
      database: { url: this.database.url },
      tenants: { acme: { webhook_secret: this.secrets.acme }, other: { webhook_secret: this.secrets.other } },
      webhooks: { allow_private_targets: true, max_attempts: MAX_ATTEMPTS, timeout_ms: TIMEOUT_MS },
      limits: { creates_per_minute: 100_000 },
    });
    const store = await this.database.openStore?.();
    this.starts += 1;
    const gateway = await startModelGateway(config, this.endpoints, this.clock, store ? { store, owner: `replica-${index}-start-${this.starts}` } : {}).catch(async (error: unknown) => {
      await store?.close();
      throw error;
    });
    const url = await gateway.listen(0, '127.0.0.1');
    gateway.setPublicUrl(url);
    this.replicas[index] = new TestGateway(gateway, url, this.clock, this.simulators, this.endpoints, config, false);
    this.stores[index] = store;
  }

  /** Stops replica `index` gracefully and closes its pool at once. */
  async stop(index: number): Promise<void> {
    const closed = this.replicas[index]!.close();
    await closed.finally(() => this.closeStore(index));
  }

  /** Closes the pool the test opened for replica `index` (if any). */
  async closeStore(index: number): Promise<void> {
    const store = this.stores[index];
    this.stores[index] = undefined;
    await store?.close();
  }

  /**
   * Replica `index` died: its listener, its notification channel and its connections vanish now
   * (the server ends them; the pool is closed), not at the end of the run. What it would write next
   * is made never to happen by the caller.
   */
  async bury(index: number): Promise<void> {
    const gateway = this.replicas[index]!.gateway;
    const internals = gateway as unknown as { listenerStop?: { close(): Promise<void> }; notifications?: { close(): Promise<void> } };
    await internals.listenerStop?.close().catch(() => undefined);
    await internals.notifications?.close().catch(() => undefined);
    const store = this.stores[index] ?? gateway.store.store;
    await this.database.vanish?.(store).catch(() => undefined);
    // A pass of the dead process may hold a connection it never gives back: the pool is not waited for long.
    await Promise.race([store.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1_000))]);
    this.stores[index] = undefined;
  }

  /** Closes every replica that runs (and the stores opened for them). */
  async close(): Promise<void> {
    for (const [index, replica] of this.replicas.entries()) {
      await replica.close().catch(() => undefined);
      await this.stores[index]?.close().catch(() => undefined);
      this.stores[index] = undefined;
    }
  }

  /** A worker pass on replica `via`, or on every replica at once (`via` equal to their number). */
  async runOnce(via = 0): Promise<void> {
    this.pass += 1;
    if (this.replicas.length > 1 && via % (this.replicas.length + 1) === this.replicas.length) {
      await Promise.all(this.replicas.map((replica) => replica.gateway.runOnce()));
    } else {
      await this.gw(via).gateway.runOnce();
    }
  }

  /** Lets what replicas start on their own settle (a dispatch pass on news from another replica). */
  async settle(): Promise<void> {
    if (this.replicas.length === 1) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (const replica of this.replicas) {
      const gateway = replica.gateway as unknown as { dispatcher: { idle(): Promise<void> }; tracker: { idle(): Promise<void> }; inbound: { idle(): Promise<void> } };
      await gateway.dispatcher.idle();
      await gateway.inbound.idle();
      await gateway.tracker.idle();
    }
  }

  private nextAnswer(): Answer {
    const answer = this.answers[this.answerIndex % this.answers.length]!;
    this.answerIndex += 1;
    return answer;
  }

  private receive(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = req.headers as Record<string, string>;
      if (req.url !== '/hooks') this.problems.push(`a POST to ${req.url}: a redirect followed`);
      const answer = this.nextAnswer();
      const seen = this.check(headers, body, answer);
      // On its way until its answer ends (or the sender gives up on it and closes the connection).
      const open = this.open.get(seen.id) ?? [];
      open.push(seen);
      this.open.set(seen.id, open);
      res.on('close', () => {
        const left = (this.open.get(seen.id) ?? []).filter((one) => one !== seen);
        if (left.length > 0) this.open.set(seen.id, left);
        else this.open.delete(seen.id);
      });
      if (this.holding) {
        this.held.push({ seen, res, socket: req.socket });
        return;
      }
      this.answer(res, req.socket, seen);
    });
  }

  /** Answers the POSTs held, by their scripts (`unrecorded`: their sender died), and holds no more. */
  answerHeld(unrecorded: boolean): void {
    this.holding = false;
    for (const one of this.held.splice(0)) {
      one.seen.unrecorded = unrecorded;
      this.answer(one.res, one.socket, one.seen);
    }
  }

  /** Answers a POST by its script. */
  answer(res: ServerResponse, socket: Socket, seen: Seen): void {
    const { answer } = seen;
    switch (answer.kind) {
      case 'status':
        // A redirect goes elsewhere on this receiver: a POST there would be one followed.
        res.writeHead(answer.status, answer.status === 307 ? { location: '/elsewhere' } : {}).end();
        return;
      case 'throttle': {
        const retryAfter = answer.asDate ? new Date(this.clock.now() + answer.seconds * 1000).toUTCString() : String(answer.seconds);
        seen.retryAfter = retryAfter;
        res.writeHead(answer.status, { 'retry-after': retryAfter }).end();
        return;
      }
      case 'slow':
        // Never answers: the gateway gives up at its time limit.
        return;
      case 'slowBody':
        // The status at once, the body never ends.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('working on it');
        return;
      case 'reset':
        socket.resetAndDestroy();
        return;
      case 'close':
        socket.end();
        return;
    }
  }

  /** What may be checked of one POST as it arrives: signature, timestamp, body, id, back-off. */
  private check(headers: Record<string, string>, body: string, answer: Answer): Seen {
    const now = this.clock.now();
    const problem = (text: string) => this.problems.push(`${text} (at ${new Date(now).toISOString()}, pass ${this.pass})`);
    let event: { type: string; timestamp: string; data: { id: string; status: string } } | undefined;
    try {
      event = JSON.parse(body);
    } catch {
      problem(`body not JSON: ${body.slice(0, 100)}`);
    }
    const id = headers['webhook-id'] ?? '';
    const taskId = event?.data?.id ?? '';
    const type = event?.type ?? '';
    const seen: Seen = { id, taskId, type, body, at: now, pass: this.pass, answer, unrecorded: false };
    const task = this.tasks.get(taskId);
    if (!task) {
      problem(`a delivery for ${taskId || 'no task'}, which the model did not make`);
      this.seen.push(seen);
      return seen;
    }
    // Standard Webhooks, with each secret the tenant has now, judged at the gateway's clock.
    const spy = vi.spyOn(Date, 'now').mockReturnValue(now);
    try {
      for (const [index, secret] of this.secrets[task.tenant].entries()) {
        try {
          new Webhook(secret).verify(body, headers);
        } catch (error) {
          problem(`${id} of ${taskId} does not verify with ${task.tenant}'s secret ${index + 1} of ${this.secrets[task.tenant].length}: ${String(error)}`);
        }
      }
      const other = task.tenant === 'acme' ? 'other' : 'acme';
      for (const secret of [...this.secrets[other], ...this.retired]) {
        expectThrows(() => new Webhook(secret).verify(body, headers), () => problem(`${id} verifies with the other tenant's or a retired secret`));
      }
    } finally {
      spy.mockRestore();
    }
    if (Math.abs(Number(headers['webhook-timestamp']) * 1000 - now) > 1_000) problem(`${id} timestamp ${headers['webhook-timestamp']} is not the try's time ${now / 1000}`);
    if (!(type in STATUS_OF)) problem(`${id}: unknown type ${type}`);
    else if (event!.data.status !== STATUS_OF[type]) problem(`${id}: ${type} carries status ${event!.data.status}`);
    if (typeof event?.timestamp !== 'string' || Number.isNaN(Date.parse(event.timestamp))) problem(`${id}: body timestamp ${event?.timestamp}`);

    const earlier = this.seen.filter((one) => one.id === id);
    for (const one of this.seen) {
      if (one.id !== id && one.taskId === taskId && one.type === type) problem(`${type} of ${taskId} sent as ${one.id} and as ${id}`);
    }
    // Never in flight twice: a try still on its way (within its lease: a dead sender's connection
    // outlives it here only because the test's clock runs ahead of real time) has no company.
    for (const one of this.open.get(id) ?? []) {
      if (now - one.at < this.database.takeoverMs) problem(`${id} (${type} of ${taskId}) sent while its try of ${new Date(one.at).toISOString()} was still on its way (in flight twice)`);
    }
    const first = earlier[0];
    if (first && (first.taskId !== taskId || first.type !== type || first.body !== body)) problem(`${id} carried ${first.type} of ${first.taskId}, now ${type} of ${taskId} (or another body)`);
    // Nothing after a recorded 2xx; the back-off, Retry-After or lease before the next try.
    const recorded = earlier.filter((one) => !one.unrecorded);
    const acked = recorded.find((one) => { const status = statusSeen(one.answer); return status !== null && status >= 200 && status < 300; });
    if (acked) problem(`${id} (${type} of ${taskId}) sent again after its recorded ${describeAnswer(acked.answer)} at ${new Date(acked.at).toISOString()}`);
    const last = earlier.at(-1);
    if (last) {
      let wait: number;
      // A try its sender died in: sent again once its lease ends (on SQLite the next start takes
      // over every lease at once: README *Configuration*, one process per file).
      if (last.unrecorded) wait = this.database.takeoverMs;
      else wait = retryWait(last, recorded.length);
      if (now - last.at < wait) problem(`${id} (${type} of ${taskId}) tried again ${now - last.at} ms after a try answered ${describeAnswer(last.answer)}${last.unrecorded ? ' (unrecorded)' : ''}; at least ${wait} ms is due`);
    }
    // Nothing of a task whose receiver answered 410 (recorded) in an earlier pass.
    const gone = this.seen.find((one) => one.taskId === taskId && !one.unrecorded && statusSeen(one.answer) === 410);
    if (gone && gone.pass < this.pass) problem(`${id} (${type} of ${taskId}) sent after the receiver answered 410 to ${gone.id}`);
    this.seen.push(seen);
    return seen;
  }

  /** The task's delivery records, as its tenant reads them. */
  async deliveries(task: TaskModel): Promise<any[]> {
    const answer = await this.gw().request('GET', `/v1/videos/${task.id}/webhooks`, undefined, {}, KEYS[task.tenant]);
    expect(answer.status, `webhooks of ${task.id}`).toBe(200);
    return answer.body.data;
  }
}

/**
 * How long after `last` (the `attempt`-th recorded try, failed) the next try is due: the back-off,
 * or the `Retry-After` a 429 or 503 asked when longer, never more than an hour (README).
 */
function retryWait(last: Seen, attempt: number): number {
  const backoff = deliveryBackoffMs(attempt);
  if (last.retryAfter === undefined) return backoff;
  const asked = /^\d+$/.test(last.retryAfter) ? Number(last.retryAfter) * 1000 : Date.parse(last.retryAfter) - last.at;
  return Math.max(backoff, Math.min(3_600_000, asked));
}

function expectThrows(action: () => unknown, otherwise: () => void): void {
  try {
    action();
  } catch {
    return;
  }
  otherwise();
}

/** What the runs went through, so that a model that no longer reaches a case is noticed. */
export const coverage = new Map<string, number>();
function tally(what: string): void {
  coverage.set(what, (coverage.get(what) ?? 0) + 1);
}

/** Counts, at the end of a run, the cases its deliveries went through. */
function tallyRun(seenOfTask: Seen[], record: { id: string; status: string; attempts: number; last_error: string | null }, rotatedAfter: number[]): void {
  const tries = seenOfTask.filter((one) => one.id === record.id);
  if (rotatedAfter.some((pass) => tries.some((one) => one.pass <= pass) && tries.some((one) => one.pass > pass))) tally('a secret rotated between tries');
  if (record.status === 'delivered' && tries.length > 1) tally('delivered after a failed try');
  if (record.status === 'delivered' && tries.at(-1)?.answer.kind === 'slowBody') tally('delivered by a 200 whose body never ended');
  if (record.status === 'failed' && record.last_error?.startsWith('not sent')) tally('not sent after a 410');
  else if (record.status === 'failed' && tries.some((one) => statusSeen(one.answer) === 410)) tally('ended by its 410');
  else if (record.status === 'failed') tally(`failed after ${MAX_ATTEMPTS} tries`);
  for (const [index, one] of tries.entries()) {
    const next = tries[index + 1];
    if (!next) continue;
    const attempt = tries.slice(0, index + 1).filter((earlier) => !earlier.unrecorded).length;
    if (one.unrecorded) tally(statusSeen(one.answer) === 200 || statusSeen(one.answer) === 204 ? 'an unrecorded 2xx sent again' : 'an unrecorded try sent again');
    else if (retryWait(one, attempt) > deliveryBackoffMs(attempt)) tally(retryWait(one, attempt) === 3_600_000 ? 'a Retry-After over an hour, held to one' : 'a Retry-After longer than the back-off');
    if (!one.unrecorded && one.answer.kind === 'status' && one.answer.status === 307) tally('retried after a redirect');
    if (!one.unrecorded && (one.answer.kind === 'slow' || one.answer.kind === 'reset' || one.answer.kind === 'close')) tally(`retried after ${one.answer.kind}`);
  }
}

/** Checks the records against what the receiver saw; `final`: every event ended as documented. */
async function checkInvariants(world: World, final = false): Promise<void> {
  expect(world.problems, world.context()).toEqual([]);
  for (const task of world.tasks.values()) {
    const records = await world.deliveries(task);
    const current = (await world.gw().request('GET', `/v1/videos/${task.id}`, undefined, {}, KEYS[task.tenant])).body;
    const where = `${task.id} (${task.tenant}, ${current.status}) records ${JSON.stringify(records)}${world.context()}`;
    const seenOfTask = world.seen.filter((one) => one.taskId === task.id);
    // Every id the receiver saw is a record of the task, each type once.
    for (const one of seenOfTask) expect(records.map((record) => record.id), `${one.id} seen, not recorded: ${where}`).toContain(one.id);
    const types = records.map((record) => record.type);
    expect(new Set(types).size, `one record per event: ${where}`).toBe(types.length);
    if (current.status === 'succeeded') expect(types, where).not.toContain('video.failed');
    if (current.status === 'failed') expect(types, where).not.toContain('video.succeeded');
    if (current.status === 'processing') expect(types.filter((type) => type !== 'video.processing'), where).toEqual([]);
    const goneTry = seenOfTask.find((one) => !one.unrecorded && statusSeen(one.answer) === 410);
    for (const record of records) {
      const tries = seenOfTask.filter((one) => one.id === record.id);
      const recorded = tries.filter((one) => !one.unrecorded);
      const last = recorded.at(-1);
      const what = `${record.id} ${record.type}: tries ${JSON.stringify(tries.map((one) => describeAnswer(one.answer) + (one.unrecorded ? ' (unrecorded)' : '')))} — ${where}`;
      expect(record.url, what).toBe(world.url);
      const notSent = typeof record.last_error === 'string' && record.last_error.startsWith('not sent');
      expect(record.attempts, `attempts: ${what}`).toBe(recorded.length);
      if (last && !notSent) expect(record.last_status, `last status: ${what}`).toBe(statusSeen(last.answer));
      const lastStatus = last ? statusSeen(last.answer) : null;
      const acked = lastStatus !== null && lastStatus >= 200 && lastStatus < 300;
      if (record.status === 'delivered') expect(acked, `delivered without a 2xx: ${what}`).toBe(true);
      else expect(acked, `a recorded 2xx not delivered: ${what}`).toBe(false);
      if (record.status === 'failed') {
        const documented = lastStatus === 410 || recorded.length >= MAX_ATTEMPTS || (notSent && goneTry !== undefined);
        expect(documented, `failed without a 410 or ${MAX_ATTEMPTS} tries: ${what}`).toBe(true);
      }
      if (record.status === 'pending') {
        expect(lastStatus === 410 || recorded.length >= MAX_ATTEMPTS, `pending after a 410 or its last try: ${what}`).toBe(false);
        // The next try is due when the back-off or the receiver's Retry-After says.
        if (last) expect(record.next_attempt_at, `next try: ${what}`).toBe(new Date(last.at + retryWait(last, recorded.length)).toISOString());
      }
      if (record.status === 'delivered') expect(record.delivered_at, `delivered at: ${what}`).toBe(new Date(last!.at).toISOString());
      if (record.status !== 'delivered' && last) expect(record.last_error, `last error: ${what}`).toEqual(expect.any(String));
      if (notSent) {
        expect(goneTry, `not sent without a 410: ${what}`).toBeDefined();
        expect(record.last_error, what).toBe(`not sent: the receiver answered 410 Gone to ${goneTry!.type} (${goneTry!.id}) of this task`);
      }
      if (final) {
        expect(record.status, `still pending at the end: ${what}`).not.toBe('pending');
        tallyRun(seenOfTask, record, world.rotations.filter((one) => one.tenant === task.tenant).map((one) => one.pass));
      }
    }
    if (final) {
      expect(['succeeded', 'failed'], where).toContain(current.status);
      // Every event the task went through is recorded.
      expect(types.sort(), where).toEqual(['video.processing', current.status === 'succeeded' ? 'video.succeeded' : 'video.failed'].sort());
      expect(current.status, `the simulator's outcome: ${where}`).toBe(task.outcome === 'succeed' ? 'succeeded' : 'failed');
    }
  }
}

type Model = object;

abstract class Step implements fc.AsyncCommand<Model, World> {
  /** The replica the step goes through (several: a worker pass may be on every one at once). */
  via = 0;
  through(index: number): this {
    this.via = index;
    return this;
  }
  check(): boolean {
    return true;
  }
  abstract describe(): string;
  toString(): string {
    return this.via === 0 ? this.describe() : `${this.describe()} @${this.via}`;
  }
  async run(_model: Model, world: World): Promise<void> {
    world.log.push(String(this));
    await this.act(world);
    await world.settle();
    await checkInvariants(world);
  }
  abstract act(world: World): Promise<void>;
}

class Create extends Step {
  constructor(
    readonly tenant: Tenant,
    readonly outcome: 'succeed' | 'fail',
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    if (this.outcome === 'fail') world.simulators.get('kling3api')!.setOutcome('fail');
    const body = { model: 'kling-v3', prompt: `a lighthouse in a storm ${world.tasks.size}`, duration: 5, webhook_url: world.url, routing: { providers: ['kling3api'] } };
    const answer = await world.gw(this.via).request('POST', '/v1/videos', body, {}, KEYS[this.tenant]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    world.tasks.set(answer.body.id, { id: answer.body.id, tenant: this.tenant, outcome: this.outcome });
    world.log.push(`  → ${answer.body.id}`);
  }
  describe(): string {
    return `create(${this.tenant}, ${this.outcome})`;
  }
}

class Advance extends Step {
  constructor(readonly ms: number) {
    super();
  }
  async act(world: World): Promise<void> {
    await world.clock.advance(this.ms);
    await world.runOnce(this.via);
  }
  describe(): string {
    return `advance(${this.ms / 1000} s)`;
  }
}

class RunOnce extends Step {
  async act(world: World): Promise<void> {
    await world.runOnce(this.via);
  }
  describe(): string {
    return 'runOnce';
  }
}

/**
 * With several replicas, the others work while one is down: a worker pass on each, at the clock
 * the stop came at (a delivery a dead replica leased is not theirs to send yet).
 */
async function othersWork(world: World, index: number): Promise<void> {
  for (const [other, replica] of world.replicas.entries()) {
    if (other === index) continue;
    world.pass += 1;
    await replica.gateway.runOnce();
  }
}

/**
 * A graceful stop (`close`, as at SIGTERM) of one replica and a start on the same database; the
 * other replicas work meanwhile. A rotated secret reaches every replica (the others restart too,
 * between passes, once it is rotated).
 */
class Restart extends Step {
  constructor(
    /** The stop comes while the receiver holds the POSTs of a pass this long later (else between passes). */
    readonly midPass: number | undefined,
    /** The tenant whose secret is rotated by the restart: `[new, current]`, the older one retired. */
    readonly rotate: Tenant | undefined,
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    const index = this.via % world.replicas.length;
    if (this.midPass === undefined) await world.stop(index);
    else {
      const { pass } = await holdPass(world, index, this.midPass);
      // SIGTERM now: the POSTs on their way are answered by the script during the stop.
      const closed = world.gw(index).close();
      await new Promise((resolve) => setTimeout(resolve, 10));
      if (world.held.length > 0) tally('a graceful stop with POSTs on their way');
      world.answerHeld(false);
      await closed;
      // The rest of the pass, after its deliveries, may find the store closed; it ends all the same.
      const ended = await Promise.race([pass.then(() => true, () => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 3_000))]);
      expect(ended, `the pass on its way at the stop never ended${world.context()}`).toBe(true);
      // The process's pool closes after its last pass (closed under it, a query waiting for a connection would wait its time out).
      await world.closeStore(index);
    }
    await othersWork(world, index);
    if (this.rotate) {
      world.rotations.push({ tenant: this.rotate, pass: world.pass });
      const secrets = world.secrets[this.rotate];
      world.retired.push(...secrets.slice(1));
      world.secrets[this.rotate] = [`whsec_${Buffer.from(`${this.rotate} rotated at ${world.clock.now()} ${world.log.length}`).toString('base64')}`, secrets[0]!];
      for (let other = 0; other < world.replicas.length; other++) {
        if (other === index) continue;
        await world.stop(other);
        await world.start(other);
      }
    }
    await world.start(index);
    await world.runOnce(index);
  }
  describe(): string {
    return `restart(graceful${this.midPass === undefined ? '' : `, mid-pass ${this.midPass / 1000} s later`}${this.rotate ? `, ${this.rotate}'s secret rotated` : ''})`;
  }
}

/**
 * A worker pass of replica `index` `ms` later whose POSTs the receiver holds, once it has claimed
 * its due deliveries and they are on their way (well before their time limit); the pass, which
 * settles once they are answered (never, once its process is dead). The stop or death comes only
 * then: on a loaded machine the pass may take a while to reach its deliveries, and a stop before
 * them would find it still reading tasks (whose retries wait on the test's clock, which no one moves).
 */
async function holdPass(world: World, index: number, ms: number): Promise<{ pass: Promise<void> }> {
  const gateway = world.gw(index).gateway;
  const webhooks = (gateway as unknown as { webhooks: { inFlight: Set<unknown>; runner: { run(): Promise<void> } } }).webhooks;
  world.holding = true;
  await world.clock.advance(ms);
  world.pass += 1;
  let passed = false;
  let claimed = false;
  const { runner } = webhooks;
  const run = runner.run;
  runner.run = function (this: typeof runner) {
    return run.call(this).finally(() => (claimed = true));
  };
  const pass = gateway.runOnce().finally(() => (passed = true));
  // A dead process's pass may fail on its closed pool: nobody waits for it.
  pass.catch(() => undefined);
  try {
    for (let wait = 0; wait < 2_000 && !passed && !claimed; wait++) await new Promise((resolve) => setTimeout(resolve, 5));
    for (let wait = 0; wait < 60 && !passed && world.held.length < webhooks.inFlight.size; wait++) await new Promise((resolve) => setTimeout(resolve, 5));
  } finally {
    runner.run = run;
  }
  if (!passed) expect(world.held.length, `POSTs held${world.context()}`).toBe(webhooks.inFlight.size);
  return { pass };
}

/**
 * A replica dies while the receiver holds the POSTs of the deliveries it started: the receiver
 * answers them by its script afterwards (a 2xx included), but nothing after the POST is recorded;
 * the instance's listener and connections vanish at once. The other replicas work meanwhile; then
 * it starts again on the same database.
 */
class Crash extends Step {
  constructor(readonly ms: number) {
    super();
  }
  async act(world: World): Promise<void> {
    const index = this.via % world.replicas.length;
    const old = world.gw(index).gateway;
    await holdPass(world, index, this.ms);
    // Dead: whatever the instance would write next never happens.
    const tasks = (old as unknown as { engine: { tasks: Record<string, unknown> } }).engine.tasks;
    const never = () => new Promise<never>(() => undefined);
    for (const name of ['recordDelivery', 'abandonPendingDeliveries', 'goneDeliveryOf']) tasks[name] = never;
    world.answerHeld(true);
    world.log.push(`  died with ${world.seen.filter((one) => one.unrecorded && one.pass === world.pass).map((one) => `${one.id} answered ${describeAnswer(one.answer)}`).join(', ') || 'nothing on its way'}`);
    await world.bury(index);
    await othersWork(world, index);
    await world.start(index);
    await world.runOnce(index);
  }
  describe(): string {
    return `restart(abrupt, ${this.ms / 1000} s later)`;
  }
}

/**
 * The steps of a run. With one replica, as the model always drew them; with several, each step
 * also draws the replica it goes through (worker passes: one replica, or all at once).
 */
function commandsFor(replicas: number, maxCommands: number) {
  const via = <T extends Step>(step: fc.Arbitrary<T>, all = false): fc.Arbitrary<Step> =>
    replicas === 1 ? step : fc.tuple(step, fc.nat({ max: replicas - (all ? 0 : 1) })).map(([one, index]) => one.through(index));
  return fc.commands(
    [
      via(fc.tuple(fc.constantFrom<Tenant>('acme', 'other'), fc.constantFrom<'succeed' | 'fail'>('succeed', 'succeed', 'fail')).map(([tenant, outcome]) => new Create(tenant, outcome))),
      via(fc.constantFrom(500, 2_000, 5_000, 10_000, 20_000, 45_000, 120_000, 700_000).map((ms) => new Advance(ms)), true),
      replicas === 1 ? fc.constant(new RunOnce()) : via(fc.constant(undefined).map(() => new RunOnce()), true),
      via(fc.tuple(fc.option(fc.constantFrom(0, 5_000, 20_000, 45_000), { nil: undefined }), fc.constantFrom<Tenant | undefined>(undefined, undefined, undefined, 'acme', 'other')).map(([midPass, rotate]) => new Restart(midPass, rotate))),
      via(fc.constantFrom(0, 5_000, 20_000, 45_000).map((ms) => new Crash(ms))),
    ],
    { maxCommands, size: 'large' },
  );
}

/** Past every retry horizon: time moves and workers run until every task has ended and no delivery waits. */
async function settle(world: World): Promise<void> {
  world.log.push('settle');
  for (let round = 0; round < 200; round++) {
    await world.clock.advance(round < 20 ? 5_000 : round < 40 ? 60_000 : 600_000);
    // Turn about on each replica, and now and then on every one at once.
    await world.runOnce(round);
    await world.settle();
    expect(world.problems, world.context()).toEqual([]);
    if (round < 20) continue;
    let waiting = false;
    for (const task of world.tasks.values()) {
      const records = await world.deliveries(task);
      if (records.some((record) => record.status === 'pending')) waiting = true;
    }
    if (!waiting) return;
  }
}

/**
 * Runs the model: `replicas` gateways on the database `database` gives each run, a seed and a
 * number of runs (`OUTBOUND_MODEL_SEED`, `OUTBOUND_MODEL_RUNS` override them), up to
 * `maxCommands` steps each. `OUTBOUND_MODEL_LOG=1` prints each run's steps. What the runs went
 * through is counted in `coverage`.
 */
export async function runOutboundWebhookModel(options: { replicas: number; database: () => Promise<WebhookModelDatabase>; seed: number; runs: number; maxCommands?: number }): Promise<void> {
  await fc.assert(
    fc.asyncProperty(fc.array(answerArb, { minLength: 20, maxLength: 40 }), fc.constantFrom<Tenant>('acme', 'other'), commandsFor(options.replicas, options.maxCommands ?? 20), async (answers, tenant, steps) => {
      const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
      const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
      const database = await options.database();
      const world = new World(clock, sandbox.endpoints, sandbox.simulators, database, answers, options.replicas);
      try {
        await world.listen();
        await world.startAll();
        world.log.push(`answers: ${answers.map(describeAnswer).join(', ')}`);
        await new Create(tenant, 'succeed').act(world);
        await fc.asyncModelRun(() => ({ model: {}, real: world }), steps);
        await settle(world);
        await checkInvariants(world, true);
        if (process.env.OUTBOUND_MODEL_LOG) console.log(world.log.join('\n'));
      } finally {
        await world.close();
        world.server.closeAllConnections();
        await new Promise<void>((resolve) => world.server.close(() => resolve()));
        await sandbox.close().catch(() => undefined);
        await database.remove().catch(() => undefined);
      }
    }),
    { seed: Number(process.env.OUTBOUND_MODEL_SEED ?? options.seed), numRuns: Number(process.env.OUTBOUND_MODEL_RUNS ?? options.runs) },
  );
  if (process.env.OUTBOUND_MODEL_LOG) console.log(coverage);
}
