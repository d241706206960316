/**
 * Routing and failover on create under random inputs (fast-check, fixed seed), through the real
 * API against the built-in simulators. Each run builds a gateway from a random configuration
 * (which providers are enabled, one or two accounts each — some reached only through a refused
 * port or a connection reset before the request was written —, prices so that `cheapest` orders
 * vary, priorities, weights, the default strategy, `failover_on_timeout`), a canonical request
 * near the providers' capability edges (some eligible nowhere) with a random per-request
 * `routing` (strategy, providers, exclude, allow_fallbacks, max_credits), and for each provider
 * what it answers the create (accepted; 429 with or without Retry-After; 500, 502, 503; 401, 403;
 * its insufficient-credits answer; a 400 another provider may accept; a content-policy refusal in
 * its own documented form; a reset after the request was read; a drop after it created the task;
 * no answer). Checked, against SPEC §1, §3 and §5:
 *
 * - the quote creates nothing, and the create tries providers in exactly the quote's order of
 *   eligible ones, never an excluded or ineligible one, at most the first with
 *   `allow_fallbacks: false`, none whose estimate passes `max_credits`;
 * - a request eligible nowhere is `422` naming per provider the quote's reasons, with no
 *   upstream call and no task;
 * - it moves on exactly on the certain failures (refused, reset before the request was written,
 *   429, 5xx, 401/403, no credits, a 400) — to the provider's next account on the account's own
 *   troubles (429, key refused, credits gone) — and never on a content-policy refusal (the task
 *   fails `content_policy`) nor, unless `failover_on_timeout`, on a drop, reset or timeout after
 *   the request was sent;
 * - every attempt is on the task, in order, with the outcome and HTTP status the upstream gave;
 *   the task's provider and upstream id are the accepting one's, its cost that provider's quote;
 * - each upstream received exactly one create per attempt recorded on a reachable account, made
 *   at most the tasks its attempts accepted (or may have), and a repeat by `Idempotency-Key`
 *   sends nothing;
 * - a lost create later found upstream reads `accepted`, one a lookup proved absent `failed`
 *   (and the task may then move on); a task back from the queue goes only to an account a 429
 *   paused (or past a create proved absent), never to a provider that refused or may hold it;
 * - right after, with providers paused or ruled out, a second quote is still what its create follows.
 *
 * Fixed seed, 60 runs (a few seconds); `ROUTING_PROPS_RUNS` / `ROUTING_PROPS_SEED` go deeper,
 * `ROUTING_PROPS_STATS=1` prints how the runs ended (to see every case is reached).
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { ProviderSimulator, SimulatedFault } from '../../src/core/upstream/provider.js';
import { klingLegacyErrorBody } from '../../src/providers/kling-legacy/kling-legacy-simulator.js';
import { PROVIDERS as REGISTRY } from '../../src/providers/registry.js';
import { startSandbox, type ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { startTestGateway, testConfig, type TestGateway } from '../support/harness.js';
import { REFUSED_URL } from '../support/refused-port.js';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const PROVIDERS = ['freepik', 'kling3api', 'kling-legacy'] as const;
type Provider = (typeof PROVIDERS)[number];
const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

/** How an account is reached: the simulator, a port that refuses, or a server that resets before the request is written. */
type Transport = 'ok' | 'refused' | 'reset_before_write';

const FAULTS = [
  'accept',
  'rate_limited',
  'rate_limited_no_retry_after',
  '500',
  '502',
  '503',
  '401',
  '403',
  'no_credits',
  'invalid',
  'content_policy',
  'reset_after_write',
  'drop_after_accept',
  'no_answer',
] as const;
type Fault = (typeof FAULTS)[number];

/** What the gateway must make of an answer. */
interface Expected {
  outcome: 'accepted' | 'failed' | 'ambiguous';
  httpStatus: number | null;
  errorCode?: string;
  /** The account's own trouble: the provider's next account may take the task at once. */
  accountTrouble: boolean;
  /** Certainly not accepted: the next provider may take it. */
  certain: boolean;
  /** A 429 whose pause, once over, may bring the task back to this account. */
  rateLimited: boolean;
  /** The upstream made the task although the gateway got no answer. */
  createdUpstream: boolean;
}

function expectedOf(provider: Provider, fault: Fault): Expected {
  const refused = (httpStatus: number, errorCode: string, accountTrouble: boolean, rateLimited = false): Expected => ({
    outcome: 'failed',
    httpStatus,
    errorCode,
    accountTrouble,
    certain: true,
    rateLimited,
    createdUpstream: false,
  });
  const doubt = (createdUpstream: boolean, errorCode?: string): Expected => ({
    outcome: 'ambiguous',
    httpStatus: null,
    ...(errorCode ? { errorCode } : {}),
    accountTrouble: false,
    certain: false,
    rateLimited: false,
    createdUpstream,
  });
  switch (fault) {
    case 'accept':
      return { outcome: 'accepted', httpStatus: 200, accountTrouble: false, certain: false, rateLimited: false, createdUpstream: true };
    case 'rate_limited':
    case 'rate_limited_no_retry_after':
      return refused(429, 'provider_error', true, true);
    case '500':
    case '502':
    case '503':
      return refused(Number(fault), 'provider_error', false);
    case '401':
    case '403':
      return refused(Number(fault), 'provider_error', true);
    case 'no_credits':
      // The legacy API says its credits are gone with HTTP 429 and code 1102.
      return refused(provider === 'kling-legacy' ? 429 : 402, 'insufficient_credits', true);
    case 'invalid':
      return refused(400, 'invalid_request', false);
    case 'content_policy':
      return { ...refused(400, 'content_policy', false), certain: false };
    case 'reset_after_write':
      return doubt(false);
    case 'drop_after_accept':
      return doubt(true);
    case 'no_answer':
      return doubt(false, 'timeout');
  }
}

/** The simulator fault that makes `provider` answer its next create as `fault` says, in its own documented form. */
function simulatedFault(provider: Provider, fault: Fault): SimulatedFault | undefined {
  const legacy = (code: number, status: number, headers?: Record<string, string>): SimulatedFault => ({
    status,
    kind: 'server_error',
    body: klingLegacyErrorBody(code),
    ...(headers ? { headers } : {}),
  });
  switch (fault) {
    case 'accept':
      return undefined;
    case 'rate_limited':
      return { kind: 'rate_limited', status: 429, headers: { 'retry-after': '2' } };
    case 'rate_limited_no_retry_after':
      // `server_error` builds no headers: the status and body say 429, nothing says when to come back.
      if (provider === 'kling-legacy') return legacy(1302, 429);
      if (provider === 'kling3api') return { kind: 'server_error', status: 429, body: { code: 'RATE_LIMITED', message: 'Too many requests, please slow down' } };
      return { kind: 'server_error', status: 429, body: { message: 'Too many requests. Please slow down.' } };
    case '500':
      return provider === 'kling-legacy' ? legacy(5000, 500) : { kind: 'server_error', status: 500 };
    case '502':
      return provider === 'kling-legacy' ? legacy(5000, 502) : { kind: 'server_error', status: 502 };
    case '503':
      return provider === 'kling-legacy' ? legacy(5001, 503) : { kind: 'unavailable', status: 503 };
    case '401':
      return provider === 'kling-legacy' ? legacy(1000, 401) : { kind: 'unauthorized', status: 401 };
    case '403':
      if (provider === 'kling-legacy') return legacy(1103, 403);
      if (provider === 'kling3api') return { kind: 'server_error', status: 403, body: { code: 'FORBIDDEN', message: 'Access denied' } };
      return { kind: 'server_error', status: 403, body: { message: 'Forbidden' } };
    case 'no_credits':
      return provider === 'kling-legacy' ? legacy(1102, 429) : { kind: 'insufficient_credits', status: 402 };
    case 'invalid':
      return { kind: 'invalid', status: 400 };
    case 'content_policy':
      if (provider === 'kling-legacy') return legacy(1301, 400);
      if (provider === 'kling3api') return { kind: 'server_error', status: 400, body: { code: 'CONTENT_POLICY_VIOLATION', message: 'The prompt violates the content policy' } };
      return { kind: 'server_error', status: 400, body: { message: 'The prompt violates our content policy' } };
    case 'reset_after_write':
      return { transport: 'reset' };
    case 'drop_after_accept':
      return { transport: 'drop_after_accept' };
    case 'no_answer':
      return { transport: 'hang' };
  }
}

// ---------------------------------------------------------------------------------------------
// Generators

const providerSetup = fc.record({
  enabled: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  weight: fc.integer({ min: 0, max: 5 }),
  creditsPerSecond: fc.constantFrom(0.5, 1, 2, 5, 10, 14, 20, 80, 100),
  creditValue: fc.constantFrom(0.001, 0.01, 0.07, 0.14),
  accounts: fc.array(
    fc.oneof(
      { weight: 6, arbitrary: fc.constant<Transport>('ok') },
      { weight: 1, arbitrary: fc.constant<Transport>('refused') },
      { weight: 1, arbitrary: fc.constant<Transport>('reset_before_write') },
    ),
    { minLength: 1, maxLength: 2 },
  ),
});

const providerList = fc.subarray([...PROVIDERS]).chain((chosen) => fc.shuffledSubarray(chosen, { minLength: chosen.length, maxLength: chosen.length }));

/** Absent mostly (`freq` in 1 + freq times), else one of `values`. */
const sometimes = <T,>(arbitrary: fc.Arbitrary<T>, freq = 3) => fc.option(arbitrary, { nil: undefined, freq });

const routingOverride = fc
  .record({
    strategy: sometimes(fc.constantFrom('priority', 'cheapest', 'weighted', 'fastest'), 1),
    providers: sometimes(providerList.filter((list) => list.length > 0)),
    exclude: sometimes(fc.subarray([...PROVIDERS], { minLength: 1, maxLength: 2 }), 4),
    allow_fallbacks: sometimes(fc.boolean()),
    max_credits: sometimes(fc.constantFrom(1, 5, 30, 60, 100, 500, 5_000), 4),
  })
  .map((routing) => Object.fromEntries(Object.entries(routing).filter(([, value]) => value !== undefined)) as Partial<{ [K in keyof typeof routing]: NonNullable<(typeof routing)[K]> }>);

/** Mostly what most providers take; now and then a value at or past an edge of some provider's capabilities. */
const canonicalRequest = fc
  .record({
    model: fc.oneof(
      { weight: 6, arbitrary: fc.constant('kling-v3') },
      { weight: 3, arbitrary: fc.constantFrom('kling-v3-omni', 'kling-v2-6', 'kling-v2-5-turbo', 'kling-v2-1-master', 'kling-v1-6', 'kling-v1') },
    ),
    quality: sometimes(fc.constantFrom('pro', 'std'), 1),
    duration: sometimes(fc.constantFrom(3, 5, 10, 15), 1),
    aspect_ratio: sometimes(fc.constantFrom('16:9', '9:16', '1:1', 'auto')),
    cfg_scale: sometimes(fc.constantFrom(0, 0.5, 1, 1.5, 2)),
    /** Prompt length: short, at kling3api's limit, just over it, at the canonical limit. */
    promptLength: fc.oneof({ weight: 8, arbitrary: fc.constant(40) }, { weight: 3, arbitrary: fc.constantFrom(2000, 2001, 2500) }),
    audio: sometimes(fc.boolean(), 2),
    imageToVideo: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  })
  .map((request) => Object.fromEntries(Object.entries(request).filter(([, value]) => value !== undefined)) as typeof request);

const outcomes = fc.record({
  freepik: fc.oneof({ weight: 4, arbitrary: fc.constant<Fault>('accept') }, { weight: 13, arbitrary: fc.constantFrom(...FAULTS) }),
  kling3api: fc.oneof({ weight: 4, arbitrary: fc.constant<Fault>('accept') }, { weight: 13, arbitrary: fc.constantFrom(...FAULTS) }),
  'kling-legacy': fc.oneof({ weight: 4, arbitrary: fc.constant<Fault>('accept') }, { weight: 13, arbitrary: fc.constantFrom(...FAULTS) }),
});

const world = fc.record({
  providers: fc.record({ freepik: providerSetup, kling3api: providerSetup, 'kling-legacy': providerSetup }),
  priorities: fc.shuffledSubarray([...PROVIDERS], { minLength: 3, maxLength: 3 }),
  strategy: fc.constantFrom('priority', 'cheapest', 'weighted', 'fastest'),
  failoverOnTimeout: fc.boolean(),
  /** Every random draw of the gateway (the `weighted` order), fixed for the run. */
  draw: fc.constantFrom(0, 0.2, 0.5, 0.8, 0.999),
  request: canonicalRequest,
  routing: sometimes(routingOverride, 1),
  outcomes,
});
type World = typeof world extends fc.Arbitrary<infer T> ? T : never;

// ---------------------------------------------------------------------------------------------
// The upstreams: one sandbox for every run, and a server that resets a connection before the
// request is written (it resets at the TLS ClientHello, so no byte of HTTP ever leaves).

let sandbox: Awaited<ReturnType<typeof startSandbox>>;
let resetServer: Server;
let resetUrl: string;
const resetSockets = new Set<Socket>();

beforeAll(async () => {
  sandbox = await startSandbox(testConfig(), REGISTRY, new ManualClock(NOW));
  resetServer = createServer((socket) => {
    resetSockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => socket.resetAndDestroy());
  });
  await new Promise<void>((resolve) => resetServer.listen(0, '127.0.0.1', resolve));
  resetUrl = `https://127.0.0.1:${(resetServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await sandbox?.close();
  for (const socket of resetSockets) socket.destroy();
  await new Promise<void>((resolve) => resetServer?.close(() => resolve()));
});

let sequence = 0;
/** How the runs ended (printed with ROUTING_PROPS_STATS=1), to see the generators reach every case. */
const stats = new Map<string, number>();
const count = (label: string) => stats.set(label, (stats.get(label) ?? 0) + 1);

function bodyOf(w: World, marker: string): Record<string, unknown> {
  const { promptLength, imageToVideo, ...rest } = w.request;
  const prompt = `${marker} a lighthouse in a storm `.padEnd(promptLength, 'x');
  return {
    ...rest,
    prompt,
    ...(imageToVideo ? { start_image_url: 'https://example.com/frame.png' } : {}),
    ...(w.routing ? { routing: w.routing } : {}),
  };
}

function simulator(id: Provider): ProviderSimulator {
  return sandbox.simulators.get(id)!;
}

function createPosts(): Record<Provider, number> {
  return Object.fromEntries(PROVIDERS.map((id) => [id, simulator(id).requests.filter((r) => r.method === 'POST').length])) as Record<Provider, number>;
}

function diff(after: Record<Provider, number>, before: Record<Provider, number>): Record<Provider, number> {
  return Object.fromEntries(PROVIDERS.map((id) => [id, after[id] - before[id]])) as Record<Provider, number>;
}

function upstreamTasksOf(marker: string): Record<Provider, number> {
  return Object.fromEntries(PROVIDERS.map((id) => [id, simulator(id).tasks.filter((task) => JSON.stringify(task.body).includes(marker)).length])) as Record<Provider, number>;
}

async function startGateway(w: World): Promise<TestGateway> {
  const providers: Record<string, unknown> = {};
  const overrides: Record<string, Partial<ProviderEndpoint>> = {};
  for (const id of PROVIDERS) {
    const setup = w.providers[id];
    providers[id] = {
      enabled: setup.enabled,
      priority: w.priorities.indexOf(id) + 1,
      weight: setup.weight,
      timeout_ms: 700,
      max_in_flight: 1_000,
      circuit_breaker: { consecutive_failures: 1_000 },
      pricing: { currency: 'USD', credit_value: setup.creditValue, rules: [{ credits_per_second: setup.creditsPerSecond }] },
    };
    const endpoint = sandbox.endpoints.get(id)!;
    overrides[id] = {
      accounts: setup.accounts.map((transport, index) => ({
        id: `acct${index + 1}`,
        apiKey: endpoint.apiKey,
        ...(endpoint.accessKey ? { accessKey: endpoint.accessKey } : {}),
        ...(endpoint.secretKey ? { secretKey: endpoint.secretKey } : {}),
        ...(endpoint.webhookSecret ? { webhookSecrets: [endpoint.webhookSecret] } : {}),
        baseUrl: transport === 'ok' ? endpoint.baseUrl : transport === 'refused' ? REFUSED_URL : resetUrl,
      })),
    };
  }
  return startTestGateway({
    clock: new ManualClock(NOW),
    endpoints: sandbox.endpoints,
    simulators: sandbox.simulators,
    endpointOverrides: overrides,
    random: () => w.draw,
    config: {
      routing: { strategy: w.strategy, failover_on_timeout: w.failoverOnTimeout },
      limits: { creates_per_minute: 100_000 },
      providers,
    },
  });
}

// ---------------------------------------------------------------------------------------------
// The property

/**
 * Waits for `answer` while the gateway's clock moves, as it would in production: a repeat by
 * `Idempotency-Key` of a create still in doubt waits on that clock.
 */
async function whileTimePasses<T>(g: TestGateway, answer: Promise<T>): Promise<T> {
  let done = false;
  void answer.then(
    () => (done = true),
    () => (done = true),
  );
  for (let step = 0; step < 120 && !done; step++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    if (!done) await g.clock.advance(1_000);
  }
  return answer;
}

async function run(w: World): Promise<void> {
  const marker = `[route-${++sequence}]`;
  const body = bodyOf(w, marker);
  for (const id of PROVIDERS) simulator(id).clearFaults();
  const g = await startGateway(w);
  try {
    const start = createPosts();
    const quote = await g.request('POST', '/v1/videos/quote', body);
    // The quote creates nothing and calls no upstream.
    expect(['quote posts', diff(createPosts(), start)]).toEqual(['quote posts', { freepik: 0, kling3api: 0, 'kling-legacy': 0 }]);
    expect(['quote tasks', (await g.request('GET', '/v1/videos')).body.data]).toEqual(['quote tasks', []]);

    for (const id of PROVIDERS) {
      const fault = simulatedFault(id, w.outcomes[id]);
      if (fault) simulator(id).injectFault(fault);
    }
    const key = `key-${marker}`;
    const created = await g.create(body, { 'idempotency-key': key });
    for (const id of PROVIDERS) simulator(id).clearFaults();

    if (quote.status !== 200) {
      count(`quote ${quote.status}`);
      // A request the quote refuses, the create refuses alike, having done nothing.
      expect(['create of a refused quote', created.status]).toEqual(['create of a refused quote', quote.status]);
      expect(diff(createPosts(), start)).toEqual({ freepik: 0, kling3api: 0, 'kling-legacy': 0 });
      expect((await g.request('GET', '/v1/videos')).body.data).toEqual([]);
      return;
    }
    const order: Provider[] = quote.body.order;
    const quoted = new Map<string, any>(quote.body.providers.map((entry: any) => [entry.provider, entry]));
    expect(order).toEqual(quote.body.providers.filter((p: any) => p.eligible).sort((a: any, b: any) => a.order - b.order).map((p: any) => p.provider));

    if (order.length === 0) {
      count('eligible nowhere');
      // Eligible nowhere: 422 naming, per provider, the quote's reasons; nothing sent, no task.
      expect(['ineligible', created.status, created.body.detail]).toEqual(['ineligible', 422, expect.any(String)]);
      const named = Object.fromEntries((created.body.providers ?? []).map((entry: any) => [entry.provider, entry.reasons]));
      const fromQuote = Object.fromEntries(quote.body.providers.map((entry: any) => [entry.provider, entry.reasons]));
      expect(named).toEqual(fromQuote);
      expect(diff(createPosts(), start)).toEqual({ freepik: 0, kling3api: 0, 'kling-legacy': 0 });
      expect((await g.request('GET', '/v1/videos')).body.data).toEqual([]);
      return;
    }
    expect([created.status, created.body.detail]).toEqual([202, undefined]);
    for (const id of order) {
      // Never an excluded provider, one left out of routing.providers, a disabled one, or one over max_credits.
      expect(w.routing?.exclude?.includes(id) ?? false).toBe(false);
      if (w.routing?.providers) expect(w.routing.providers).toContain(id);
      expect(w.providers[id].enabled).toBe(true);
      if (w.routing?.max_credits !== undefined) expect(quoted.get(id).estimated_credits).toBeLessThanOrEqual(w.routing.max_credits);
    }
    if (w.routing?.allow_fallbacks === false) expect(order.length).toBeLessThanOrEqual(1);
    // `providers` without a strategy: that exact order.
    if (w.routing?.providers && !w.routing.strategy) expect(order).toEqual(w.routing.providers.filter((id) => order.includes(id)));

    let task = created.body;
    const atCreate = task.attempts.length;
    // A task some provider asked to wait for goes back to it when the pause is over.
    for (let step = 0; step < 12 && task.status === 'queued'; step++) {
      await g.advance(1_000);
      task = (await g.get(task.id)).body;
    }
    checkAttempts(w, order, quoted, created.body, task, atCreate);

    // Each upstream got one create per attempt that reached it, and made at most what its attempts accepted (or may have).
    const attempts: any[] = task.attempts;
    const reached = (id: Provider) =>
      attempts.filter((a) => a.provider === id && a.outcome !== 'skipped' && w.providers[id].accounts[Number(a.account.slice(4)) - 1] === 'ok').length;
    expect(['creates received', diff(createPosts(), start)]).toEqual(['creates received', Object.fromEntries(PROVIDERS.map((id) => [id, reached(id)]))]);
    const made = upstreamTasksOf(marker);
    for (const id of PROVIDERS) {
      const expected = attempts.filter((a) => a.provider === id && (a.outcome === 'accepted' || (a.outcome === 'ambiguous' && w.outcomes[id] === 'drop_after_accept'))).length;
      expect(['upstream tasks', id, made[id]]).toEqual(['upstream tasks', id, expected]);
    }
    const madeAnywhere = PROVIDERS.filter((id) => made[id] > 0);
    if (!w.failoverOnTimeout) expect(['paid twice', madeAnywhere.length <= 1]).toEqual(['paid twice', true]);

    // A repeat by Idempotency-Key answers the same task and sends nothing.
    const before = createPosts();
    const repeat = await whileTimePasses(g, g.create(body, { 'idempotency-key': key }));
    expect([repeat.body.id, diff(createPosts(), before)]).toEqual([task.id, { freepik: 0, kling3api: 0, 'kling-legacy': 0 }]);

    // Right after (providers now paused, ruled out or holding a task): a second quote is what the second create follows.
    const second = bodyOf(w, `${marker}b`);
    const quote2 = await g.request('POST', '/v1/videos/quote', second);
    const created2 = await g.create(second);
    const order2: Provider[] = quote2.body.order;
    for (const entry of quote2.body.providers ?? []) for (const warning of entry.warnings ?? []) count(`second quote warns: ${String(warning).replace(/[0-9:.TZ-]{8,}/g, '…').slice(0, 70)}`);
    if (order2.length < order.length) count('second quote: fewer eligible than the first');
    const tried2 = (created2.body.attempts ?? []).map((a: any) => a.provider).filter((id: string, i: number, all: string[]) => all.indexOf(id) === i);
    expect(['second create', JSON.stringify(quote2.body.providers), created2.status, tried2]).toEqual([
      'second create',
      JSON.stringify(quote2.body.providers),
      order2.length === 0 ? 422 : 202,
      order2.length === 0 ? [] : order2.slice(0, tried2.length),
    ]);
    if (order2.length > 0) expect(['second create first', tried2[0]]).toEqual(['second create first', order2[0]]);
  } finally {
    await g.close();
  }
}

/**
 * Walks the task's attempts: each at the next provider of the quote's order once the one before
 * certainly refused it (or its provider's next account, on that account's own trouble), each
 * with what its upstream was scripted to answer, and nothing after an accept, a content-policy
 * refusal, or a doubt (unless failover_on_timeout).
 */
function checkAttempts(w: World, order: Provider[], quoted: Map<string, any>, atCreate: any, task: any, createdCount: number): void {
  const attempts: any[] = task.attempts;
  const trace = JSON.stringify({ order, attempts: attempts.map((a) => [a.provider, a.account, a.outcome, a.http_status, a.error_code, a.recovered_by]), status: task.status, error: task.error });
  // What the create answered stays on the task (a lost create found upstream since may read accepted now).
  const pair = (a: any) => [a.provider, a.account, a.at];
  expect([trace, attempts.slice(0, createdCount).map(pair)]).toEqual([trace, atCreate.attempts.map(pair)]);
  expect([trace, attempts.length > 0]).toEqual([trace, true]);
  const faultUsed = new Set<Provider>();
  const accountsTried = new Map<Provider, Set<string>>();
  /** (provider, account) pairs a 429 paused: the only ones a task back from the queue may go to. */
  const paused = new Set<string>();
  const ruledOut = new Set<Provider>();
  let next = 0;
  let current: Provider | undefined;
  /** The provider whose next account must take the task (the one before turned it down for its own trouble). */
  let mustStay: Provider | undefined;
  /** A create whose answer was lost was proved, by the provider's lookup, never accepted: the task may move on. */
  let provedAbsent = false;
  let stop: 'accepted' | 'content_policy' | 'doubt' | undefined;
  let acceptedAt: Provider | undefined;

  for (const [index, attempt] of attempts.entries()) {
    const id = attempt.provider as Provider;
    const fromQueue = index >= createdCount;
    expect([trace, index, stop]).toEqual([trace, index, undefined]);
    if (fromQueue) {
      count('attempt back from the queue');
      // Back from the queue: to an account a 429 paused, or (once a lost create was proved never
      // accepted) on to the next provider of the order; never to one that refused otherwise or may hold the task.
      const resumed = paused.has(`${id}/${attempt.account}`);
      if (!resumed) {
        expect([trace, index, 'proved absent before moving on', provedAbsent, id]).toEqual([trace, index, 'proved absent before moving on', true, order[next]]);
        next += 1;
      }
      expect([trace, index, 'ruled out', ruledOut.has(id)]).toEqual([trace, index, 'ruled out', false]);
      current = id;
    } else if (mustStay) {
      expect([trace, index, 'next account of', id]).toEqual([trace, index, 'next account of', mustStay]);
    } else if (id !== current) {
      // Moving on: the next provider of the quote's order.
      expect([trace, index, id]).toEqual([trace, index, order[next]]);
      next += 1;
      current = id;
    }
    mustStay = undefined;
    const tried = accountsTried.get(id) ?? new Set<string>();
    if (!fromQueue) expect([trace, index, 'account again', tried.has(attempt.account)]).toEqual([trace, index, 'account again', false]);
    tried.add(attempt.account);
    accountsTried.set(id, tried);

    const accounts = w.providers[id].accounts;
    const transport = accounts[Number(String(attempt.account).slice(4)) - 1];
    let expected: Expected;
    if (transport === 'refused' || transport === 'reset_before_write') {
      expected = { outcome: 'failed', httpStatus: null, errorCode: 'provider_error', accountTrouble: false, certain: true, rateLimited: false, createdUpstream: false };
    } else if (!faultUsed.has(id)) {
      faultUsed.add(id);
      expected = expectedOf(id, w.outcomes[id]);
    } else {
      expected = expectedOf(id, 'accept');
    }
    if (expected.outcome === 'ambiguous' && !expected.createdUpstream && attempt.outcome === 'failed' && /not accepted upstream/.test(attempt.message)) {
      // A create whose answer was lost, proved never accepted by the provider's lookup: certainly refused.
      count('lost create proved absent');
      provedAbsent = true;
      expected = { outcome: 'failed', httpStatus: null, accountTrouble: false, certain: true, rateLimited: false, createdUpstream: false };
    }
    if (expected.outcome === 'ambiguous' && attempt.outcome === 'accepted' && attempt.recovered_by) {
      // A create whose answer was lost, found upstream afterwards (by a lookup or the provider's news): it was accepted.
      expect([trace, index, expected.createdUpstream]).toEqual([trace, index, true]);
      expected = { ...expected, outcome: 'accepted' };
    }
    expect([trace, index, attempt.outcome, expected.outcome === 'accepted' && attempt.recovered_by ? null : attempt.http_status]).toEqual([
      trace,
      index,
      expected.outcome,
      expected.httpStatus === 200 && attempt.recovered_by ? null : expected.httpStatus,
    ]);
    if (expected.errorCode && expected.outcome !== 'accepted') expect([trace, index, attempt.error_code]).toEqual([trace, index, expected.errorCode]);
    if (transport === 'reset_before_write') expect([trace, index, attempt.message]).toEqual([trace, index, expect.stringMatching(/before the request was fully sent; nothing was sent/)]);

    if (expected.outcome === 'accepted') {
      stop = 'accepted';
      acceptedAt = id;
    } else if (expected.errorCode === 'content_policy') {
      stop = 'content_policy';
    } else if (expected.outcome === 'ambiguous') {
      ruledOut.add(id);
      if (!w.failoverOnTimeout) stop = 'doubt';
      else current = undefined;
    } else {
      // An address that is down (no connection, or a 5xx) is so for every account reached there
      // (the accounts of one transport share an address): those reached elsewhere may take the task.
      const addressDown = transport !== 'ok' || ['500', '502', '503'].includes(String(w.outcomes[id]));
      if (addressDown) accounts.forEach((other, n) => other === transport && tried.add(`acct${n + 1}`));
      const elsewhere = addressDown && accounts.some((other) => other !== transport);
      if (expected.rateLimited) paused.add(`${id}/${attempt.account}`);
      else if (!elsewhere) ruledOut.add(id);
      const untried = accounts.length > tried.size;
      if ((expected.accountTrouble || elsewhere) && untried) mustStay = id;
      else current = undefined;
    }
    // One provider only with allow_fallbacks: false.
    if (w.routing?.allow_fallbacks === false) expect([trace, index, id]).toEqual([trace, index, order[0]]);
  }

  // Where it ended, and why (never before the provider's next account was asked, after its first one's own trouble).
  expect([trace, 'next account asked', mustStay]).toEqual([trace, 'next account asked', undefined]);
  count(`ended: ${stop ?? task.status}${attempts.length > 1 ? ', after failover' : ''}`);
  for (const attempt of attempts) count(`attempt ${attempt.outcome} ${attempt.http_status ?? attempt.error_code}`);
  if (stop === 'accepted') {
    expect([trace, task.provider, task.provider_task_id, task.error]).toEqual([trace, acceptedAt, expect.any(String), null]);
    // Its cost is that provider's quote (kling3api's create answer states its charge, which stands for it instead).
    if (acceptedAt !== 'kling3api') {
      const entry = quoted.get(acceptedAt!);
      const { at_risk: _atRisk, ...cost } = task.cost;
      expect([trace, cost]).toEqual([trace, { credits: entry.estimated_credits, estimated: true, currency_amount: entry.estimated_cost, currency: 'USD' }]);
    }
    // What a provider left unanswered may have billed (failover_on_timeout): its estimate, under it, at risk.
    const unanswered = attempts.filter((a) => a.outcome === 'ambiguous').map((a) => a.provider);
    for (const risk of task.cost.at_risk ?? []) {
      const entry = quoted.get(risk.provider);
      expect([trace, unanswered.includes(risk.provider), risk]).toEqual([
        trace,
        true,
        { provider: risk.provider, account: expect.any(String), credits: entry.estimated_credits, currency_amount: entry.estimated_cost, currency: 'USD', estimated: true },
      ]);
    }
    return;
  }
  if (stop === 'content_policy') {
    expect([trace, task.status, task.error?.code]).toEqual([trace, 'failed', 'content_policy']);
    return;
  }
  if (stop === 'doubt') {
    expect([trace, task.status === 'succeeded' && task.provider !== attempts.at(-1).provider]).toEqual([trace, false]);
    return;
  }
  // Not accepted anywhere: every provider of the order (the first alone, pinned) was tried, unless a pause keeps it waiting.
  const wanted = w.routing?.allow_fallbacks === false ? 1 : order.length;
  if (task.status === 'queued') {
    expect([trace, paused.size > 0]).toEqual([trace, true]);
    return;
  }
  expect([trace, next, task.status]).toEqual([trace, wanted, 'failed']);
}

it('create follows the quote, fails over exactly on certain failures, records every attempt, and never pays twice, for random configs, requests and upstream answers', async () => {
  const runs = Number(process.env.ROUTING_PROPS_RUNS ?? 60);
  const seed = Number(process.env.ROUTING_PROPS_SEED ?? 2026);
  await fc.assert(fc.asyncProperty(world, run), { numRuns: runs, seed });
  if (process.env.ROUTING_PROPS_STATS) console.log([...stats].sort(([a], [b]) => a.localeCompare(b)).map(([label, n]) => `${label}: ${n}`).join('\n'));
}, 120_000);
