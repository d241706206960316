/**
 * Three replicas on one PostgreSQL schema, with requests arriving at all of them at once: the
 * promises of "Scaling out" must hold under a race, not only one request after another. The
 * tenant's create limit, an account's rate window and its cap count every replica's creates;
 * one Idempotency-Key sent to every replica at once makes one task; a dead provider costs
 * `consecutive_failures` calls plus one probe per half-open period in total; and a create left
 * in doubt by a replica that died is settled by exactly one of the others.
 */
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas, type PostgresReplicas } from '../support/postgres-replicas.js';
import type { TestGateway } from '../support/harness.js';

const available = await postgresAvailable();

const pinned = { model: 'kling-v3', prompt: 'three replicas', duration: 5, routing: { providers: ['kling3api'] } };

/** Three replicas of the current test, each with `config`. */
async function three(replicas: PostgresReplicas, config: Record<string, unknown> = {}): Promise<TestGateway[]> {
  return [await replicas.replica('replica-a', config), await replicas.replica('replica-b', config), await replicas.replica('replica-c', config)];
}

/** `count` creates spread over the replicas, all sent at once. */
function createsAtOnce(gateways: TestGateway[], count: number, body: Record<string, unknown> = pinned) {
  return Promise.all(Array.from({ length: count }, (_, index) => gateways[index % gateways.length]!.create({ ...body, prompt: `${String(body.prompt)} ${index}` })));
}

describe.skipIf(!available)('three gateway replicas sharing PostgreSQL, creates racing', () => {
  const replicas = usePostgresReplicas();

  it("counts creates arriving at every replica at once against the tenant's one limit", async () => {
    const gateways = await three(replicas, { limits: { creates_per_minute: 4 } });
    const statuses = (await createsAtOnce(gateways, 12)).map((answer) => answer.status);
    expect(statuses.filter((status) => status === 202)).toHaveLength(4);
    expect(statuses.filter((status) => status === 429)).toHaveLength(8);
  });

  it("sends no more creates than the account's rate window allows, whichever replicas take them", async () => {
    const gateways = await three(replicas, { providers: { kling3api: { rate_limits: [{ limit: 2, window_ms: 10_000 }] } } });
    await createsAtOnce(gateways, 9);
    await Promise.all(gateways.map((gateway) => gateway.gateway.runOnce()));
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(2);
  });

  it('holds the cap across replicas and hands each freed slot on, until every task is done', async () => {
    const gateways = await three(replicas, { providers: { kling3api: { max_in_flight: 2 } } });
    const ids = (await createsAtOnce(gateways, 9)).map((answer) => answer.body.id as string);
    const statuses = async () => Promise.all(ids.map(async (id) => (await gateways[0]!.get(id)).body.status as string));
    for (let step = 0; step < 60; step++) {
      await Promise.all(gateways.map((gateway) => gateway.gateway.runOnce()));
      const now = await statuses();
      expect(now.filter((status) => status === 'processing').length).toBeLessThanOrEqual(2);
      if (now.every((status) => status === 'succeeded')) break;
      await replicas.clock.advance(1_000);
    }
    expect(await statuses()).toEqual(ids.map(() => 'succeeded'));
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(9);
  });

  it('makes one task of one Idempotency-Key sent to three replicas at once', async () => {
    const gateways = await three(replicas);
    replicas.simulators.get('kling3api')!.injectFault({ delayMs: 200 });
    const answers = await replicas.withClockRunning(Promise.all(gateways.map((gateway) => gateway.create(pinned, { 'idempotency-key': 'one-key' }))));
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
    expect(new Set(answers.map((answer) => answer.body.id)).size).toBe(1);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(1);
  });

  it('spends consecutive_failures calls on a dead provider, then one probe per half-open period, over all replicas', async () => {
    const breaker = { consecutive_failures: 3, half_open_after_ms: 60_000 };
    const gateways = await three(replicas, { providers: { freepik: { circuit_breaker: breaker } } });
    const freepik = replicas.simulators.get('freepik')!;
    freepik.injectFault({ kind: 'unavailable', status: 503, times: 1_000 });
    const posts = () => freepik.requests.filter((request) => request.method === 'POST').length;
    // Calls are counted as the replicas recorded them (each attempt is written before it leaves;
    // a create the circuit turned away is a `skipped` attempt), and the simulator's POSTs may only
    // be fewer: a call that gets no connection within `connect_timeout_ms` (a real-time limit) on a
    // machine loaded far past its cores never reaches it. A fresh-clone CI run (2026-12-05, the
    // whole suite) saw one POST fewer than the one probe after the half-open period; not
    // reproduced alone nor beside three busy loops. A missing probe still fails this.
    const { db } = gateways[0]!.gateway.store.store;
    const calls = async () => {
      const made = db.selectFrom('attempts').select((eb) => eb.fn.countAll<number>().as('calls')).where('provider', '=', 'freepik').where('outcome', '!=', 'skipped');
      return Number((await made.executeTakeFirstOrThrow()).calls);
    };
    const unpinned = { model: 'kling-v3', prompt: 'a dead provider', duration: 5 };
    await replicas.withClockRunning(createsAtOnce(gateways, 12, unpinned));
    // A call already on its way when the first failure lands may add one (README "The shared circuit").
    const opened = await calls();
    expect(opened).toBeLessThanOrEqual(breaker.consecutive_failures + 1);
    expect(posts()).toBeLessThanOrEqual(opened);
    await replicas.clock.advance(breaker.half_open_after_ms + 1_000);
    await replicas.withClockRunning(createsAtOnce(gateways, 12, unpinned));
    expect(await calls()).toBe(opened + 1);
    expect(posts()).toBeLessThanOrEqual(opened + 1);
  });

  it("settles a dead replica's create in doubt from exactly one replica: adopted once, never sent again", async () => {
    const gateways = await three(replicas);
    const created = await gateways[0]!.create({ model: 'kling-v1', prompt: 'an old film look', duration: 5 });
    const id = created.body.id as string;
    // As a replica killed mid-create leaves it: the attempt on its way, the lease run out.
    const store = gateways[0]!.gateway.store;
    await store.updateTask(id, { phase: 'submitting', status: 'queued', provider_task_id: null, lease_owner: 'dead-replica', lease_until: replicas.clock.now() - 1 });
    await store.updateAttempt(id, 1, { outcome: 'sending', latency_ms: null, provider_task_id: null, tracking_json: null, message: null, error_code: null, recovered_by: null });
    await Promise.all([...gateways, ...gateways].map((gateway) => gateway.gateway.runOnce()));
    expect((await gateways[1]!.get(id)).body.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: 'external_id' })]);
    expect((await gateways[2]!.finish(id)).status).toBe('succeeded');
    expect(replicas.simulators.get('kling-legacy')!.tasks).toHaveLength(1);
  });
});
