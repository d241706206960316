/**
 * Races between three replicas on one PostgreSQL schema, as a balancer spreads requests and
 * provider news over them, with upstreams that outlive the replicas. Each race is forced into the
 * interleaving that matters by an upstream (or a receiver) that holds its answer until the test
 * lets it go, rather than left to timing.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import { SAMPLE_MP4 } from '../../src/sandbox/simulator-kit.js';
import { CodeMigrationProvider } from '../../src/store/migrations.js';
import type { Store } from '../../src/store/database.js';
import { loopbackServer } from '../support/raw-answer.js';
import { POSTGRES_URL, dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';
import { postgresMigrateTo } from '../support/migrated-store.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

const available = await postgresAvailable();

/** Far beyond what these tests let pass: a task found done in time was not found by its safety poll. */
const SAFETY_POLL_MS = 600_000;

const LEGACY_ID = '831922345719271500';
const LEGACY_VIDEO = 'https://cdn.example.com/harbour.mp4';

/** A legacy Kling-API answer with `data`. */
const legacyAnswer = (data: Record<string, unknown>) => ({ code: 0, message: 'SUCCEED', request_id: 'r', data });

const LEGACY_DONE = {
  task_id: LEGACY_ID,
  task_status: 'succeed',
  task_status_msg: '',
  task_result: { videos: [{ id: 'v1', url: LEGACY_VIDEO, duration: '5' }] },
};

/**
 * A legacy Kling-API upstream that takes creates at once, holds its first status answer until
 * `answerFirstPoll` (then says `firstWord`: `processing` when the job was not done yet as that
 * fetch reached it) and answers every later fetch `succeed`.
 */
async function legacyUpstreamHoldingFirstPoll(firstWord: 'processing' | 'succeed') {
  const statusCalls: string[] = [];
  let reached!: () => void;
  const firstPollReached = new Promise<void>((resolve) => (reached = resolve));
  let answerFirstPoll!: () => void;
  const firstPollAnswered = new Promise<void>((resolve) => (answerFirstPoll = resolve));
  const server = await loopbackServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const reply = (body: unknown) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(body));
      };
      if (req.method === 'POST') return reply(legacyAnswer({ task_id: LEGACY_ID, task_status: 'submitted' }));
      statusCalls.push(req.url ?? '');
      if (statusCalls.length === 1) {
        reached();
        const first = firstWord === 'succeed' ? LEGACY_DONE : { task_id: LEGACY_ID, task_status: 'processing', task_status_msg: '' };
        void firstPollAnswered.then(() => reply(legacyAnswer(first)));
        return;
      }
      reply(legacyAnswer(LEGACY_DONE));
    });
  });
  return { base: server.base, statusCalls, firstPollReached, answerFirstPoll, close: server.close };
}

/**
 * A server that holds the first request it gets with `method` (any, by default): it never answers
 * it unless `release` is called, as a peer whose caller was killed mid-exchange would see it. It
 * answers every other request with `answer`. `seen` lists each request's method, path and
 * `webhook-id`.
 */
async function holdingFirst(answer: (res: ServerResponse) => void, method?: string) {
  const seen: { method: string; path: string; webhookId: string | undefined }[] = [];
  let held = false;
  let reached!: () => void;
  const firstReached = new Promise<void>((resolve) => (reached = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const server = await loopbackServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method ?? '', path: req.url ?? '', webhookId: req.headers['webhook-id'] as string | undefined });
      if (!held && (method === undefined || req.method === method)) {
        held = true;
        reached();
        void released.then(() => answer(res));
        return;
      }
      answer(res);
    });
  });
  return { base: server.base, seen, firstReached, release, close: server.close };
}

/**
 * A transaction of the test's own holding `FOR UPDATE` the rows `lockQuery` selects, so racing
 * replicas all reach the same write before any of them can make it. `blocked` resolves once
 * `count` backends wait behind it (directly, or behind one that does).
 */
async function holdRows(lockQuery: string, values: unknown[]) {
  const holder = new pg.Client({ connectionString: POSTGRES_URL });
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query(lockQuery, values);
  const { rows } = await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const pid = rows[0]!.pid;
  const watcher = new pg.Client({ connectionString: POSTGRES_URL });
  await watcher.connect();
  return {
    async blocked(count: number): Promise<void> {
      for (let tries = 0; tries < 1_000; tries++) {
        const waiting = await watcher.query<{ pid: number; blockers: number[] }>(
          "SELECT pid, pg_blocking_pids(pid) AS blockers FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        );
        const behind = new Set([pid]);
        for (let grew = true; grew; ) {
          grew = false;
          for (const row of waiting.rows) {
            if (!behind.has(row.pid) && row.blockers.some((blocker) => behind.has(blocker))) {
              behind.add(row.pid);
              grew = true;
            }
          }
        }
        if (behind.size - 1 >= count) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`fewer than ${count} backends waited for the held rows`);
    },
    async release(): Promise<void> {
      await holder.query('COMMIT').finally(() => holder.end());
      await watcher.end();
    },
  };
}

/** Signed Freepik webhook headers for `payload`. */
function freepikHeaders(gateway: TestGateway, webhookId: string, payload: string) {
  const timestamp = String(Math.floor(gateway.clock.now() / 1000));
  const secret = gateway.endpoints.get('freepik')!.webhookSecret!;
  return { 'webhook-id': webhookId, 'webhook-timestamp': timestamp, 'webhook-signature': signFreepikWebhook(secret, webhookId, timestamp, payload) };
}

/** Nowhere: deliveries to it fail (and are retried), which these tests do not look at. */
const NO_RECEIVER = 'http://127.0.0.1:9/hooks';

describe.skipIf(!available)('three replicas on PostgreSQL, racing', () => {
  const replicas = usePostgresReplicas({ tracking: { webhook_safety_poll_ms: SAFETY_POLL_MS } });

  /** Replicas A, B and C, each with `config` and the same upstream overrides. */
  async function three(config: Record<string, unknown> = {}, overrides: Record<string, { baseUrl: string }> = {}): Promise<TestGateway[]> {
    return [
      await replicas.replica('replica-a', config, {}, overrides),
      await replicas.replica('replica-b', config, {}, overrides),
      await replicas.replica('replica-c', config, {}, overrides),
    ];
  }

  /** Moves gateway time in 100 ms steps, running every replica's workers, until `check` holds (at most `steps`). */
  async function stepUntil(gateways: TestGateway[], check: () => Promise<boolean>, steps = 50): Promise<boolean> {
    for (let step = 0; step < steps; step++) {
      if (await check()) return true;
      await replicas.clock.advance(100);
      await Promise.all(gateways.map((gateway) => gateway.gateway.runOnce()));
    }
    return check();
  }

  it.each([
    ['still running: the claim is confirmed at once, not at the next safety poll', 'processing', 2],
    ['done: it ends once, with no second fetch', 'succeed', 1],
  ] as const)('takes a legacy callback on replica B while replica A polls the task, whose answer finds it %s', async (_what, firstWord, fetches) => {
    const upstream = await legacyUpstreamHoldingFirstPoll(firstWord);
    try {
      const [a, b, c] = await three({}, { 'kling-legacy': { baseUrl: upstream.base } });
      const created = await a!.create({ model: 'kling-v1-6', prompt: 'a harbour at dawn', routing: { providers: ['kling-legacy'] }, webhook_url: 'http://127.0.0.1:9/hooks' });
      expect(created.body.status).toBe('queued');
      const id = created.body.id as string;
      const token = (await a!.gateway.store.getTask(id))!.callback_token!;

      // The safety poll falls due; replica A leases the task and asks the upstream, which holds the answer.
      await replicas.clock.advance(SAFETY_POLL_MS);
      const polling = a!.gateway.tracker.tick();
      await upstream.firstPollReached;
      // Meanwhile the job ends upstream and its one callback (never retried) reaches replica B.
      await replicas.clock.advance(100);
      const callback = await b!.request('POST', `/v1/webhooks/kling-legacy/${token}`, { task_id: LEGACY_ID, task_status: 'succeed' }, {}, null);
      expect(callback.status).toBe(200);
      // A's answer left the upstream before the job ended.
      upstream.answerFirstPoll();
      await polling;

      // The claim that it finished is confirmed within moments, not at the next safety poll (10 minutes on).
      const done = await stepUntil([a!, b!, c!], async () => (await c!.get(id)).body.status === 'succeeded');
      expect(done, `still ${(await c!.get(id)).body.status} after ${upstream.statusCalls.length} status calls`).toBe(true);
      expect((await c!.get(id)).body).toMatchObject({ status: 'succeeded', provider_task_id: LEGACY_ID, outputs: [expect.objectContaining({ upstream_url: LEGACY_VIDEO })] });
      // One terminal change: one video.succeeded event for the caller.
      const events = (await a!.gateway.store.listDeliveries(id)).map((delivery) => delivery.event_type);
      expect(events.sort()).toEqual(['video.processing', 'video.succeeded']);
      expect(upstream.statusCalls).toHaveLength(fetches);
    } finally {
      await upstream.close();
    }
  });

  /** The events queued for a task's webhook_url, sorted. */
  const eventsOf = async (gateway: TestGateway, id: string) => (await gateway.gateway.store.listDeliveries(id)).map((delivery) => delivery.event_type).sort();

  /**
   * A replica on the shared schema whose clock never moves: once it has started something (a
   * delivery, a copy) it does nothing more — no lease renewal, no record of the outcome — as a
   * replica killed with SIGKILL. `close` (in the test's `finally`) ends it.
   */
  async function frozenReplica(name: string, like: TestGateway, config: Record<string, unknown>) {
    const store: Store = await openPostgresStore(replicas.schema);
    const gateway = await startTestGateway({
      clock: new ManualClock(replicas.clock.now()),
      endpoints: like.endpoints,
      simulators: like.simulators,
      store,
      owner: name,
      config: { tracking: { webhook_safety_poll_ms: SAFETY_POLL_MS }, ...config },
    });
    return {
      gateway,
      async close() {
        await gateway.close();
        await store.close();
      },
    };
  }

  it('never polls a task on a second replica while the first replica’s poll of it is still within the provider’s time limit, though that is longer than tracking.lease_ms', async () => {
    const upstream = await legacyUpstreamHoldingFirstPoll('processing');
    try {
      const config = { tracking: { lease_ms: 30_000 }, providers: { 'kling-legacy': { timeout_ms: 90_000 } } };
      const [a, b, c] = await three(config, { 'kling-legacy': { baseUrl: upstream.base } });
      const created = await a!.create({ model: 'kling-v1-6', prompt: 'a slow reseller', routing: { providers: ['kling-legacy'] } });
      expect(created.body.status).toBe('queued');
      await replicas.clock.advance(SAFETY_POLL_MS);
      const polling = a!.gateway.tracker.tick();
      await upstream.firstPollReached;
      // A's fetch may still be answered: B and C leave the task to it.
      await replicas.clock.advance(60_000);
      await Promise.all([b!.gateway.tracker.tick(), c!.gateway.tracker.tick()]);
      expect(upstream.statusCalls).toHaveLength(1);
      // Past the time limit (and a margin) A is taken for dead: one of them polls it.
      await replicas.clock.advance(36_000);
      await Promise.all([b!.gateway.tracker.tick(), c!.gateway.tracker.tick()]);
      expect(upstream.statusCalls).toHaveLength(2);
      expect((await c!.get(created.body.id)).body.status).toBe('succeeded');
      upstream.answerFirstPoll();
      await polling;
      expect((await c!.get(created.body.id)).body.status).toBe('succeeded');
    } finally {
      upstream.answerFirstPoll();
      await upstream.close();
    }
  });

  it('keeps its schedule after a poll during which a Freepik progress webhook reached another replica: no second poll at once', async () => {
    const freepikId = '1f0c9a57-3f5e-4a51-9d0e-2f6b1b7c2a10';
    const running = { task_id: freepikId, status: 'IN_PROGRESS', generated: [] };
    // Takes the create at once; holds the first status fetch.
    const upstream = await holdingFirst((res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ data: running }));
    }, 'GET');
    try {
      const [a, b, c] = await three({}, { freepik: { baseUrl: upstream.base } });
      const created = await a!.create({ model: 'kling-v3', prompt: 'a long take', duration: 5, routing: { providers: ['freepik'] } });
      expect(created.body).toMatchObject({ status: 'processing', provider_task_id: freepikId });
      const statusCalls = () => upstream.seen.filter((request) => request.method === 'GET').length;
      await replicas.clock.advance(SAFETY_POLL_MS);
      const polling = a!.gateway.tracker.tick();
      await upstream.firstReached;
      await replicas.clock.advance(100);
      const payload = JSON.stringify(running);
      expect((await b!.request('POST', '/v1/webhooks/freepik', payload, freepikHeaders(b!, 'msg_progress', payload), null)).body).toEqual({ received: true, matched: true });
      upstream.release();
      await polling;
      await stepUntil([a!, b!, c!], async () => false, 20);
      expect(statusCalls()).toBe(1);
      expect((await c!.get(created.body.id)).body).toMatchObject({ status: 'processing', provider_status: 'IN_PROGRESS' });
    } finally {
      upstream.release();
      await upstream.close();
    }
  });

  it('makes one task of one Idempotency-Key sent at once to three replicas with one body: all three answer it, and one create goes upstream', async () => {
    const gateways = await three();
    const body = { model: 'kling-v3', prompt: 'one body', duration: 5, routing: { providers: ['kling3api'] } };
    // As below: all three are inside their create transactions before any commits.
    const lock = await holdRows(`SELECT id FROM ${replicas.schema}.providers WHERE id = 'kling3api' FOR UPDATE`, []);
    const racing = replicas.withClockRunning(Promise.all(gateways.map((gateway) => gateway.create(body, { 'idempotency-key': 'one-key-one-body' }))));
    await lock.blocked(3);
    await lock.release();
    const answers = await racing;
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
    expect(new Set(answers.map((answer) => answer.body.id)).size).toBe(1);
    expect(answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true')).toHaveLength(2);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(1);
  });

  it('makes one task of one Idempotency-Key sent at once to three replicas with three bodies: one 202, and 409 for the two other bodies', async () => {
    const gateways = await three();
    const pinned = { model: 'kling-v3', duration: 5, routing: { providers: ['kling3api'] } };
    // Every create reaches its transaction before any can commit: the first to write the key then
    // waits for the provider's lock (held here), and the two others for that key.
    const lock = await holdRows(`SELECT id FROM ${replicas.schema}.providers WHERE id = 'kling3api' FOR UPDATE`, []);
    const racing = Promise.all(gateways.map((gateway, index) => gateway.create({ ...pinned, prompt: `body ${index}` }, { 'idempotency-key': 'one-key-three-bodies' })));
    await lock.blocked(3);
    await lock.release();
    const answers = await racing;
    expect(answers.map((answer) => answer.status).sort()).toEqual([202, 409, 409]);
    const winner = answers.findIndex((answer) => answer.status === 202);
    for (const answer of answers.filter((answer) => answer.status === 409)) {
      expect(answer.body.type).toBe('https://kling-gateway.dev/problems/idempotency-key-reused');
      expect(answer.body.detail).toMatch(/different request body/);
    }
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(1);
    expect((await gateways[0]!.request('GET', '/v1/videos')).body.data.map((task: { id: string }) => task.id)).toEqual([answers[winner]!.body.id]);
    // The winning body, repeated on each replica, names that task.
    for (const gateway of gateways) {
      const repeat = await gateway.create({ ...pinned, prompt: `body ${winner}` }, { 'idempotency-key': 'one-key-three-bodies' });
      expect([repeat.status, repeat.body.id]).toEqual([202, answers[winner]!.body.id]);
    }
  });

  it('cancels a queued task asked on two replicas at once: both answer it canceled, and it ends once (one video.canceled)', async () => {
    const [a, b, c] = await three({ providers: { kling3api: { max_in_flight: 1 } } });
    const pinned = { model: 'kling-v3', prompt: 'two cancels', duration: 5, routing: { providers: ['kling3api'] }, webhook_url: NO_RECEIVER };
    expect((await a!.create(pinned)).body.status).toBe('processing');
    const queued = await a!.create(pinned);
    expect(queued.body.status).toBe('queued');
    const id = queued.body.id as string;
    // Both cancels read the task queued, then wait for its row.
    const lock = await holdRows(`SELECT id FROM ${replicas.schema}.tasks WHERE id = $1 FOR UPDATE`, [id]);
    const cancels = Promise.all([b!, c!].map((gateway) => gateway.request('POST', `/v1/videos/${id}/cancel`)));
    await lock.blocked(2);
    await lock.release();
    const answers = await cancels;
    expect(answers.map((answer) => [answer.status, answer.body.status])).toEqual([
      [200, 'canceled'],
      [200, 'canceled'],
    ]);
    expect(answers[0]!.body.completed_at).toBe(answers[1]!.body.completed_at);
    expect(await eventsOf(a!, id)).toEqual(['video.canceled']);
    // The slot frees: the canceled task is never sent.
    await replicas.clock.advance(10_000);
    await Promise.all([a!, b!, c!].map((gateway) => gateway.gateway.runOnce()));
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(1);
  });

  it('keeps cancels asked on two replicas at once while the third sends the create: turned down there, both answer canceled and it goes nowhere else', async () => {
    // Freepik (tried first) holds the create, then turns it down: without the cancels it would go on to kling3api.
    const freepik = await holdingFirst((res) => {
      res.statusCode = 402;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ message: 'Insufficient credits' }));
    });
    try {
      const [a, b, c] = await three({}, { freepik: { baseUrl: freepik.base } });
      const creating = a!.create({ model: 'kling-v3', prompt: 'three replicas, two cancels', duration: 5, webhook_url: NO_RECEIVER });
      await freepik.firstReached;
      const id = (await b!.request('GET', '/v1/videos')).body.data[0].id as string;
      const sending = (await a!.gateway.store.getTask(id))!;
      expect(sending).toMatchObject({ phase: 'submitting', lease_owner: 'replica-a' });
      const cancels = Promise.all([b!, c!].map((gateway) => gateway.request('POST', `/v1/videos/${id}/cancel`)));
      // Each cancel writes its request on the task (a version each) before it waits for the create.
      for (let tries = 0; tries < 2_000 && (await a!.gateway.store.getTask(id))!.version < sending.version + 2; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect((await a!.gateway.store.getTask(id))!.version).toBe(sending.version + 2);
      freepik.release();
      const answers = await cancels;
      expect(answers.map((answer) => [answer.status, answer.body.status])).toEqual([
        [200, 'canceled'],
        [200, 'canceled'],
      ]);
      expect((await creating).body).toMatchObject({ id, status: 'canceled', attempts: [expect.objectContaining({ provider: 'freepik', http_status: 402 })] });
      expect(await eventsOf(a!, id)).toEqual(['video.canceled']);
      await replicas.clock.advance(60_000);
      await Promise.all([a!, b!, c!].map((gateway) => gateway.gateway.runOnce()));
      expect(replicas.simulators.get('kling3api')!.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
      expect(freepik.seen).toHaveLength(1);
    } finally {
      freepik.release();
      await freepik.close();
    }
  });

  it('sends a task queued on replica B at once when replica C frees its slot by moving the task before it to storage, without waiting for a tick', async () => {
    const results = await holdingFirst((res) => {
      res.setHeader('content-type', 'video/mp4');
      res.end(SAMPLE_MP4);
    });
    try {
      // No worker tick runs during the test: only news of the freed slot can send the queued task.
      const config = {
        tracking: { tick_ms: 3_600_000 },
        providers: { freepik: { max_in_flight: 1 } },
        storage: { mode: 'copy', allow_private_sources: true, filesystem: { path: mkdtempSync(join(tmpdir(), 'kling-gw-shared-outputs-')) } },
      };
      const [a, b, c] = await three(config);
      // Their worker loops run (as `npm start` runs them), and with them what they do on news from other replicas.
      for (const gateway of [a!, b!, c!]) gateway.gateway.startWorkers();
      const pinned = { model: 'kling-v3', duration: 5, routing: { providers: ['freepik'] } };
      const first = await a!.create({ ...pinned, prompt: 'takes the one slot' });
      expect(first.body.status).toBe('queued');
      const second = await b!.create({ ...pinned, prompt: 'waits for it' });
      expect(second.body.status).toBe('queued');
      // The first is done upstream; replica C takes the webhook and starts copying its result (held).
      const payload = JSON.stringify({ task_id: first.body.provider_task_id, status: 'COMPLETED', generated: [`${results.base}/first.mp4`] });
      expect((await c!.request('POST', '/v1/webhooks/freepik', payload, freepikHeaders(c!, 'msg_first_done', payload), null)).status).toBe(200);
      await results.firstReached;
      expect(await a!.gateway.store.getTask(first.body.id)).toMatchObject({ phase: 'storing' });
      // Freepik takes it into its queue: its upstream id tells it was sent.
      let taken: string | null = null;
      for (let tries = 0; tries < 1_000 && !taken; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        taken = (await a!.get(second.body.id)).body.provider_task_id;
      }
      expect(taken).toEqual(expect.any(String));
      expect(replicas.simulators.get('freepik')!.tasks).toHaveLength(2);
    } finally {
      results.release();
      await results.close();
    }
  });

  it('applies a Freepik webhook delivered to two replicas at the same instant once: one applies it, the other answers duplicate', async () => {
    const [a, b, c] = await three();
    const created = await a!.create({ model: 'kling-v3', prompt: 'one webhook, twice', duration: 5, routing: { providers: ['freepik'] }, webhook_url: NO_RECEIVER });
    expect(created.body.status).toBe('queued');
    const id = created.body.id as string;
    const payload = JSON.stringify({ task_id: created.body.provider_task_id, status: 'COMPLETED', generated: ['https://cdn.example.com/one.mp4'] });
    const headers = freepikHeaders(a!, 'msg_sent_twice', payload);
    // Both verified it and found the task tracked; neither has written yet.
    const lock = await holdRows(`SELECT id FROM ${replicas.schema}.tasks WHERE id = $1 FOR UPDATE`, [id]);
    const deliveries = Promise.all([b!, c!].map((gateway) => gateway.request('POST', '/v1/webhooks/freepik', payload, headers, null)));
    await lock.blocked(2);
    await lock.release();
    const answers = await deliveries;
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    expect(answers.map((answer) => JSON.stringify(answer.body)).sort()).toEqual([
      JSON.stringify({ received: true, duplicate: true }),
      JSON.stringify({ received: true, matched: true }),
    ]);
    expect((await a!.get(id)).body).toMatchObject({ status: 'succeeded', outputs: [expect.objectContaining({ upstream_url: 'https://cdn.example.com/one.mp4' })] });
    expect(await eventsOf(a!, id)).toEqual(['video.processing', 'video.succeeded']);
  });

  it('sends a delivery whose replica was killed mid-POST again from exactly one other replica once its lease ends, with the same webhook-id', async () => {
    const receiver = await holdingFirst((res) => res.end());
    const config = { webhooks: { timeout_ms: 20_000 } };
    const [b, c] = [await replicas.replica('replica-b', config), await replicas.replica('replica-c', config)];
    const a = await frozenReplica('replica-a', b, config);
    try {
      const created = await a.gateway.create({ model: 'kling-v3', prompt: 'a delivery left half-way', duration: 5, routing: { providers: ['kling3api'] }, webhook_url: `${receiver.base}/hooks` });
      expect(created.body.status).toBe('processing');
      const id = created.body.id as string;
      // Replica A claims video.processing and posts it; the receiver gets it, and A dies before the answer.
      const aPass = a.gateway.gateway.runOnce();
      await receiver.firstReached;
      const [first] = await b.gateway.store.listDeliveries(id);
      expect(first).toMatchObject({ event_type: 'video.processing', status: 'pending', lease_owner: 'replica-a' });
      const sends = () => receiver.seen.filter((request) => request.webhookId === first!.id).length;
      const processing = async () => (await b.gateway.store.listDeliveries(id)).find((delivery) => delivery.id === first!.id);

      // Its lease (the webhook time limit + 5 s) still runs, to its last millisecond: nobody else sends it.
      await replicas.clock.advance(24_999);
      await Promise.all([b.gateway.runOnce(), c.gateway.runOnce()]);
      expect(sends()).toBe(1);
      // It ran out: B and C race for it, and one sends it.
      await replicas.clock.advance(2);
      await Promise.all([b.gateway.runOnce(), c.gateway.runOnce(), b.gateway.runOnce(), c.gateway.runOnce()]);
      expect(sends()).toBe(2);
      expect(await processing()).toMatchObject({ status: 'delivered', attempts: 1, last_status: 200 });
      await replicas.clock.advance(60_000);
      await Promise.all([b.gateway.runOnce(), c.gateway.runOnce()]);
      expect(sends()).toBe(2);
      // A's late answer (it comes back to life) changes nothing of the record B or C wrote.
      receiver.release();
      await aPass;
      expect(await processing()).toMatchObject({ status: 'delivered', attempts: 1, last_status: 200 });
    } finally {
      receiver.release();
      await a.close();
      await receiver.close();
    }
  });

  it('copies a result whose replica was killed mid-copy from exactly one other replica once its lease ends, and reports it succeeded once', async () => {
    const results = await holdingFirst((res) => {
      res.setHeader('content-type', 'video/mp4');
      res.end(SAMPLE_MP4);
    });
    const config = { storage: { mode: 'copy', allow_private_sources: true, filesystem: { path: mkdtempSync(join(tmpdir(), 'kling-gw-shared-outputs-')) } } };
    const [b, c] = [await replicas.replica('replica-b', config), await replicas.replica('replica-c', config)];
    const a = await frozenReplica('replica-a', b, config);
    try {
      const created = await a.gateway.create({ model: 'kling-v3', prompt: 'a copy left half-way', duration: 5, routing: { providers: ['freepik'] }, webhook_url: NO_RECEIVER });
      const id = created.body.id as string;
      const url = `${results.base}/result.mp4`;
      const payload = JSON.stringify({ task_id: created.body.provider_task_id, status: 'COMPLETED', generated: [url] });
      // Replica A takes the news and starts the copy; the file host has the request, and A dies.
      expect((await a.gateway.request('POST', '/v1/webhooks/freepik', payload, freepikHeaders(a.gateway, 'msg_done', payload), null)).status).toBe(200);
      await results.firstReached;
      expect((await b.gateway.store.getTask(id))).toMatchObject({ phase: 'storing', lease_owner: 'replica-a' });

      // One lease (tracking.lease_ms, 30 s) holds it; then B and C race for it, and one copies it.
      await replicas.clock.advance(29_000);
      await Promise.all([b.gateway.runOnce(), c.gateway.runOnce()]);
      expect(results.seen).toHaveLength(1);
      await replicas.clock.advance(2_000);
      await Promise.all([b.gateway.runOnce(), c.gateway.runOnce(), b.gateway.runOnce(), c.gateway.runOnce()]);
      expect(results.seen).toHaveLength(2);
      const done = (await c.get(id)).body;
      expect(done).toMatchObject({ status: 'succeeded' });
      expect(done.outputs).toEqual([expect.objectContaining({ storage: 'stored', upstream_url: url, sha256: createHash('sha256').update(SAMPLE_MP4).digest('hex') })]);
      expect(await eventsOf(b, id)).toEqual(['video.processing', 'video.succeeded']);
      await replicas.clock.advance(60_000);
      await Promise.all([b.gateway.runOnce(), c.gateway.runOnce()]);
      expect(results.seen).toHaveLength(2);
    } finally {
      results.release();
      await a.close();
      await results.close();
    }
  });
});

describe.skipIf(!available)('three replicas starting at once on a database an older release migrated', () => {
  it('all start: each migration the older schema lacks runs once, and none collides', async () => {
    const schema = newSchemaName();
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}`, max: 2 });
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
    try {
      await pool.query(`CREATE SCHEMA ${schema}`);
      await postgresMigrateTo(db, schema, '0005_usage_and_budgets');
      const all = Object.keys(await new CodeMigrationProvider('postgres').getMigrations());

      const opened = await Promise.allSettled([openPostgresStore(schema), openPostgresStore(schema), openPostgresStore(schema)]);
      for (const result of opened) if (result.status === 'fulfilled') await result.value.close();
      expect(opened.map((result) => (result.status === 'rejected' ? String(result.reason) : 'started'))).toEqual(['started', 'started', 'started']);
      const { rows } = await pool.query<{ name: string }>(`SELECT name FROM ${schema}.kysely_migration ORDER BY name`);
      expect(rows.map((row) => row.name)).toEqual(all);
    } finally {
      await db.destroy();
      await dropSchema(schema);
    }
  });

  it('refuses to start an older release on a schema a newer release migrated, saying so (not that the database is corrupted or cannot be opened), and changes nothing', async () => {
    const schema = newSchemaName();
    try {
      // Replicas of a newer release started first: it knows one migration more than this code.
      await (await openPostgresStore(schema)).close();
      const admin = new pg.Client({ connectionString: POSTGRES_URL });
      await admin.connect();
      const ran = async () => (await admin.query<{ name: string }>(`SELECT name FROM ${schema}.kysely_migration ORDER BY name`)).rows.map((row) => row.name);
      try {
        await admin.query(`INSERT INTO ${schema}.kysely_migration (name, timestamp) VALUES ('9000_of_a_newer_release', $1)`, [new Date().toISOString()]);
        const before = await ran();
        const outcomes = await Promise.allSettled([openPostgresStore(schema), openPostgresStore(schema), openPostgresStore(schema)]);
        for (const outcome of outcomes) if (outcome.status === 'fulfilled') await outcome.value.close();
        const messages = outcomes.map((outcome) => (outcome.status === 'rejected' ? (outcome.reason as Error).message : 'started'));
        for (const message of messages) {
          expect(message).toMatch(/^database postgres:\/\/.* \(schema kg_test_\w+\) was migrated by a newer release of the gateway \(migration 9000_of_a_newer_release, which this release does not know\)/);
          expect(message).not.toMatch(/corrupted|could not open/);
        }
        expect(await ran()).toEqual(before);
      } finally {
        await admin.end();
      }
    } finally {
      await dropSchema(schema);
    }
  });
});
