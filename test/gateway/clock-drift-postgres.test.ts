/**
 * A replica whose clock drifts off the database server's after it started (an NTP step, a paused VM
 * resumed) would read other replicas' live leases as run out and send their creates again. It
 * reads its clock again every minute: while it is off by more than 1 s the gauge shows by how much,
 * `/readyz` answers 503 saying why, an error is logged, and it takes no leased work (no dispatch,
 * no poll); once the clock is back within the limit it is ready and works again.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ProviderSimulator } from '../../src/core/upstream/provider.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import type { Store } from '../../src/store/database.js';
import { capturedLogs } from '../support/captured-logs.js';
import { DriftingClock } from '../support/drifting-clock.js';
import { heldCall } from '../support/held-call.js';
import { TENANT_KEY, testConfig } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const available = await postgresAvailable();

/** How long to wait for a reading of the clock (a database round trip) on a loaded machine. */
const SLOW_MACHINE = { timeout: 10_000, interval: 20 };

const pinned = { model: 'kling-v3', prompt: 'a clock that drifts', duration: 5, routing: { providers: ['kling3api'] } };

describe.skipIf(!available)('a replica whose clock drifts after it started', () => {
  let schema: string;
  let store: Store;
  let clock: DriftingClock;
  let gateway: Gateway;
  let url: string;
  let kling3api: ProviderSimulator;
  let sandboxSimulators: Map<string, ProviderSimulator>;
  let closeSandbox: () => Promise<void>;
  let logs: ReturnType<typeof capturedLogs>;

  /** Starts the replica on `clock`. */
  const start = async (withSteady = true) => {
    clock = new DriftingClock(withSteady);
    const config = testConfig({ tracking: { tick_ms: 5_000 } });
    const sandbox = await startSandbox(config, PROVIDERS, clock);
    kling3api = sandbox.simulators.get('kling3api')!;
    sandboxSimulators = sandbox.simulators;
    closeSandbox = sandbox.close;
    logs = capturedLogs();
    gateway = await Gateway.create({
      config,
      providers: PROVIDERS,
      endpoints: sandbox.endpoints,
      clock,
      checkClock: true,
      logger: createLogger('info', { destination: logs.sink }),
      random: () => 0.5,
      store,
      owner: 'drifting',
    });
    url = await gateway.listen(0, '127.0.0.1');
    gateway.setPublicUrl(url);
    gateway.startWorkers();
  };

  beforeEach(async () => {
    schema = newSchemaName();
    store = await openPostgresStore(schema);
  });

  afterEach(async () => {
    await gateway?.close();
    await store.close();
    await closeSandbox?.();
    await dropSchema(schema);
  });

  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${TENANT_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, body: text.startsWith('{') ? JSON.parse(text) : text };
  };
  const offsetSeconds = async () => {
    const { body } = await call('GET', '/metrics');
    const line = /^kling_gateway_clock_offset_seconds (\S+)$/m.exec(body as string);
    return line ? Number(line[1]) : undefined;
  };
  const upstreamCalls = () => kling3api.requests.filter((request) => request.path.startsWith('/api/')).length;
  /** Runs the workers' timers for `ms` (the clock's drift stays as it is). */
  const runFor = async (ms: number) => {
    for (let run = 0; run < ms; run += 1_000) {
      await clock.advance(1_000);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };

  it('finds a drift it did not see step at its minutely reading: the gauge shows it, /readyz answers 503 saying why, an error is logged', async () => {
    // No steady clock: only the reading every minute can find it (as with a slow drift).
    await start(false);
    expect(Math.abs((await offsetSeconds())!)).toBeLessThan(1);
    expect((await call('GET', '/readyz')).status).toBe(200);

    clock.driftMs = 20_000;
    await runFor(60_000);
    // The minute's reading fell due at the last step; it is a round trip to the database, which a
    // loaded machine may take a while to finish: wait for it, without moving the clock further.
    await vi.waitFor(async () => expect(await offsetSeconds()).toBeGreaterThan(19), SLOW_MACHINE);

    expect(await offsetSeconds()).toBeLessThan(21);
    const ready = await call('GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'unavailable', store: 'postgres' });
    expect(ready.body.reason).toMatch(/clock is 20\.\d s ahead of the database server's \(more than 1 s\): taking no work/);
    expect(logs.text()).toMatch(/"level":"error".*clock is 20\.\d s ahead of the database server's/);

    // Put right (NTP): ready again at the next reading, a few seconds later (the reading above had
    // ended, so the next one is due 5 s of gateway time after it; again only the reading is waited for).
    clock.driftMs = 0;
    await runFor(5_000);
    await vi.waitFor(async () => expect(Math.abs((await offsetSeconds())!)).toBeLessThan(1), SLOW_MACHINE);
    expect(await call('GET', '/readyz')).toEqual({ status: 200, body: { status: 'ready', store: 'postgres' } });
  });

  it('sees a step at its next worker pass, and is ready again soon after the clock is put right', async () => {
    await start();
    clock.driftMs = 20_000;
    await runFor(1_000);
    await vi.waitFor(async () => expect((await call('GET', '/readyz')).body.reason).toMatch(/clock is 20\.\d s ahead of the database server's/), SLOW_MACHINE);
    expect(await call('GET', '/readyz')).toMatchObject({ status: 503, body: { status: 'unavailable' } });
    expect(await offsetSeconds()).toBeGreaterThan(19);

    clock.driftMs = 0;
    await runFor(1_000);
    await vi.waitFor(async () => expect(await call('GET', '/readyz')).toEqual({ status: 200, body: { status: 'ready', store: 'postgres' } }), SLOW_MACHINE);
  });

  it('takes no leased work while its clock is off, and takes it again once it is back', { timeout: 30_000 }, async () => {
    await start();
    const tracked = await call('POST', '/v1/videos', pinned);
    expect(tracked.body.status).toBe('processing');

    clock.driftMs = 20_000;
    const callsWhileOff = upstreamCalls();

    // A create that still reaches it is kept, queued, for a replica whose clock agrees: nothing is sent.
    const queued = await call('POST', '/v1/videos', { ...pinned, prompt: 'queued while off' });
    expect(queued.status).toBe(202);
    expect(queued.body.status).toBe('queued');
    // A minute of worker loops, and passes started outside them: no dispatch, no poll, no lease.
    await runFor(60_000);
    await Promise.all([gateway.dispatcher.tick(), gateway.tracker.tick(), gateway.runOnce()]);
    expect(upstreamCalls()).toBe(callsWhileOff);
    const row = await gateway.store.getTask(queued.body.id);
    expect(row).toMatchObject({ phase: 'dispatch', lease_owner: null });
    expect((await call('GET', `/v1/videos/${tracked.body.id}`)).body.status).toBe('processing');

    clock.driftMs = 0;
    await gateway.checkClock();
    // Real time hardly ran: the poll and the create (written 20 s ahead) fall due now, as they would have by then.
    await store.db.updateTable('tasks').set({ dispatch_after: Date.now() }).where('phase', '=', 'dispatch').execute();
    await store.db.updateTable('tasks').set({ next_poll_at: Date.now() }).where('phase', '=', 'tracking').execute();
    // The workers' timers run on until both have moved (a loaded machine may need more real time per pass).
    await vi.waitFor(
      async () => {
        await clock.advance(1_000);
        expect((await call('GET', `/v1/videos/${queued.body.id}`)).body.status).not.toBe('queued');
        expect((await call('GET', `/v1/videos/${tracked.body.id}`)).body.status).toBe('succeeded');
      },
      { timeout: 15_000, interval: 20 },
    );
    expect(upstreamCalls()).toBeGreaterThan(callsWhileOff);
  });

  it("leaves a create another replica is sending under a live lease to it, however far ahead its clock went", { timeout: 30_000 }, async () => {
    await start();
    const template = (await gateway.store.getTask((await call('POST', '/v1/videos', pinned)).body.id))!;
    // Replica A sends this create now; its lease runs 15 s more (on the database server's time).
    await gateway.store.createTask({
      ...template,
      id: 'vid_on_the_wire_at_a',
      callback_token: 'tok_on_the_wire_at_a',
      phase: 'submitting',
      status: 'queued',
      provider: null,
      account: null,
      provider_task_id: null,
      lease_owner: 'replica-a',
      lease_until: Date.now() + 15_000,
    });
    await gateway.store.addAttempt({
      task_id: 'vid_on_the_wire_at_a',
      provider: 'kling3api',
      account: 'default',
      outcome: 'sending',
      error_code: null,
      provider_code: null,
      http_status: null,
      latency_ms: null,
      message: null,
      at: Date.now(),
    });

    // This replica's clock jumps past the end of A's lease (a VM resumed).
    clock.driftMs = 20_000;
    await runFor(60_000);
    await Promise.all([gateway.dispatcher.tick(), gateway.runOnce()]);

    expect(await gateway.store.getTask('vid_on_the_wire_at_a')).toMatchObject({ phase: 'submitting', lease_owner: 'replica-a' });
  });

  it('records the answer of a create on its way when the clock steps, and sends it nowhere else after a refusal', { timeout: 30_000 }, async () => {
    await start();
    const freepik = () => sandboxSimulators.get('freepik')!.requests.filter((request) => request.method === 'POST').length;
    // One create is answered (accepted), the next refused with a 500. Each is held upstream until the
    // clock has stepped; the second is sent only once the first is held, so each takes its own fault.
    const accepted = heldCall();
    const refusal = heldCall();
    kling3api.injectFault({ on: 'submit', hold: accepted.hold });
    kling3api.injectFault({ on: 'submit', status: 500, hold: refusal.hold });
    const onTheWire = call('POST', '/v1/videos', pinned);
    await accepted.reached;
    const refused = call('POST', '/v1/videos', { ...pinned, prompt: 'refused while off', routing: { providers: ['kling3api', 'freepik'] } });
    await refusal.reached;
    // Both creates are through the database and on the wire: the clock steps, then they are answered.
    clock.driftMs = 20_000;
    await runFor(1_000);
    accepted.release();
    refusal.release();

    expect((await onTheWire).body.status).toBe('processing');
    expect((await refused).body.status).toBe('queued');
    expect(freepik()).toBe(0);
  });
});
