/**
 * Races between three replicas on one PostgreSQL schema, as a balancer spreads requests and
 * provider news over them, with upstreams that outlive the replicas. Each race is forced into the
 * interleaving that matters by an upstream (or a receiver) that holds its answer until the test
 * lets it go, rather than left to timing.
 */
import { describe, expect, it } from 'vitest';
import { loopbackServer } from '../support/raw-answer.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';
import type { TestGateway } from '../support/harness.js';

const available = await postgresAvailable();

/** Far beyond what these tests let pass: a task found done in time was not found by its safety poll. */
const SAFETY_POLL_MS = 600_000;

const LEGACY_ID = '831922345719271500';
const LEGACY_VIDEO = 'https://cdn.example.com/harbour.mp4';

/** A legacy Kling-API answer with `data`. */
const legacyAnswer = (data: Record<string, unknown>) => ({ code: 0, message: 'SUCCEED', request_id: 'r', data });

/**
 * A legacy Kling-API upstream that takes creates at once, holds its first status answer until
 * `answerFirstPoll` (then says `processing`: the job was not done when that fetch reached it) and
 * answers every later fetch `succeed`.
 */
async function legacyUpstreamHoldingFirstPoll() {
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
        void firstPollAnswered.then(() => reply(legacyAnswer({ task_id: LEGACY_ID, task_status: 'processing', task_status_msg: '' })));
        return;
      }
      reply(
        legacyAnswer({
          task_id: LEGACY_ID,
          task_status: 'succeed',
          task_status_msg: '',
          task_result: { videos: [{ id: 'v1', url: LEGACY_VIDEO, duration: '5' }] },
        }),
      );
    });
  });
  return { base: server.base, statusCalls, firstPollReached, answerFirstPoll, close: server.close };
}

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

  it('confirms at once a legacy callback taken by replica B while replica A is polling the task, though A’s poll finds it still running', async () => {
    const upstream = await legacyUpstreamHoldingFirstPoll();
    try {
      const [a, b, c] = await three({}, { 'kling-legacy': { baseUrl: upstream.base } });
      const created = await a!.create({ model: 'kling-v1-6', prompt: 'a harbour at dawn', routing: { providers: ['kling-legacy'] }, webhook_url: 'http://127.0.0.1:9/hooks' });
      expect(created.body.status).toBe('processing');
      const id = created.body.id as string;
      const token = (await a!.gateway.store.getTask(id))!.callback_token!;

      // The safety poll falls due; replica A leases the task and asks the upstream, which holds the answer.
      await replicas.clock.advance(SAFETY_POLL_MS);
      const polling = a!.gateway.tracker.tick();
      await upstream.firstPollReached;
      // Meanwhile the job ends upstream and its one callback (never retried) reaches replica B.
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
    } finally {
      await upstream.close();
    }
  });
});
