/**
 * A model-based audit of `GET /v1/videos` (the list) through the real API, shared by the SQLite
 * and the PostgreSQL suites. A drawn world: two tenants create tasks (drawn models, operations,
 * pinned providers, outcomes), many at the same millisecond (the clock not moved between
 * creates), some across clock steps; tasks end `succeeded` or `failed` as the simulators are told,
 * wait `queued` behind kling3api's cap of one and are canceled there; creates are sent again
 * with their `Idempotency-Key` (by the same tenant: the same task; by the other: its own). Then lists are walked page
 * by page through `next_cursor` with drawn filters and limits, with drawn changes between pages
 * (new creates, at the same millisecond too; cancels; the clock moved so that tasks finish).
 *
 * The model is what each task's own read (`GET /v1/videos/{id}`) says at the moment a page is
 * read (nothing moves between the two: the clock is a manual one). Checked on every page:
 *
 * - it is exactly the caller's tasks matching the filter that sort after the position the
 *   previous page ended at, newest first (`created_at` descending, then `id` descending), the
 *   first `limit` of them, each as its own read shows it; `next_cursor` is null exactly when no
 *   further task matches;
 * - so a walk with no changes yields the matching set exactly once, in order; with changes, no
 *   task twice, and every task that existed before the walk and matched throughout exactly once.
 *   What the gateway promises mid-walk follows from a cursor being a position, (created_at, id)
 *   of the last task read, holding no filter: a task created or changed during a walk is listed
 *   when it sorts after that position and matches when the page holding its position is read;
 * - the same cursor used by the other tenant, or with another filter, answers that tenant's /
 *   that filter's tasks after the same position (a cursor holds no filter and no tenant): nothing
 *   of the first tenant's tasks;
 * - bad parameters (limits 0, 101, -1, 1.5, abc, empty, given twice; unknown status, provider,
 *   model; malformed or altered cursors) are a 400 problem+json naming that parameter only.
 *
 * `LIST_MODEL_RUNS` / `LIST_MODEL_SEED` set the runs and the seed of both suites.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { Store } from '../../src/store/database.js';
import { OTHER_TENANT_KEY, TENANT_KEY, startTestGateway, type TestGateway } from './harness.js';

const STATUSES = ['queued', 'processing', 'succeeded', 'failed', 'canceled'] as const;
const PROVIDERS = ['freepik', 'kling3api', 'kling-legacy'] as const;
/** Models the tasks are made with, and one never used (a filter that matches nothing). */
const MODELS = ['kling-v3', 'kling-v2-6', 'kling-v2-5-turbo'] as const;
const FILTER_MODELS = [...MODELS, 'kling-v1-6'] as const;
const KEYS = [TENANT_KEY, OTHER_TENANT_KEY] as const;

interface Filter {
  status?: string;
  provider?: string;
  model?: string;
}

interface Seen {
  id: string;
  tenant: 0 | 1;
  status: string;
  provider: string | null;
  model: string;
  createdAt: number;
}

const create = fc
  .record({
    kind: fc.constant('create' as const),
    tenant: fc.constantFrom<0 | 1>(0, 1),
    model: fc.constantFrom(...MODELS),
    operation: fc.constantFrom('text-to-video', 'image-to-video'),
    provider: fc.constantFrom(...PROVIDERS),
    outcome: fc.constantFrom('succeed', 'fail'),
    /** Freepik and kling3api serve kling-v3 only: another model there is refused (one create in ten). */
    refused: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  })
  .map(({ refused, ...step }) => ({ ...step, model: step.provider === 'kling-legacy' || refused ? step.model : 'kling-v3' }));
/** The clock moved (0 ms: a no-op; a few ms: a new timestamp only; seconds: tasks finish, queued ones get their slot). */
const advance = fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(1, 3, 1_000, 2_500, 6_000) });
const cancel = fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() });
/** An earlier create sent again with its `Idempotency-Key` by its tenant (the same task: nothing new to list), or by the other tenant (a task of its own). */
const replay = fc.record({ kind: fc.constant('replay' as const), pick: fc.nat(), otherTenant: fc.boolean() });
const change = fc.oneof(
  { arbitrary: create, weight: 6 },
  { arbitrary: advance, weight: 2 },
  { arbitrary: cancel, weight: 2 },
  { arbitrary: replay, weight: 1 },
);
type Change = typeof change extends fc.Arbitrary<infer T> ? T : never;

/** Each of a filter's parameters given one time in three: most walks list many tasks, some few. */
const sometimes = <T>(values: readonly T[]) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary: fc.constantFrom(...values), weight: 1 });
const filter: fc.Arbitrary<Filter> = fc
  .record({ status: sometimes(STATUSES), provider: sometimes(PROVIDERS), model: sometimes(FILTER_MODELS) })
  .map((drawn) => Object.fromEntries(Object.entries(drawn).filter(([, value]) => value !== undefined)) as Filter);

const walk = fc.record({
  tenant: fc.constantFrom<0 | 1>(0, 1),
  filter,
  /** Mostly small pages (many pages per walk, ties split between them); the default (20) and the most too. */
  limit: fc.oneof(
    { arbitrary: fc.integer({ min: 1, max: 3 }), weight: 6 },
    { arbitrary: fc.constantFrom(4, 7, 100), weight: 2 },
    { arbitrary: fc.constant(undefined), weight: 1 },
  ),
  /** Changes before each page after the first (none: a walk over a frozen list). */
  between: fc.oneof(fc.constant([] as Change[][]), fc.array(fc.array(change, { maxLength: 3 }), { maxLength: 8 })),
  /** After a page: the cursor tried by the other tenant, and with another filter. */
  crossTenant: fc.boolean(),
  otherFilter: filter,
});

export const listWorld = fc.record({
  setup: fc.array(change, { minLength: 10, maxLength: 40, size: 'max' }),
  walks: fc.array(walk, { minLength: 1, maxLength: 4 }),
});
export type ListWorld = typeof listWorld extends fc.Arbitrary<infer T> ? T : never;

/** A task's place in the list: newest first, then the greater id first. */
function sortKey(compareIds: (a: string, b: string) => number) {
  return (a: { createdAt: number; id: string }, b: { createdAt: number; id: string }) =>
    b.createdAt - a.createdAt || compareIds(b.id, a.id);
}

const codeUnitOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function query(filter: Filter, limit: number | undefined, cursor?: string): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filter)) if (value !== undefined) params.set(name, value);
  if (limit !== undefined) params.set('limit', String(limit));
  if (cursor !== undefined) params.set('cursor', cursor);
  const text = params.toString();
  return `/v1/videos${text ? `?${text}` : ''}`;
}

const matches = (task: Seen, tenant: 0 | 1, f: Filter) =>
  task.tenant === tenant &&
  (f.status === undefined || task.status === f.status) &&
  (f.provider === undefined || task.provider === f.provider) &&
  (f.model === undefined || task.model === f.model);

/** Each id's place in the database's order of ids (its collation), asked of it: a PostgreSQL not of the C collation. */
export type IdRanks = (ids: string[]) => Promise<Map<string, number>>;

class ListRun {
  readonly ids: { id: string; tenant: 0 | 1; model: string }[] = [];
  /** Every create that made a task: what a replay sends again. */
  private readonly sent: { tenant: 0 | 1; key: string; body: Record<string, unknown>; id: string }[] = [];
  creates = 0;
  private ranks: Map<string, number> | undefined;
  /** The list's order: JavaScript's comparison of ids is SQLite's (and a C collation's) byte order. */
  readonly order = sortKey((a, b) => (this.ranks ? this.ranks.get(a)! - this.ranks.get(b)! : codeUnitOrder(a, b)));
  constructor(
    readonly gw: TestGateway,
    private readonly idRanks?: IdRanks,
  ) {}

  async apply(step: Change): Promise<void> {
    if (step.kind === 'advance') {
      await this.gw.advance(step.ms);
      return;
    }
    if (step.kind === 'cancel') {
      const target = this.ids[step.pick % Math.max(1, this.ids.length)];
      if (!target) return;
      const answer = await this.gw.request('POST', `/v1/videos/${target.id}/cancel`, undefined, {}, KEYS[target.tenant]);
      expect([200, 409]).toContain(answer.status);
      return;
    }
    if (step.kind === 'replay') {
      const earlier = this.sent[step.pick % Math.max(1, this.sent.length)];
      if (!earlier) return;
      const tenant = (step.otherTenant ? 1 - earlier.tenant : earlier.tenant) as 0 | 1;
      const answer = await this.gw.request('POST', '/v1/videos', earlier.body, { 'idempotency-key': earlier.key }, KEYS[tenant]);
      expect(answer.status).toBe(202);
      if (tenant === earlier.tenant) {
        expect([answer.body.id, answer.headers.get('idempotent-replayed')]).toEqual([earlier.id, 'true']);
      } else if (!this.ids.some((task) => task.id === answer.body.id)) {
        // The same key of another tenant is that tenant's own: a task of its own (once; a later replay of it finds it).
        expect(answer.body.id).not.toBe(earlier.id);
        this.ids.push({ id: answer.body.id, tenant, model: earlier.body.model as string });
      }
      return;
    }
    this.gw.simulator(step.provider).setOutcome(step.outcome === 'fail' ? 'fail' : 'succeed', 1);
    const body = {
      model: step.model,
      ...(step.operation === 'image-to-video' ? { operation: 'image-to-video', start_image_url: 'https://example.com/first-frame.png' } : {}),
      prompt: `shot ${this.creates++}`,
      duration: 5,
      routing: { providers: [step.provider], allow_fallbacks: false },
    };
    const key = `list-model-${this.creates}`;
    const answer = await this.gw.request('POST', '/v1/videos', body, { 'idempotency-key': key }, KEYS[step.tenant]);
    // A model or operation the pinned provider does not serve is refused: no task, nothing to list.
    if (answer.status !== 202) {
      expect([400, 422]).toContain(answer.status);
      return;
    }
    this.ids.push({ id: answer.body.id, tenant: step.tenant, model: step.model });
    this.sent.push({ tenant: step.tenant, key, body, id: answer.body.id });
  }

  /** Every task as its own read shows it now. */
  async snapshot(): Promise<Map<string, Seen>> {
    if (this.idRanks) this.ranks = await this.idRanks(this.ids.map((task) => task.id));
    const seen = new Map<string, Seen>();
    for (const { id, tenant, model } of this.ids) {
      const answer = await this.gw.request('GET', `/v1/videos/${id}`, undefined, {}, KEYS[tenant]);
      expect(answer.status).toBe(200);
      expect(answer.body.model).toBe(model);
      seen.set(id, {
        id,
        tenant,
        status: answer.body.status,
        provider: answer.body.provider ?? null,
        model: answer.body.model,
        createdAt: Date.parse(answer.body.created_at),
      });
    }
    return seen;
  }

  /** What a page after `after` (exclusive) must hold, and whether more follow. */
  expected(state: Map<string, Seen>, tenant: 0 | 1, f: Filter, limit: number, after?: Seen) {
    const all = [...state.values()].filter((task) => matches(task, tenant, f) && (!after || this.order(after, task) < 0)).sort(this.order);
    return { ids: all.slice(0, limit).map((task) => task.id), more: all.length > limit };
  }

  /** Reads one page and checks it against the tasks' own reads; the page's tasks. */
  async page(tenant: 0 | 1, f: Filter, limit: number | undefined, cursor: string | undefined, after: Seen | undefined, label: string) {
    const state = await this.snapshot();
    const answer = await this.gw.request('GET', query(f, limit, cursor), undefined, {}, KEYS[tenant]);
    expect([label, answer.status]).toEqual([label, 200]);
    const want = this.expected(state, tenant, f, limit ?? 20, after);
    const got = answer.body.data as { id: string; status: string; provider: string | null; model: string }[];
    expect([label, got.map((task) => task.id)]).toEqual([label, want.ids]);
    for (const task of got) {
      const own = state.get(task.id)!;
      expect([label, task.status, task.provider ?? null, task.model]).toEqual([label, own.status, own.provider, own.model]);
    }
    expect([label, answer.body.next_cursor === null]).toEqual([label, !want.more]);
    if (want.more) expect(typeof answer.body.next_cursor).toBe('string');
    return { tasks: got.map((task) => state.get(task.id)!), next: answer.body.next_cursor as string | null, state };
  }
}

/** One drawn world on a fresh gateway over `store` (a fresh in-memory SQLite without one). */
export async function checkListWorld(world: ListWorld, options: { store?: Store; idRanks?: IdRanks; opened: (gw: TestGateway) => void }) {
  const gw = await startTestGateway({
    clock: new ManualClock(Date.UTC(2026, 10, 22, 12, 0, 0)),
    ...(options.store ? { store: options.store } : {}),
    // One slot at kling3api: creates pinned to it past the first wait `queued` (and can be canceled there).
    config: { providers: { kling3api: { max_in_flight: 1 } } },
  });
  options.opened(gw);
  const run = new ListRun(gw, options.idRanks);
  for (const step of world.setup) await run.apply(step);

  for (const [w, plan] of world.walks.entries()) {
    const before = await run.snapshot();
    const seenIds: string[] = [];
    /** Tasks that matched at every page read so far. */
    let stable = new Set([...before.values()].filter((task) => matches(task, plan.tenant, plan.filter)).map((task) => task.id));
    let cursor: string | undefined;
    let after: Seen | undefined;
    for (let p = 0; ; p++) {
      if (p > 0) for (const step of plan.between[p - 1] ?? []) await run.apply(step);
      const label = `walk ${w} page ${p} ${query(plan.filter, plan.limit, cursor)} as tenant ${plan.tenant}`;
      const page = await run.page(plan.tenant, plan.filter, plan.limit, cursor, after, label);
      stable = new Set([...stable].filter((id) => matches(page.state.get(id)!, plan.tenant, plan.filter)));
      seenIds.push(...page.tasks.map((task) => task.id));
      if (page.next === null) break;
      after = page.tasks[page.tasks.length - 1]!;
      cursor = page.next;
      if (plan.crossTenant) {
        // The other tenant with this cursor: its own tasks after the same position, none of the first's.
        const other = (1 - plan.tenant) as 0 | 1;
        await run.page(other, plan.otherFilter, plan.limit, cursor, after, `${label}: cursor used by tenant ${other}`);
      }
      // The same cursor with another filter: that filter's tasks after the position (a cursor holds no filter).
      await run.page(plan.tenant, plan.otherFilter, plan.limit, cursor, after, `${label}: cursor with ${JSON.stringify(plan.otherFilter)}`);
      expect(p).toBeLessThan(200);
    }
    expect([`walk ${w}: no task twice`, new Set(seenIds).size]).toEqual([`walk ${w}: no task twice`, seenIds.length]);
    for (const id of stable) expect([`walk ${w}: a task matching throughout is listed`, id, seenIds.includes(id)]).toEqual([`walk ${w}: a task matching throughout is listed`, id, true]);
    if (plan.between.every((steps) => steps.length === 0)) {
      const want = [...before.values()].filter((task) => matches(task, plan.tenant, plan.filter)).sort(run.order);
      expect([`walk ${w}: the frozen list`, seenIds]).toEqual([`walk ${w}: the frozen list`, want.map((task) => task.id)]);
    }
  }
  await checkBadParameters(run);
}

/** Each bad parameter alone (the others valid): 400 problem+json naming it, and the list unchanged. */
async function checkBadParameters(run: ListRun): Promise<void> {
  const { gw } = run;
  // A cursor the gateway issued, to alter (one more task makes sure there is a next page).
  await run.apply({ kind: 'create', tenant: 0, model: 'kling-v3', operation: 'text-to-video', provider: 'freepik', outcome: 'succeed' });
  await run.apply({ kind: 'create', tenant: 0, model: 'kling-v3', operation: 'text-to-video', provider: 'freepik', outcome: 'succeed' });
  const issued = (await gw.request('GET', '/v1/videos?limit=1')).body.next_cursor as string;
  expect(typeof issued).toBe('string');
  const full = await gw.request('GET', '/v1/videos?limit=100');
  const position = JSON.parse(Buffer.from(issued, 'base64url').toString('utf8')) as { c: number; i: string };
  const encode = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
  const bad: [string, string][] = [
    ['limit', 'limit=0'],
    ['limit', 'limit=101'],
    ['limit', 'limit=-1'],
    ['limit', 'limit=1.5'],
    ['limit', 'limit=abc'],
    ['limit', 'limit='],
    ['limit', 'limit=1e1'],
    ['limit', 'limit=5&limit=6'],
    ['limit', 'limit=%2B5'],
    ['limit', 'limit=%205'],
    ['limit', 'limit'],
    ['limit[]', 'limit[]=5'],
    ['status', 'status=SUCCEEDED'],
    ['status', 'status=done'],
    ['status', 'status='],
    ['status', 'status=queued&status=failed'],
    ['provider', 'provider=Freepik'],
    ['provider', 'provider=runway'],
    ['provider', 'provider='],
    ['model', 'model=kling-3'],
    ['cursor', 'cursor='],
    ['cursor', 'cursor=nonsense'],
    ['cursor', `cursor=${'A'.repeat(201)}`],
    ['cursor', `cursor=${issued}&cursor=${issued}`],
    ['cursor', `cursor=${encode({ c: -1, i: position.i })}`],
    ['cursor', `cursor=${encode({ c: 1.5, i: position.i })}`],
    ['cursor', `cursor=${encode({ c: String(position.c), i: position.i })}`],
    ['cursor', `cursor=${encode({ c: position.c, i: 'a b' })}`],
    ['cursor', `cursor=${encode({ c: position.c })}`],
    ['cursor', `cursor=${encode('[]')}`],
    ['cursor', `cursor=${encode('null')}`],
    // A cursor the gateway issued, altered: still decodes to the same position when base64 is read
    // leniently, but it is not what the gateway issued.
    ['cursor', `cursor=${issued}!`],
    ['cursor', `cursor=${issued}%20`],
    ['cursor', `cursor=%20${issued}`],
    ['cursor', `cursor=${issued.slice(0, 4)}.${issued.slice(4)}`],
    ['cursor', `cursor=${issued}=`],
    ['cursor', `cursor=${encodeURIComponent(Buffer.from(issued, 'base64url').toString('base64'))}`],
    ['cursor', `cursor=${encode({ c: position.c, i: position.i, extra: 1 })}`],
    ['cursor', `cursor=${encode(` {"c":${position.c},"i":"${position.i}"}`)}`],
    ['offset', 'offset=1'],
  ];
  const wrong: string[] = [];
  for (const [name, text] of bad) {
    const answer = await gw.request('GET', `/v1/videos?${text}`);
    // One error for the one fault.
    const paths = Array.isArray(answer.body?.errors) ? answer.body.errors.map((error: { path: string }) => error.path) : [];
    const problem = answer.headers.get('content-type')?.startsWith('application/problem+json');
    if (answer.status !== 400 || !problem || paths.join() !== name) wrong.push(`${text}: ${answer.status} naming [${paths.join()}]`);
  }
  expect(wrong).toEqual([]);
  expect((await gw.request('GET', '/v1/videos?limit=100')).body).toEqual(full.body);
}

/** `LIST_MODEL_RUNS` (default `defaultRuns`) drawn worlds from `LIST_MODEL_SEED` (default 4747). */
export function listModelParameters(defaultRuns: number) {
  return { numRuns: Number(process.env.LIST_MODEL_RUNS ?? defaultRuns), seed: Number(process.env.LIST_MODEL_SEED ?? 4747), endOnFailure: true };
}
