import { describe, expect, it } from 'vitest';
import { heldCall } from '../support/held-call.js';
import { endListeningConnections, postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const pinned = { model: 'kling-v3', prompt: 'two replicas, one task', duration: 5, routing: { providers: ['kling3api'] } };

describe.skipIf(!available)('two gateway replicas sharing PostgreSQL', () => {
  const replicas = usePostgresReplicas();
  const { replica } = replicas;

  const statusCalls = () => replicas.simulators.get('kling3api')!.requests.filter((r) => r.method === 'GET' && r.path === '/api/status').length;

  it('serves a task created on one replica from the other', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    expect((await a.request('GET', '/readyz', undefined, {}, null)).body).toEqual({ status: 'ready', store: 'postgres' });
    const created = await a.create(pinned);
    expect(created.body.status).toBe('processing');
    // Only replica B runs workers; A just answered the create.
    const done = await b.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    expect((await a.get(created.body.id)).body.status).toBe('succeeded');
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(1);
  });

  it('polls each task from exactly one replica at a time', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await a.create({ ...pinned, prompt: `task ${i}` })).body.id);
    // First poll falls due at 5 s (the simulator's run time); both replicas race for it.
    await replicas.clock.advance(5_500);
    await Promise.all([a.gateway.runOnce(), b.gateway.runOnce(), a.gateway.runOnce(), b.gateway.runOnce()]);
    expect(statusCalls()).toBe(10);
    for (const id of ids) expect((await a.get(id)).body.status).toBe('succeeded');
  });

  it('holds the concurrency cap across replicas', async () => {
    const config = { providers: { kling3api: { max_in_flight: 2 } } };
    const a = await replica('replica-a', config);
    const b = await replica('replica-b', config);
    const answers = await Promise.all([a.create(pinned), b.create(pinned), a.create(pinned), b.create(pinned)]);
    expect(answers.filter((answer) => answer.body.status === 'processing').length).toBeLessThanOrEqual(2);
    // Both replicas' dispatchers race for the free slots.
    await Promise.all([a.gateway.runOnce(), b.gateway.runOnce()]);
    const statuses = await Promise.all(answers.map(async (answer) => (await a.get(answer.body.id)).body.status));
    expect(statuses.sort()).toEqual(['processing', 'processing', 'queued', 'queued']);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(2);
  });

  it('keeps an Idempotency-Key across replicas: one upstream task', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    replicas.simulators.get('kling3api')!.injectFault({ delayMs: 200 });
    const both = Promise.all([
      a.create(pinned, { 'idempotency-key': 'cross-replica' }),
      b.create(pinned, { 'idempotency-key': 'cross-replica' }),
    ]);
    // A repeat on the other replica learns that the first submission ended by re-reading the
    // store each second of gateway time (its events are in the other process).
    let settled = false;
    void both.finally(() => (settled = true));
    // Gateway time moves about as fast as real time, so the waiting replica's limit (upstream
    // timeout + 2 s) is not reached while the first submission is really still in flight.
    while (!settled) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await replicas.clock.advance(100);
    }
    const [first, second] = await both;
    expect(second.status, JSON.stringify(second.body)).toBe(202);
    expect(first.body.id).toBe(second.body.id);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(1);
  });

  it('takes over tracking from a replica that died mid-poll, once its lease runs out', async () => {
    const a = await replica('replica-a');
    const created = await a.create(pinned);
    // Replica A "dies" holding a lease in the middle of a poll.
    await a.gateway.store.updateTask(created.body.id, { lease_owner: 'replica-a', lease_until: replicas.clock.now() + 30_000 });
    const b = await replica('replica-b');
    await replicas.clock.advance(10_000);
    await b.gateway.runOnce();
    expect((await b.get(created.body.id)).body.status).toBe('processing');
    await replicas.clock.advance(25_000);
    await b.gateway.runOnce();
    expect((await b.get(created.body.id)).body.status).toBe('succeeded');
  });

  it("wakes a client waiting on one replica when another records the change (LISTEN/NOTIFY), with no re-read", async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const created = await a.create(pinned);
    // The upstream job is done; nobody has asked yet.
    await replicas.clock.advance(5_500);
    const waiting = b.request('GET', `/v1/videos/${created.body.id}?wait=30`);
    // Replica B is following the task now; from here on the clock stays put, so B never re-reads it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await a.gateway.runOnce();
    const answered = await waiting;
    expect(answered.body.status).toBe('succeeded');
  });

  it('wakes a waiting client again once the server ended the listening connections (pg_terminate_backend)', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const created = await a.create(pinned);
    await replicas.clock.advance(5_500);
    expect(await endListeningConnections(a.gateway.notifications, b.gateway.notifications)).toBe(2);
    for (let tries = 0; !(b.gateway.notifications!.listening && a.gateway.notifications!.listening) && tries < 200; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const waiting = b.request('GET', `/v1/videos/${created.body.id}?wait=30`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // The clock stays put: only the notification can answer the client.
    await a.gateway.runOnce();
    expect((await waiting).body.status).toBe('succeeded');
  });

  it('answers a waiting client whose task changed while the listening connection was down, once it is back', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const created = await a.create(pinned);
    await replicas.clock.advance(5_500);
    const waiting = b.request('GET', `/v1/videos/${created.body.id}?wait=30`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await endListeningConnections(a.gateway.notifications, b.gateway.notifications);
    while (b.gateway.notifications!.listening) await new Promise((resolve) => setTimeout(resolve, 5));
    // The change lands while B hears nothing; the clock stays put, so B's slow re-read never runs.
    await a.gateway.runOnce();
    expect((await waiting).body.status).toBe('succeeded');
  });

  it('shares the circuit: failures on one replica open it for the other', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    replicas.simulators.get('freepik')!.injectFault({ kind: 'unavailable', status: 503, times: 3 });
    const request = { model: 'kling-v3', prompt: 'shared circuit', duration: 5 };
    for (let i = 0; i < 3; i++) expect((await a.create(request)).body.provider).toBe('kling3api');
    const providers = await b.request('GET', '/v1/providers');
    expect(providers.body.data.find((p: { id: string }) => p.id === 'freepik').circuit).toBe('open');
    const skipped = await b.create(request);
    expect(skipped.body.attempts[0]).toMatchObject({ provider: 'freepik', outcome: 'skipped', error_code: 'circuit_open' });
    expect(replicas.simulators.get('freepik')!.requests.filter((r) => r.method === 'POST')).toHaveLength(3);
  });

  it('counts both replicas against one rate window', async () => {
    const config = { providers: { kling3api: { rate_limits: [{ limit: 2, window_ms: 10_000 }] } } };
    const a = await replica('replica-a', config);
    const b = await replica('replica-b', config);
    const statuses = [(await a.create(pinned)).body.status, (await b.create(pinned)).body.status, (await a.create(pinned)).body.status, (await b.create(pinned)).body.status];
    expect(statuses).toEqual(['processing', 'processing', 'queued', 'queued']);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(2);
  });

  it('cancels on one replica a task whose create waits on the other for the rate window: nothing is sent', async () => {
    // One create a second, and two a minute.
    const config = { providers: { kling3api: { rate_limits: [{ limit: 1, window_ms: 1_000 }, { limit: 2, window_ms: 60_000 }] } } };
    const a = await replica('replica-a', config);
    const b = await replica('replica-b', config);
    expect((await a.create({ ...pinned, prompt: 'takes the allowance' })).body.status).toBe('processing');
    // Replica A's dispatch of the next create waits (on the gateway's clock) for the shared window.
    const creating = a.create(pinned);
    let id: string | undefined;
    while (!id) {
      const waiting = (await b.request('GET', '/v1/videos?status=queued')).body.data[0];
      if (waiting && (await b.gateway.store.getTask(waiting.id))?.phase === 'submitting') id = waiting.id;
    }
    // Time runs on, so the wait ends (before, the cancel waited for it, and the create went).
    const answer = await replicas.withClockRunning(b.request('POST', `/v1/videos/${id}/cancel`));
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ status: 'canceled', provider: null, cost: { credits: 0, estimated: false, currency_amount: 0 }, attempts: [] });
    expect((await replicas.withClockRunning(creating)).body).toMatchObject({ id, status: 'canceled', attempts: [] });
    expect(replicas.simulators.get('kling3api')!.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    // The allowance A's dispatch took went back to the shared window: the next create goes at once (the second of the minute).
    expect((await b.create({ ...pinned, prompt: 'the next one' })).body.status).toBe('processing');
  });

  it('keeps a cancel made on one replica while the other sends the create: turned down there, it is sent nowhere else', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const posts = (provider: string) => replicas.simulators.get(provider)!.requests.filter((r) => r.method === 'POST').length;
    // Freepik (tried first) turns the create down once the cancel waits for it: without the cancel it would go on to kling3api.
    const held = heldCall();
    replicas.simulators.get('freepik')!.injectFault({ on: 'submit', kind: 'insufficient_credits', status: 402, hold: held.hold });
    const creating = a.create({ model: 'kling-v3', prompt: 'two replicas, one cancel', duration: 5 });
    let answer;
    let id: string | undefined;
    try {
      await held.reached;
      expect(posts('freepik')).toBe(1);
      id = (await b.request('GET', '/v1/videos')).body.data[0]?.id;
      expect(id).toBeDefined();
      const canceling = b.request('POST', `/v1/videos/${id}/cancel`);
      while ((await b.gateway.store.getTask(id!))?.cancel_requested_at == null) await new Promise((resolve) => setTimeout(resolve, 5));
      held.release();
      answer = await canceling;
    } finally {
      held.release();
    }
    // Before: replica A sent the create on to kling3api, which took it, and B's cancel answered 409.
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id, status: 'canceled', provider: null, cost: { credits: 0, estimated: false, currency_amount: 0 } });
    expect(answer.body.attempts).toMatchObject([{ provider: 'freepik', outcome: 'failed', http_status: 402 }]);
    expect((await creating).body).toMatchObject({ id, status: 'canceled' });
    await replicas.clock.advance(60_000);
    await Promise.all([a.gateway.runOnce(), b.gateway.runOnce()]);
    expect(posts('kling3api')).toBe(0);
    expect((await a.get(id!)).body.status).toBe('canceled');
  });
});
