/**
 * A create's submission holds its task for at least the provider's time limit plus a margin,
 * whatever `tracking.lease_ms` says, so another replica sharing the database does not take a slow
 * but live create for one a dead replica left (and mark it interrupted) while the upstream may
 * still answer it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import type { Store } from '../../src/store/database.js';
import { heldCall } from '../support/held-call.js';
import { startTestGateway, testConfig, type TestGateway } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const postgres = await postgresAvailable();

const request = { model: 'kling-v3', prompt: 'a slow upstream, two replicas', duration: 5, routing: { providers: ['kling3api'] } };

describe.skipIf(!postgres)('a slow create seen from another replica', { timeout: 60_000 }, () => {
  let schema: string;
  const stores: Store[] = [];
  const gateways: TestGateway[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const releases: (() => void)[] = [];
  afterEach(async () => {
    for (const release of releases.splice(0)) release();
    for (const gateway of gateways.splice(0)) await gateway.close().catch(() => undefined);
    for (const store of stores.splice(0)) await store.close();
    for (const cleanup of cleanups.splice(0)) await cleanup();
    await dropSchema(schema);
  });

  /**
   * Two replicas on one schema (kling3api's time limit 60 s, `lease_ms` 30 s), replica A's create
   * held at kling3api: the replicas, the create on its way, the task's id, and what lets it go.
   */
  async function createHeldOnReplicaA() {
    schema = newSchemaName();
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
    const sandbox = await startSandbox(testConfig(), PROVIDERS, clock);
    cleanups.push(() => sandbox.close());
    const config = { tracking: { lease_ms: 30_000 }, providers: { kling3api: { timeout_ms: 60_000 } } };
    for (const owner of ['replica-a', 'replica-b']) {
      const store = await openPostgresStore(schema);
      stores.push(store);
      gateways.push(await startTestGateway({ clock, store, owner, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config }));
    }
    const [a, b] = gateways as [TestGateway, TestGateway];
    const kling3api = sandbox.simulators.get('kling3api')!;
    const held = heldCall();
    releases.push(held.release);
    kling3api.injectFault({ on: 'submit', hold: held.hold });
    const creating = a.create(request);
    await held.reached;
    const id = (await b.request('GET', '/v1/videos')).body.data[0].id as string;
    return { clock, a, b, kling3api, creating, id, release: held.release };
  }

  it('is not taken over while the upstream may still answer it, and is tracked once it does', async () => {
    const { clock, b, kling3api, creating, id, release } = await createHeldOnReplicaA();

    // Past lease_ms but within kling3api's time limit: the other replica's passes leave it alone.
    await clock.advance(31_000);
    await b.gateway.runOnce();
    const seen = (await b.get(id)).body;
    expect(seen.status).toBe('queued');
    expect(seen.error).toBeNull();
    expect(seen.attempts.map((attempt: { outcome: string }) => attempt.outcome)).not.toContain('interrupted');

    release();
    const created = (await creating).body;
    expect(created.status).toBe('processing');
    const task = (await b.get(id)).body;
    expect(task.status).toBe('processing');
    expect(task.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'accepted' })]);
    expect(task.attempts[0].message ?? null).toBeNull();
    expect(kling3api.tasks).toHaveLength(1);
  });

  it('answered only after the other replica settled it without it: the upstream task tracked by nobody is counted for the alert', async () => {
    const { clock, a, b, kling3api, creating, id, release } = await createHeldOnReplicaA();
    // The gateway's clock passes the submission's lease and the wait for its sender: the other
    // replica settles it (kling3api cannot be asked), while the upstream has yet to act on it.
    await clock.advance(120_000);
    await b.gateway.runOnce();
    await clock.advance(15_000);
    await b.gateway.runOnce();
    expect((await b.get(id)).body).toMatchObject({ status: 'failed', provider_task_id: null });

    release();
    await creating;
    expect(kling3api.tasks).toHaveLength(1);
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toMatch(/kling_gateway_untracked_upstream_tasks_total\{provider="kling3api",found_by="late_answer"\} 1/);
    expect((await b.get(id)).body.status).toBe('failed');
  });
});
