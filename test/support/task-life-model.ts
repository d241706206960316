/**
 * The model-based test of a task's life (`test/gateway/task-life-model.test.ts` describes it):
 * the world, its steps and the invariants checked after each, shared by the one-gateway model on
 * SQLite and its replicas variant on PostgreSQL (`task-life-model-replicas-postgres.test.ts`).
 * A world runs `replicas` gateways on one database, the same simulators and the same manual
 * clock; each step names the replica it goes through (`via`), and a restart stops one replica
 * while the others keep working.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { ProviderSimulator, SimulatedFault } from '../../src/core/upstream/provider.js';
import { Gateway, gatewayLogger, gatewaySecrets, type GatewayOptions } from '../../src/gateway.js';
import type { GatewayConfig } from '../../src/config/config.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { openStore } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { heldCall } from './held-call.js';
import { restartablePort } from './restart-port.js';
import { TestGateway, testConfig } from './harness.js';

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const RANK: Record<string, number> = { queued: 0, processing: 1, succeeded: 2, failed: 2, canceled: 2 };
const PROVIDER_IDS = ['freepik', 'kling3api', 'kling-legacy'] as const;
type ProviderId = (typeof PROVIDER_IDS)[number];
type Route = 'any' | ProviderId;

const SETTINGS = {
  // A stop gives up on a create still on its way after this long (`Restart` with a cut drain).
  server: { drain_timeout_ms: 300 },
  // Small enough that the final drain reaches every deadline in a few dozen passes.
  tasks: { deadline_ms: 15 * 60_000 },
  limits: { creates_per_minute: 100_000 },
  // A budget no run comes near: what it holds and spends is checked against the tasks at the end.
  tenants: { acme: { budget: { amount: 1_000_000, currency: 'USD', period: 'month' } } },
  // One task in flight per provider: more wait `queued`, where a cancel ends them.
  providers: Object.fromEntries(['freepik', 'kling3api', 'kling-legacy'].map((id) => [id, { max_in_flight: 1 }])),
};

/** What the model knows of one gateway task. */
interface TaskRecord {
  id: string;
  marker: string;
  body: Record<string, unknown>;
  key: string | undefined;
  createdAt: number;
  /** The last status read through the API, and the whole task once terminal. */
  status: string;
  terminal: string | undefined;
  /** Upstream creates of this task when the first cancel of it was answered. */
  upstreamAtCancel: number | undefined;
}

/**
 * The world one run acts on: one sandbox (its simulators outlive restarts), one database, and
 * `ports.length` gateway replicas on it (each restarted on its own port).
 */
export class World {
  /** The running replicas, by index. */
  readonly replicas: TestGateway[] = [];
  readonly tasks: TaskRecord[] = [];
  readonly keys = new Map<string, string>();
  readonly log: string[] = [];
  /** Creates whose upstream call is held (on its way) while other steps run. */
  readonly pending: { answer: Promise<void>; release: () => void }[] = [];
  /** Creates whose client got no answer (the gateway stopped first). */
  readonly unanswered: { marker: string; body: Record<string, unknown>; key: string | undefined; createdAt: number }[] = [];
  private readonly webhookIds = new Map<string, string>();
  private sequence = 0;

  constructor(
    readonly clock: ManualClock,
    readonly endpoints: ReadonlyMap<string, ProviderEndpoint>,
    readonly simulators: Map<string, ProviderSimulator>,
    readonly database: string,
    readonly ports: readonly number[],
  ) {}

  /** The replica a step goes through (`via` of any size: taken modulo the number of replicas). */
  gw(via = 0): TestGateway {
    return this.replicas[via % this.replicas.length]!;
  }

  /** Starts every replica. */
  async startAll(): Promise<void> {
    for (let index = 0; index < this.ports.length; index++) await this.start(index);
  }

  /** Replica `index` on the world's database and its port (a restart keeps its public URL, as `npm start` does). */
  async start(index: number): Promise<void> {
    const config = testConfig({ ...SETTINGS, database: { url: this.database } }, PROVIDERS);
    const gateway = await startModelGateway(config, this.endpoints, this.clock);
    const url = await gateway.listen(this.ports[index]!, '127.0.0.1');
    gateway.setPublicUrl(url);
    this.replicas[index] = new TestGateway(gateway, url, this.clock, this.simulators, this.endpoints, config, false);
  }

  /** Lets what is under way settle (background dispatches, news being applied, webhooks in the air). */
  async settle(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 10));
    for (const replica of this.replicas) {
      const gateway = replica.gateway as unknown as { dispatcher: { idle(): Promise<void> }; tracker: { idle(): Promise<void> }; inbound: { idle(): Promise<void> } };
      await gateway.dispatcher.idle();
      await gateway.inbound.idle();
      await gateway.tracker.idle();
    }
  }

  /** A worker pass on replica `via`, or on every replica at once (`via` equal to their number). */
  async runOnce(via: number): Promise<void> {
    if (this.replicas.length > 1 && via % (this.replicas.length + 1) === this.replicas.length) {
      await Promise.all(this.replicas.map((replica) => replica.gateway.runOnce()));
    } else {
      await this.gw(via).gateway.runOnce();
    }
  }

  /** Closes every replica. */
  async close(): Promise<void> {
    for (const replica of this.replicas) await replica.close().catch(() => undefined);
  }

  /**
   * Waits for `answer` while time passes, as it would in production: a request that waits on the
   * gateway's clock (a repeat or a cancel waiting for a create on its way) ends by it.
   */
  async whileTimePasses<T>(answer: Promise<T>): Promise<T> {
    let done = false;
    void answer.then(
      () => (done = true),
      () => (done = true),
    );
    for (let step = 0; step < 60 && !done; step++) {
      await new Promise((resolve) => setTimeout(resolve, 40));
      if (!done) await this.clock.advance(1_000);
    }
    return answer;
  }

  /** Finds the tasks of creates that got no answer in the task list, as their client would. */
  async findUnanswered(): Promise<void> {
    if (this.unanswered.length === 0) return;
    const listed = (await this.gw(this.sequence).request('GET', '/v1/videos?limit=100')).body.data as { id: string; status: string; request: { prompt?: string } }[];
    for (const one of this.unanswered.splice(0)) {
      const task = listed.find((candidate) => candidate.request.prompt?.includes(one.marker));
      if (!task) {
        // Never made: its key (if any) must then make it now; nothing was sent upstream.
        expect(this.upstreamOf(one.marker), `${one.marker} has no task but an upstream one`).toEqual([]);
        continue;
      }
      if (one.key) this.keys.set(one.key, task.id);
      this.tasks.push({ id: task.id, ...one, status: 'queued', terminal: undefined, upstreamAtCancel: undefined });
      this.log.push(`found ${one.marker} as ${task.id} (${task.status})`);
    }
  }

  /** Lets every held create answer, and records its task. */
  async releaseHeld(): Promise<void> {
    const pending = this.pending.splice(0);
    for (const one of pending) one.release();
    await Promise.all(pending.map((one) => one.answer));
  }

  nextMarker(): string {
    this.sequence += 1;
    return `[t${this.sequence}]`;
  }

  /** Every upstream task whose create carried `marker`, with its provider. */
  upstreamOf(marker: string): { provider: ProviderId; id: string; body: any; createdAt: number }[] {
    return PROVIDER_IDS.flatMap((provider) =>
      this.simulators
        .get(provider)!
        .tasks.filter((task) => JSON.stringify(task.body).includes(marker))
        .map((task) => ({ provider, id: task.id, body: task.body, createdAt: task.createdAt })),
    );
  }

  webhookId(upstreamId: string, again: boolean): string {
    const last = this.webhookIds.get(upstreamId);
    if (again && last) return last;
    const id = `msg_model_${upstreamId}_${++this.sequence}`;
    this.webhookIds.set(upstreamId, id);
    return id;
  }
}

function bodyFor(route: Route, marker: string): Record<string, unknown> {
  const prompt = `a lighthouse in a storm ${marker}`;
  switch (route) {
    case 'any':
      return { model: 'kling-v3', prompt, duration: 5 };
    case 'kling-legacy':
      return { model: 'kling-v1', prompt, duration: 5 };
    default:
      return { model: 'kling-v3', prompt, duration: 5, routing: { providers: [route] } };
  }
}

/** Reads every task through the API and checks what may never happen. */
async function checkInvariants(world: World, final = false): Promise<void> {
  const context = () => `\n${world.log.join('\n')}`;
  await world.findUnanswered();
  if (final) {
    // No task the model does not know of (a repeat that made a second one), none lost: on every replica.
    for (const [index, replica] of world.replicas.entries()) {
      const listed = await replica.request('GET', '/v1/videos?limit=100');
      expect(listed.body.data.map((task: { id: string }) => task.id).sort(), `listed tasks on replica ${index}${context()}`).toEqual(world.tasks.map((task) => task.id).sort());
    }
  }
  const finals: any[] = [];
  for (const record of world.tasks) {
    // Read through every replica in turn: each read is no older than the one before it.
    let task: any;
    for (const [index, replica] of world.replicas.entries()) {
      const answer = await replica.get(record.id);
      expect(answer.status, `GET ${record.id} on replica ${index}${context()}`).toBe(200);
      task = answer.body;
      // Status never goes backwards, never changes once terminal.
      expect(RANK[task.status], `${record.id} went from ${record.status} to ${task.status} (replica ${index})${context()}`).toBeGreaterThanOrEqual(RANK[record.status]!);
      if (record.terminal) {
        expect(task.status, `${record.id} changed after ending ${record.terminal} (replica ${index})${context()}`).toBe(record.terminal);
      }
      record.status = task.status;
      if (TERMINAL.has(task.status)) record.terminal = task.status;
    }

    // At most one accepted upstream task per gateway task.
    const upstream = world.upstreamOf(record.marker);
    expect(upstream.length, `${record.id} accepted upstream ${upstream.length} times: ${JSON.stringify(upstream.map((u) => [u.provider, u.id]))}\n${JSON.stringify(task.attempts)}${context()}`).toBeLessThanOrEqual(1);
    // Succeeded only once the upstream task has: no early claim believed.
    if (task.status === 'succeeded') {
      const one = upstream.find((candidate) => candidate.id === task.provider_task_id);
      const kit = (world.simulators.get(task.provider) as unknown as { kit: { phaseOf(task: unknown): string; tasks: { id: string; outcome: string }[] } }).kit;
      const kitTask = kit.tasks.find((candidate) => candidate.id === one?.id);
      expect(kitTask && kit.phaseOf(kitTask) === 'done' && kitTask.outcome === 'succeed', `${record.id} succeeded before its upstream task did${context()}`).toBe(true);
    }
    // No create accepted after a cancel was answered.
    if (record.upstreamAtCancel !== undefined) {
      expect(upstream.length, `${record.id}: a create left after the cancel${context()}`).toBeLessThanOrEqual(record.upstreamAtCancel);
    }
    // Cost: not an estimate only where the provider reports a charge, or nothing was charged.
    if (task.cost && task.cost.estimated === false && task.cost.credits > 0) {
      expect(['kling3api', 'kling-legacy'], `${record.id} cost ${JSON.stringify(task.cost)} from ${task.provider}${context()}`).toContain(task.provider);
    }
    // A success is charged what the provider reported (kling3api, legacy), or Freepik's estimate.
    if (task.status === 'succeeded') {
      expect(task.cost.estimated, `${record.id} succeeded at ${task.provider} with cost ${JSON.stringify(task.cost)}${context()}`).toBe(task.provider === 'freepik');
      expect(task.cost.credits, `${record.id} succeeded for nothing${context()}`).toBeGreaterThan(0);
    }
    if (task.status === 'canceled' && upstream.length === 0) {
      expect(task.cost.credits, `${record.id} canceled, never sent${context()}`).toBe(0);
    }

    if (final) {
      finals.push(task);
      expect(TERMINAL.has(task.status), `${record.id} still ${task.status} past its deadline${context()}`).toBe(true);
      // The accepted upstream task is tracked (not abandoned).
      for (const one of upstream) {
        const attempt = (task.attempts as any[]).find((candidate) => candidate.provider === one.provider && candidate.provider_task_id === one.id);
        const tracked = task.provider_task_id === one.id || attempt?.outcome === 'accepted';
        // README, Guarantees, *Lost create answers*: kling3api documents no way to find a task
        // whose create answer was lost; that task fails and the upstream one is left behind.
        const documentedOrphan = one.provider === 'kling3api' && !tracked;
        if (!documentedOrphan) {
          expect(tracked, `${record.id}: upstream ${one.provider} ${one.id} abandoned\n${JSON.stringify(task)}${context()}`).toBe(true);
        }
      }
    }
  }
  if (final) await checkUsageAgainstTasks(world, finals, context);
}

/** Money of a figure in whole millionths. */
const microsOf = (amount: number | null | undefined) => Math.round((amount ?? 0) * 1_000_000);

/**
 * At the end: `/v1/usage` (every replica) adds up, per currency, exactly the tasks' own charges and
 * what they put at risk, and the tenant's tasks by outcome.
 */
async function checkUsageAgainstTasks(world: World, tasks: any[], context: () => string): Promise<void> {
  const expected = new Map<string, { tasks: number; succeeded: number; failed: number; canceled: number; micros: number; credits: number; atRisk: number }>();
  const rowOf = (currency: string | null) => {
    const key = String(currency);
    const row = expected.get(key) ?? { tasks: 0, succeeded: 0, failed: 0, canceled: 0, micros: 0, credits: 0, atRisk: 0 };
    expected.set(key, row);
    return row;
  };
  for (const task of tasks) {
    const row = rowOf(task.cost.currency);
    row.tasks += 1;
    row[task.status as 'succeeded' | 'failed' | 'canceled'] += 1;
    row.micros += microsOf(task.cost.currency_amount);
    row.credits += Math.round((task.cost.credits ?? 0) * 10_000);
    for (const entry of task.cost.at_risk ?? []) rowOf(entry.currency).atRisk += microsOf(entry.currency_amount);
  }
  for (const [index, replica] of world.replicas.entries()) {
    const usage = await replica.request('GET', '/v1/usage?from=2000-01-01&to=2100-01-01');
    expect(usage.status, `usage on replica ${index}${context()}`).toBe(200);
    const seen = new Map<string, unknown>();
    for (const row of usage.body.data as any[]) {
      seen.set(String(row.currency), {
        tasks: row.tasks,
        succeeded: row.succeeded,
        failed: row.failed,
        canceled: row.canceled,
        micros: microsOf(row.currency_amount),
        credits: Math.round(row.credits * 10_000),
        atRisk: microsOf(row.currency_amount_at_risk),
      });
    }
    const budget = usage.body.budgets[0];
    const usd = expected.get('USD');
    expect([index, microsOf(budget.spent), budget.reserved], `budget on replica ${index}${context()}`).toEqual([index, (usd?.micros ?? 0) + (usd?.atRisk ?? 0), 0]);
    expect(Object.fromEntries(seen), `usage on replica ${index} against the tasks ${JSON.stringify(tasks.map((task) => [task.id, task.status, task.provider, task.cost]))}${context()}`).toEqual(
      Object.fromEntries(expected),
    );
  }
}

type Model = object;

abstract class Step implements fc.AsyncCommand<Model, World> {
  /** The replica the step goes through (with several): creates, repeats, cancels, news, worker passes, the one restarted. */
  via: number | undefined;
  check(): boolean {
    return true;
  }
  /** The same step, sent through replica `via` (a copy: fast-check may reuse a drawn step while it shrinks). */
  through(via: number | undefined): this {
    return Object.assign(Object.create(Object.getPrototypeOf(this) as object) as this, this, { via });
  }
  toString(): string {
    return this.describe() + (this.via === undefined ? '' : ` @${this.via}`);
  }
  /** The step's own words (without its replica). */
  abstract describe(): string;
  /** Does the step, then checks the invariants. */
  async run(_model: Model, world: World): Promise<void> {
    await this.act(world);
    await checkInvariants(world);
  }
  abstract act(world: World): Promise<void>;
}

/** Creates a new task (with a key, or without). */
class Create extends Step {
  constructor(
    readonly route: Route,
    readonly withKey: boolean,
    /** Hold the create at this provider (it is on its way while the next steps run), accepted or dropped after accepting when let go. */
    readonly held?: { provider: ProviderId; drop: boolean },
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    const marker = world.nextMarker();
    const body = bodyFor(this.route, marker);
    const key = this.withKey ? `key-${marker.slice(1, -1)}` : undefined;
    const createdAt = world.clock.now();
    const hold = heldCall();
    if (this.held) world.simulators.get(this.held.provider)!.injectFault({ hold: hold.hold, ...(this.held.drop ? { transport: 'drop_after_accept' } : {}) });
    const answer = world.gw(this.via).create(body, key ? { 'idempotency-key': key } : {}).then((answer) => {
      world.log.push(`${this} ${marker} → ${answer.status} ${answer.body?.id ?? ''} ${answer.body?.status ?? answer.body?.detail ?? ''}`);
      if (answer.status !== 202) return;
      if (key) world.keys.set(key, answer.body.id);
      world.tasks.push({ id: answer.body.id, marker, body, key, createdAt, status: answer.body.status, terminal: undefined, upstreamAtCancel: undefined });
    }, (error: unknown) => {
      // The gateway stopped before it answered: the task is found by its prompt (`findUnanswered`).
      world.log.push(`${this} ${marker} → no answer (${String(error)})`);
      world.unanswered.push({ marker, body, key, createdAt });
    });
    if (!this.held) {
      hold.release();
      await answer;
      return;
    }
    world.pending.push({ answer, release: hold.release });
    // On its way once the provider holds it (or answered already: queued, or sent elsewhere).
    const reached = await Promise.race([hold.reached.then(() => true), answer.then(() => false)]);
    world.log.push(`${this} ${marker} ${reached ? 'held upstream' : 'not held'}`);
    // Not taken (the task waits in the queue, or went elsewhere): the hold must not catch a later create.
    if (!reached) hold.release();
  }
  describe(): string {
    return `create(${this.route}${this.withKey ? ', key' : ''}${this.held ? `, held at ${this.held.provider}${this.held.drop ? ' then dropped' : ''}` : ''})`;
  }
}

/** Lets the held creates answer. */
class Release extends Step {
  async act(world: World): Promise<void> {
    world.log.push(String(this));
    await world.releaseHeld();
    await world.settle();
  }
  describe(): string {
    return 'release';
  }
}

/** The same create again with its Idempotency-Key: the same task, never a second one. */
class Repeat extends Step {
  constructor(readonly pick: number) {
    super();
  }
  async act(world: World): Promise<void> {
    const keyed = world.tasks.filter((task) => task.key);
    const record = keyed[this.pick % Math.max(1, keyed.length)];
    if (!record) return;
    const answer = await world.whileTimePasses(world.gw(this.via).create(record.body, { 'idempotency-key': record.key! }));
    world.log.push(`${this} ${record.id} → ${answer.status} ${answer.body?.id ?? ''}`);
    if (answer.status === 409) {
      // Still being submitted: the README's answer for a repeat meanwhile, never "another body".
      expect(answer.body.type, world.log.join('\n')).toBe('https://kling-gateway.dev/problems/idempotency-key-in-progress');
      expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
      return;
    }
    expect([200, 202], world.log.join('\n')).toContain(answer.status);
    expect(answer.headers.get('idempotent-replayed')).toBe('true');
    expect(answer.body.id, world.log.join('\n')).toBe(world.keys.get(record.key!));
  }
  describe(): string {
    return `repeat(${this.pick})`;
  }
}

class Advance extends Step {
  constructor(readonly ms: number) {
    super();
  }
  async act(world: World): Promise<void> {
    world.log.push(String(this));
    await world.clock.advance(this.ms);
    await world.settle();
    await world.runOnce(this.via ?? 0);
  }
  describe(): string {
    return `advance(${this.ms})`;
  }
}

class RunOnce extends Step {
  async act(world: World): Promise<void> {
    world.log.push(String(this));
    await world.runOnce(this.via ?? 0);
  }
  describe(): string {
    return 'runOnce';
  }
}

const FAULTS: Record<string, SimulatedFault> = {
  '500': { status: 500 },
  '429': { kind: 'rate_limited', status: 429, headers: { 'retry-after': '7' } },
  reset: { transport: 'reset' },
  drop_after_accept: { transport: 'drop_after_accept' },
  'status 500': { on: 'status', status: 500 },
  'slow status': { on: 'status', delayMs: 150 },
};

class Fault extends Step {
  constructor(
    readonly provider: ProviderId,
    readonly fault: keyof typeof FAULTS,
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    world.log.push(String(this));
    world.simulators.get(this.provider)!.injectFault(FAULTS[this.fault]!);
  }
  describe(): string {
    return `fault(${this.provider}, ${this.fault})`;
  }
}

/** How the provider's next task ends. */
class Outcome extends Step {
  constructor(
    readonly provider: ProviderId,
    readonly outcome: 'fail' | 'content_policy',
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    world.log.push(String(this));
    world.simulators.get(this.provider)!.setOutcome(this.outcome);
  }
  describe(): string {
    return `outcome(${this.provider}, ${this.outcome})`;
  }
}

const FREEPIK_WORDS = ['CREATED', 'IN_PROGRESS', 'DONE'] as const;
const LEGACY_WORDS = ['submitted', 'processing', 'DONE'] as const;

/**
 * A provider's webhook or callback for a task's upstream task, sent (again) now: a status it
 * has reached, possibly an earlier one than it is at (late, out of order), possibly with a
 * webhook id already delivered (a duplicate).
 */
class News extends Step {
  constructor(
    readonly pick: number,
    readonly stage: number,
    readonly again: boolean,
    readonly lie = false,
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    const withUpstream = world.tasks.flatMap((task) => world.upstreamOf(task.marker).filter((one) => one.provider !== 'kling3api'));
    const one = withUpstream[this.pick % Math.max(1, withUpstream.length)];
    if (!one) return;
    const simulator = world.simulators.get(one.provider)! as unknown as { kit: { phaseOf(task: unknown): string; tasks: { id: string; outcome: string }[]; resultUrl(id: string, kind: string): string } };
    const kitTask = simulator.kit.tasks.find((task) => task.id === one.id);
    if (!kitTask) return;
    const phase = simulator.kit.phaseOf(kitTask);
    const reached = phase === 'queued' ? 0 : phase === 'processing' ? 1 : 2;
    // Freepik's webhooks are signed and believed: only stages the task reached (maybe late).
    // Legacy callbacks are unsigned: one may claim a stage the task has not reached, and is not believed.
    const stage = one.provider === 'freepik' || !this.lie ? Math.min(this.stage, reached) : this.stage;
    let answer: Response;
    if (one.provider === 'freepik') {
      let word: string = FREEPIK_WORDS[stage]!;
      if (word === 'DONE') word = kitTask.outcome === 'succeed' ? 'COMPLETED' : 'FAILED';
      const body = JSON.stringify({ task_id: one.id, status: word, generated: word === 'COMPLETED' ? [simulator.kit.resultUrl(one.id, 'mp4')] : [] });
      const webhookId = world.webhookId(one.id, this.again);
      const timestamp = String(Math.floor(world.clock.now() / 1000));
      const path = new URL(String(one.body.webhook_url)).pathname;
      answer = await fetch(`${world.gw(this.via).url}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': webhookId,
          'webhook-timestamp': timestamp,
          'webhook-signature': signFreepikWebhook(world.endpoints.get('freepik')!.webhookSecret!, webhookId, timestamp, body),
        },
        body,
      });
      world.log.push(`${this} freepik ${one.id} ${word} ${webhookId} → ${answer.status}`);
    } else {
      let word: string = LEGACY_WORDS[stage]!;
      if (word === 'DONE') word = kitTask.outcome === 'succeed' ? 'succeed' : 'failed';
      const body = {
        task_id: one.id,
        task_status: word,
        task_status_msg: '',
        task_info: one.body.external_task_id ? { external_task_id: one.body.external_task_id } : {},
        created_at: one.createdAt,
        updated_at: world.clock.now(),
        ...(word === 'succeed' ? { task_result: { videos: [{ id: `${one.id}-video`, url: simulator.kit.resultUrl(one.id, 'mp4'), duration: '5' }] } } : {}),
      };
      const path = new URL(String(one.body.callback_url)).pathname;
      answer = await fetch(`${world.gw(this.via).url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      world.log.push(`${this} legacy ${one.id} ${word} → ${answer.status}`);
    }
    await answer.text();
    expect(answer.status, world.log.join('\n')).toBeLessThan(500 + (answer.status === 503 ? 1 : 0));
    await world.settle();
  }
  describe(): string {
    return `news(${this.pick}, stage ${this.stage}${this.again ? ', same id' : ''}${this.lie ? ', legacy may claim ahead' : ''})`;
  }
}

class Cancel extends Step {
  constructor(readonly pick: number) {
    super();
  }
  async act(world: World): Promise<void> {
    const record = world.tasks[this.pick % Math.max(1, world.tasks.length)];
    if (!record) return;
    const cancel = world.gw(this.via).request('POST', `/v1/videos/${record.id}/cancel`);
    // A create on its way answers while the cancel waits for it.
    if (world.pending.length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      await world.releaseHeld();
    }
    const answer = await world.whileTimePasses(cancel);
    world.log.push(`${this} ${record.id} → ${answer.status} ${answer.body?.status ?? answer.body?.detail ?? ''}`);
    expect([200, 409]).toContain(answer.status);
    await world.settle();
    record.upstreamAtCancel ??= world.upstreamOf(record.marker).length;
  }
  describe(): string {
    return `cancel(${this.pick})`;
  }
}

/**
 * A restart on the same database. Graceful: `close`, as at SIGTERM. Abrupt: the process died
 * after a provider accepted a task's create and before the answer was written (the store as it
 * was then: the attempt `sending`, the task `submitting` under a dead lease), as
 * `test/gateway/adoption.test.ts` leaves it.
 */
class Restart extends Step {
  constructor(
    readonly abrupt: boolean,
    readonly pick: number,
    /** A create held on its way answers only after the drain gave up on it (`server.drain_timeout_ms`). */
    readonly cut = false,
  ) {
    super();
  }
  async act(world: World): Promise<void> {
    const index = (this.via ?? 0) % world.replicas.length;
    const attemptCounts = new Map<string, number>();
    for (const record of world.tasks) attemptCounts.set(record.id, (await world.gw(index).get(record.id)).body.attempts.length);
    const cut = this.cut && world.pending.length > 0;
    // The other replicas keep working meanwhile (what they started settles before the store is touched).
    const closed = world.gw(index).close();
    // A create on its way at the stop answers during the drain, or after it was cut.
    await new Promise((resolve) => setTimeout(resolve, cut ? SETTINGS.server.drain_timeout_ms + 100 : 20));
    await world.releaseHeld();
    await closed;
    if (cut) world.log.push('drain cut');
    let note = '';
    if (this.abrupt) {
      const candidates = [];
      for (const record of world.tasks) {
        if (record.status !== 'processing') continue;
        const upstream = world.upstreamOf(record.marker);
        if (upstream.length !== 1) continue;
        const [one] = upstream;
        // A Freepik task whose webhooks went out already would have named it to the dead process
        // (the attempt's path writes the upstream id at once): the crash must come before them.
        if (one!.provider === 'freepik') {
          const kit = (world.simulators.get('freepik') as unknown as { kit: { phaseOf(task: unknown): string; tasks: { id: string }[] } }).kit;
          if (kit.phaseOf(kit.tasks.find((task) => task.id === one!.id)) !== 'queued') continue;
        }
        candidates.push(record);
      }
      const record = candidates[this.pick % Math.max(1, candidates.length)];
      if (record) {
        await world.settle();
        const store = await openStore(world.database);
        const tasks = new TaskStore(store);
        const seq = attemptCounts.get(record.id)!;
        await tasks.updateTask(record.id, { phase: 'submitting', status: 'queued', provider_task_id: null, lease_owner: 'dead-replica', lease_until: world.clock.now() - 1 });
        await tasks.updateAttempt(record.id, seq, { outcome: 'sending', latency_ms: null, provider_task_id: null, tracking_json: null, message: null, error_code: null, recovered_by: null });
        await store.close();
        // The dead process never recorded the accept, so no reader saw the task processing.
        record.status = 'queued';
        note = ` died mid-create of ${record.id}`;
      }
    }
    world.log.push(`${this}${note}`);
    await world.start(index);
    await world.gw(index).gateway.runOnce();
  }
  describe(): string {
    return `restart(${this.abrupt ? 'abrupt' : 'graceful'}, ${this.pick}${this.cut ? ', drain cut' : ''})`;
  }
}

const route = fc.constantFrom<Route>('any', 'freepik', 'kling3api', 'kling-legacy');
const provider = fc.constantFrom<ProviderId>(...PROVIDER_IDS);
const pick = fc.nat({ max: 20 });

/**
 * The steps of a run. With one replica, as the model always drew them; with several, each step
 * also draws the replica it goes through (worker passes: one replica, or all at once).
 */
function commandsFor(replicas: number) {
  const via = <T extends Step>(step: fc.Arbitrary<T>, all = false): fc.Arbitrary<Step> =>
    replicas === 1 ? step : fc.tuple(step, fc.nat({ max: replicas - (all ? 0 : 1) })).map(([one, index]) => one.through(index));
  return fc.commands(
    [
      via(fc.tuple(route, fc.boolean()).map(([r, k]) => new Create(r, k))),
      via(fc.tuple(provider, fc.boolean(), fc.boolean()).map(([p, k, drop]) => new Create(p, k, { provider: p, drop }))),
      fc.constant(new Release()),
      fc.tuple(provider, fc.constantFrom<'fail' | 'content_policy'>('fail', 'content_policy')).map(([p, o]) => new Outcome(p, o)),
      via(pick.map((p) => new Repeat(p))),
      via(fc.constantFrom(200, 1_000, 3_000, 10_000, 30_000, 90_000).map((ms) => new Advance(ms)), true),
      via(fc.constant(0).map(() => new RunOnce()), true),
      fc.tuple(provider, fc.constantFrom(...(Object.keys(FAULTS) as (keyof typeof FAULTS)[]))).map(([p, f]) => new Fault(p, f)),
      via(fc.tuple(pick, fc.nat({ max: 2 }), fc.boolean(), fc.boolean()).map(([p, s, a, l]) => new News(p, s, a, l))),
      via(pick.map((p) => new Cancel(p))),
      via(fc.tuple(fc.boolean(), pick, fc.boolean()).map(([a, p, c]) => new Restart(a, p, c))),
    ],
    { maxCommands: 24, size: 'large' },
  );
}

/** Past every deadline, workers run until nothing changes (on each replica in turn): every task must be settled by then. */
async function drain(world: World): Promise<void> {
  world.log.push('drain');
  await world.releaseHeld();
  let turn = 0;
  for (let step = 0; step < 12; step++) {
    await world.clock.advance(5_000);
    await world.settle();
    await world.runOnce(turn++);
  }
  const deadline = Math.max(...world.tasks.map((task) => task.createdAt), world.clock.now()) + SETTINGS.tasks.deadline_ms;
  while (world.clock.now() < deadline + 60_000) {
    await world.clock.advance(60_000);
    await world.settle();
    await world.runOnce(turn++);
  }
  for (const replica of world.replicas) await replica.gateway.runOnce();
  await world.settle();
}

/** Where a run's world lives: its database, and what to remove after it. */
export interface ModelDatabase {
  url: string;
  remove(): Promise<void>;
}

/**
 * Runs the model: `replicas` gateways on a database `database` gives each run (restarted on their
 * own ports), a fixed seed (`TASK_MODEL_SEED`) and `runs` runs (`TASK_MODEL_RUNS`).
 */
export async function runTaskLifeModel(options: { replicas: number; database: () => Promise<ModelDatabase>; seed: number; runs: number }): Promise<void> {
  const route2 = fc.tuple(route, route);
  await fc.assert(
    fc.asyncProperty(route2, commandsFor(options.replicas), async ([first, second], steps) => {
      const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
      const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
      const database = await options.database();
      const ports: number[] = [];
      for (let index = 0; index < options.replicas; index++) ports.push(await restartablePort());
      const world = new World(clock, sandbox.endpoints, sandbox.simulators, database.url, ports);
      try {
        await world.startAll();
        // A few tasks to begin with: one with a key, one without (through different replicas, with several).
        await new Create(first, true).act(world);
        await new Create(second, false).through(options.replicas > 1 ? 1 : undefined).act(world);
        await fc.asyncModelRun(() => ({ model: {}, real: world }), steps);
        await drain(world);
        await checkInvariants(world, true);
        if (process.env.TASK_MODEL_LOG) {
          const finals = [];
          for (const record of world.tasks) {
            const task = (await world.gw().get(record.id)).body;
            finals.push(`${task.status}/${task.provider ?? '-'}/${(task.attempts as any[]).map((a) => `${a.outcome}${a.recovered_by ? ':' + a.recovered_by : ''}`).join('+')}/${task.error?.code ?? ''}`);
          }
          console.log(world.log.join(' | ') + '\n  => ' + finals.join(', '));
        }
      } finally {
        // A pass a replica started on its own may wait on the clock: it keeps moving while they close.
        const closed = world.close();
        await world.whileTimePasses(closed).catch(() => undefined);
        await sandbox.close().catch(() => undefined);
        await database.remove().catch(() => undefined);
      }
    }),
    { seed: Number(process.env.TASK_MODEL_SEED ?? options.seed), numRuns: Number(process.env.TASK_MODEL_RUNS ?? options.runs) },
  );
}

/**
 * A gateway of a model test: every provider, on the model's simulators (whose result files it
 * trusts unless told otherwise) and clock, silent, with fixed randomness.
 */
export function startModelGateway(
  config: GatewayConfig,
  endpoints: ReadonlyMap<string, ProviderEndpoint>,
  clock: ManualClock,
  more: Partial<GatewayOptions> = {},
): Promise<Gateway> {
  return Gateway.create({
    config,
    providers: PROVIDERS,
    endpoints: new Map(endpoints),
    clock,
    logger: gatewayLogger('silent', PROVIDERS, gatewaySecrets(config, new Map(endpoints))),
    random: () => 0.5,
    trustedResultOrigins: [...endpoints.values()].map((endpoint) => endpoint.baseUrl),
    ...more,
  });
}
