/**
 * Outbound webhook delivery under random orders of events (fast-check model-based test, SPEC §4,
 * README *Outbound webhooks*): tasks of two tenants with a `webhook_url` at one local receiver go
 * through their lives on the kling3api simulator (succeeding or failing), while the receiver
 * answers each POST by a drawn script — `2xx`, `307`, `4xx`, `5xx`, `410`, `429`/`503` with a
 * `Retry-After` in seconds or as an HTTP date (some over an hour), a `200` whose body never ends,
 * an answer slower than `webhooks.timeout_ms`, a connection reset, a connection closed without an
 * answer — and the clock moves by random amounts, workers run, and the gateway restarts on the
 * same SQLite file: gracefully (`close`, between worker passes or while the receiver holds a
 * pass's POSTs, which the stop waits for; some restarts rotate a tenant's secret to
 * `[new, current]`), or abruptly (the process dies while the receiver holds its POSTs: the
 * instance is dropped without a stop, nothing after the POST is recorded, and the next gateway,
 * which on SQLite takes over every lease at its start, sends them again). After every step, and
 * once every task has ended and every retry horizon has passed, it checks, from what the
 * receiver saw and what `GET /v1/videos/{id}/webhooks` records:
 *
 * - every request's `webhook-signature` verifies with `standardwebhooks` and each secret the
 *   task's tenant has (at the gateway's clock), never with another tenant's or a retired one; its
 *   `webhook-timestamp` is the try's time on that clock; its body is `{type, timestamp, data}`
 *   with `data.id` the task and `data.status` the type's; no redirect is followed;
 * - a `webhook-id` names one event of one task (same body on every try), and each event has one;
 * - no event of a type the task never reached (a succeeded task gets no `video.failed`);
 * - no retry sooner than the back-off (5 s, 10 s, 20 s …) after a recorded try, or than the
 *   `Retry-After` a 429/503 asked (at most an hour); a try the dead process never recorded may be
 *   repeated at once (on SQLite the next start takes over every lease: README *Configuration*);
 * - an event whose `2xx` was recorded is never sent again (after a graceful restart too); only one
 *   whose answer the dead process never recorded may be (README: at least once, same id);
 * - after a recorded `410` nothing more of that task goes to its URL in a later worker pass;
 * - the record matches what the receiver saw: tries (those the dead process never recorded
 *   aside), last HTTP status, `next_attempt_at` (the back-off or the `Retry-After`),
 *   `delivered_at`, `delivered` exactly after a 2xx, `failed` only after a 410 (or "not sent"
 *   naming the 410'd event) or `webhooks.max_attempts` tries;
 * - at the end, every event a task went through (`video.processing`, then `video.succeeded` or
 *   `video.failed`) is recorded and delivered with a 2xx, or `failed` for one of those reasons.
 *
 * The default run also asserts that it reached every case above (a model that stopped reaching
 * one would pass without checking it). Fixed seed, 15 runs of up to 20 steps (about 13 s).
 * Deeper: `OUTBOUND_MODEL_RUNS=100 OUTBOUND_MODEL_SEED=<n>`; `OUTBOUND_MODEL_LOG=1` prints each
 * run's steps and the cases reached.
 */
import { rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname } from 'node:path';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { deliveryBackoffMs } from '../../src/core/tasks/outbound-webhooks.js';
import type { Gateway } from '../../src/gateway.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { OTHER_TENANT_KEY, TENANT_KEY, TENANT_WEBHOOK_SECRET, TestGateway, tempDatabaseUrl, testConfig } from '../support/harness.js';
import { OTHER_WEBHOOK_SECRET } from '../support/webhook-receiver.js';
import { startModelGateway } from '../support/task-life-model.js';

const RUNS = Number(process.env.OUTBOUND_MODEL_RUNS ?? 15);
const SEED = Number(process.env.OUTBOUND_MODEL_SEED ?? 20261205);
/** Each try's time limit (real time): what the slow scripts outlast. */
const TIMEOUT_MS = 600;
const MAX_ATTEMPTS = 4;
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
  /** Dead instances, closed at the end. */
  readonly dead: Gateway[] = [];
  gw!: TestGateway;
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
    readonly database: string,
    readonly answers: Answer[],
  ) {
    this.server = createServer((req, res) => this.receive(req, res));
  }

  context(): string {
    return `\n${this.log.join('\n')}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }

  async start(): Promise<void> {
    const config = testConfig({
      database: { url: this.database },
      tenants: { acme: { webhook_secret: this.secrets.acme }, other: { webhook_secret: this.secrets.other } },
      webhooks: { allow_private_targets: true, max_attempts: MAX_ATTEMPTS, timeout_ms: TIMEOUT_MS },
      limits: { creates_per_minute: 100_000 },
    });
    const gateway = await startModelGateway(config, this.endpoints, this.clock);
    const url = await gateway.listen(0, '127.0.0.1');
    gateway.setPublicUrl(url);
    this.gw = new TestGateway(gateway, url, this.clock, this.simulators, this.endpoints, config, false);
  }

  async runOnce(): Promise<void> {
    this.pass += 1;
    await this.gw.gateway.runOnce();
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
    const first = earlier[0];
    if (first && (first.taskId !== taskId || first.type !== type || first.body !== body)) problem(`${id} carried ${first.type} of ${first.taskId}, now ${type} of ${taskId} (or another body)`);
    // Nothing after a recorded 2xx; the back-off, Retry-After or lease before the next try.
    const recorded = earlier.filter((one) => !one.unrecorded);
    const acked = recorded.find((one) => { const status = statusSeen(one.answer); return status !== null && status >= 200 && status < 300; });
    if (acked) problem(`${id} (${type} of ${taskId}) sent again after its recorded ${describeAnswer(acked.answer)} at ${new Date(acked.at).toISOString()}`);
    const last = earlier.at(-1);
    if (last) {
      let wait: number;
      // The next start on the SQLite file takes over every lease (README: one process per file).
      if (last.unrecorded) wait = 0;
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
    const answer = await this.gw.request('GET', `/v1/videos/${task.id}/webhooks`, undefined, {}, KEYS[task.tenant]);
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
const coverage = new Map<string, number>();
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
    const current = (await world.gw.request('GET', `/v1/videos/${task.id}`, undefined, {}, KEYS[task.tenant])).body;
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
  check(): boolean {
    return true;
  }
  abstract toString(): string;
  async run(_model: Model, world: World): Promise<void> {
    world.log.push(String(this));
    await this.act(world);
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
    const answer = await world.gw.request('POST', '/v1/videos', body, {}, KEYS[this.tenant]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    world.tasks.set(answer.body.id, { id: answer.body.id, tenant: this.tenant, outcome: this.outcome });
    world.log.push(`  → ${answer.body.id}`);
  }
  toString(): string {
    return `create(${this.tenant}, ${this.outcome})`;
  }
}

class Advance extends Step {
  constructor(readonly ms: number) {
    super();
  }
  async act(world: World): Promise<void> {
    await world.clock.advance(this.ms);
    await world.runOnce();
  }
  toString(): string {
    return `advance(${this.ms / 1000} s)`;
  }
}

class RunOnce extends Step {
  async act(world: World): Promise<void> {
    await world.runOnce();
  }
  toString(): string {
    return 'runOnce';
  }
}

/** A graceful stop (`close`, as at SIGTERM) and a start on the same database. */
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
    if (this.midPass === undefined) await world.gw.close();
    else {
      const { pass } = await holdPass(world, this.midPass);
      // SIGTERM now: the POSTs on their way are answered by the script during the stop.
      const closed = world.gw.close();
      await new Promise((resolve) => setTimeout(resolve, 10));
      if (world.held.length > 0) tally('a graceful stop with POSTs on their way');
      world.answerHeld(false);
      await closed;
      // The rest of the pass, after its deliveries, may find the store closed; it ends all the same.
      const ended = await Promise.race([pass.then(() => true, () => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 3_000))]);
      expect(ended, `the pass on its way at the stop never ended${world.context()}`).toBe(true);
    }
    if (this.rotate) {
      world.rotations.push({ tenant: this.rotate, pass: world.pass });
      const secrets = world.secrets[this.rotate];
      world.retired.push(...secrets.slice(1));
      world.secrets[this.rotate] = [`whsec_${Buffer.from(`${this.rotate} rotated at ${world.clock.now()} ${world.log.length}`).toString('base64')}`, secrets[0]!];
    }
    await world.start();
    await world.runOnce();
  }
  toString(): string {
    return `restart(graceful${this.midPass === undefined ? '' : `, mid-pass ${this.midPass / 1000} s later`}${this.rotate ? `, ${this.rotate}'s secret rotated` : ''})`;
  }
}

/**
 * A worker pass `ms` later whose POSTs the receiver holds, until they are on their way (well
 * before their time limit); the pass, which settles once they are answered (never, once its
 * process is dead).
 */
async function holdPass(world: World, ms: number): Promise<{ pass: Promise<void> }> {
  const webhooks = (world.gw.gateway as unknown as { webhooks: { inFlight: Set<unknown> } }).webhooks;
  world.holding = true;
  await world.clock.advance(ms);
  world.pass += 1;
  let passed = false;
  const pass = world.gw.gateway.runOnce().finally(() => (passed = true));
  for (let wait = 0; wait < 30 && !passed && (world.held.length === 0 || world.held.length < webhooks.inFlight.size); wait++) await new Promise((resolve) => setTimeout(resolve, 5));
  if (!passed) expect(world.held.length, `POSTs held${world.context()}`).toBe(webhooks.inFlight.size);
  return { pass };
}

/**
 * The process dies while the receiver holds the POSTs of the deliveries it started: the receiver
 * answers them by its script afterwards (a 2xx included), but nothing after the POST is recorded,
 * and the instance is dropped without a stop. The next gateway starts on the same database.
 */
class Crash extends Step {
  constructor(readonly ms: number) {
    super();
  }
  async act(world: World): Promise<void> {
    const old = world.gw.gateway;
    await holdPass(world, this.ms);
    // Dead: whatever the instance would write next never happens.
    const tasks = (old as unknown as { engine: { tasks: Record<string, unknown> } }).engine.tasks;
    const never = () => new Promise<never>(() => undefined);
    for (const name of ['recordDelivery', 'abandonPendingDeliveries', 'goneDeliveryOf']) tasks[name] = never;
    world.answerHeld(true);
    world.log.push(`  died with ${world.seen.filter((one) => one.unrecorded && one.pass === world.pass).map((one) => `${one.id} answered ${describeAnswer(one.answer)}`).join(', ') || 'nothing on its way'}`);
    world.dead.push(old);
    await world.start();
    await world.runOnce();
  }
  toString(): string {
    return `restart(abrupt, ${this.ms / 1000} s later)`;
  }
}

const commands = fc.commands(
  [
    fc.tuple(fc.constantFrom<Tenant>('acme', 'other'), fc.constantFrom<'succeed' | 'fail'>('succeed', 'succeed', 'fail')).map(([tenant, outcome]) => new Create(tenant, outcome)),
    fc.constantFrom(500, 2_000, 5_000, 10_000, 20_000, 45_000, 120_000, 700_000).map((ms) => new Advance(ms)),
    fc.constant(new RunOnce()),
    fc.tuple(fc.option(fc.constantFrom(0, 5_000, 20_000, 45_000), { nil: undefined }), fc.constantFrom<Tenant | undefined>(undefined, undefined, undefined, 'acme', 'other')).map(([midPass, rotate]) => new Restart(midPass, rotate)),
    fc.constantFrom(0, 5_000, 20_000, 45_000).map((ms) => new Crash(ms)),
  ],
  { maxCommands: 20, size: 'large' },
);

/** Past every retry horizon: time moves and workers run until every task has ended and no delivery waits. */
async function settle(world: World): Promise<void> {
  world.log.push('settle');
  for (let round = 0; round < 200; round++) {
    await world.clock.advance(round < 20 ? 5_000 : round < 40 ? 60_000 : 600_000);
    await world.runOnce();
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

it('delivers every event a task went through (signed, backed off, recorded as the receiver saw it) or records why not, across restarts', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(answerArb, { minLength: 20, maxLength: 40 }), fc.constantFrom<Tenant>('acme', 'other'), commands, async (answers, tenant, steps) => {
      const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
      const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
      const database = tempDatabaseUrl();
      const world = new World(clock, sandbox.endpoints, sandbox.simulators, database, answers);
      try {
        await world.listen();
        await world.start();
        world.log.push(`answers: ${answers.map(describeAnswer).join(', ')}`);
        await new Create(tenant, 'succeed').act(world);
        await fc.asyncModelRun(() => ({ model: {}, real: world }), steps);
        await settle(world);
        await checkInvariants(world, true);
        if (process.env.OUTBOUND_MODEL_LOG) console.log(world.log.join('\n'));
      } finally {
        await world.gw.close().catch(() => undefined);
        for (const dead of world.dead) {
          await (dead as unknown as { listenerStop?: { close(): Promise<void> } }).listenerStop?.close().catch(() => undefined);
          await dead.store.store.close().catch(() => undefined);
        }
        world.server.closeAllConnections();
        await new Promise<void>((resolve) => world.server.close(() => resolve()));
        await sandbox.close().catch(() => undefined);
        await rm(dirname(database.slice('sqlite:'.length)), { recursive: true, force: true });
      }
    }),
    { seed: SEED, numRuns: RUNS },
  );
  if (process.env.OUTBOUND_MODEL_LOG) console.log(coverage);
  // The default runs reach every case the model is for (a longer or other run may shrink to fewer).
  if (RUNS === 15 && SEED === 20261205) {
    const cases = [
      'delivered after a failed try',
      'delivered by a 200 whose body never ended',
      'a Retry-After longer than the back-off',
      'a Retry-After over an hour, held to one',
      'retried after a redirect',
      'retried after slow',
      'retried after reset',
      'retried after close',
      'ended by its 410',
      'not sent after a 410',
      `failed after ${MAX_ATTEMPTS} tries`,
      'an unrecorded 2xx sent again',
      'an unrecorded try sent again',
      'a graceful stop with POSTs on their way',
      'a secret rotated between tries',
    ];
    for (const one of cases) expect(coverage.get(one) ?? 0, `${one}: ${JSON.stringify([...coverage])}`).toBeGreaterThan(0);
  }
}, RUNS * 6_000);
