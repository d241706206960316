/**
 * Outbound webhooks of a replica whose clock drifts off the database server's after it started (an
 * NTP step, a paused VM resumed): a delivery's lease and due time are judged on the claiming
 * replica's clock, so while it is more than 1 s off it claims none (README *Running replicas*,
 * *Clocks*), also not the next ones due when its deliveries on their way are answered (a
 * finished delivery makes room at once, not at the next tick). A replica on a good clock delivers
 * them meanwhile; once the clock is put right the drifting replica delivers again.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import type { Store } from '../../src/store/database.js';
import { DriftingClock } from '../support/drifting-clock.js';
import { startTestGateway, testConfig, type TestGateway } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';
import { closeWebhookReceivers, webhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

const available = await postgresAvailable();

/** How long to wait for real-socket effects and a reading of the clock (a database round trip) on a loaded machine. */
const SLOW_MACHINE = { timeout: 10_000, interval: 20 };

/** Each try may take a minute (real time): a POST the receiver holds never times out while the test runs. */
const config = { webhooks: { timeout_ms: 60_000 } };

describe.skipIf(!available)('outbound webhooks of a replica whose clock drifts after it started', () => {
  let schema: string | undefined;
  const stores: Store[] = [];
  const gateways: TestGateway[] = [];
  const receivers: WebhookReceiver[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  afterEach(async () => {
    await closeWebhookReceivers(receivers);
    for (const gateway of gateways.splice(0)) await gateway.close();
    for (const store of stores.splice(0)) await store.close();
    for (const cleanup of cleanups.splice(0)) await cleanup();
    if (schema) await dropSchema(schema);
    schema = undefined;
  });

  /**
   * Two replicas on one schema, each on the machine's wall clock (with timers the test moves) and
   * reading it against the database server's: `drifting`, whose clock the test moves off, and
   * `onTime`. The simulators' jobs run for an hour: each task sends one event, `video.processing`.
   */
  async function twoReplicas() {
    schema = newSchemaName();
    const sandbox = await startSandbox(testConfig({ sandbox: { processing_ms: 3_600_000 } }), PROVIDERS, new DriftingClock());
    cleanups.push(sandbox.close);
    const start = async (owner: string) => {
      const store = await openPostgresStore(schema!);
      stores.push(store);
      const clock = new DriftingClock();
      const gateway = await startTestGateway({ clock, checkClock: true, store, owner, endpoints: sandbox.endpoints, simulators: sandbox.simulators, config });
      gateways.push(gateway);
      return { gateway, clock };
    };
    return { drifting: await start('drifting'), onTime: await start('on-time') };
  }

  it("claims no delivery while its clock is off, not even when its deliveries on their way are answered; a replica on a good clock delivers them, and it delivers again once its clock is back", { timeout: 60_000 }, async () => {
    const { drifting, onTime } = await twoReplicas();
    const receiver = await webhookReceiver(true);
    receivers.push(receiver);
    const create = async (prompt: string) => {
      const created = await onTime.gateway.create({ model: 'kling-v3', prompt, duration: 5, routing: { providers: ['kling3api'] }, webhook_url: receiver.url });
      expect(created.body.status).toBe('processing');
      return created.body.id as string;
    };
    /** Each task's one delivery as its tenant reads it. */
    const deliveries = async (ids: string[]) =>
      Promise.all(ids.map(async (id) => ((await onTime.gateway.request('GET', `/v1/videos/${id}/webhooks`)).body.data as { id: string; status: string; attempts: number }[])[0]!));
    const readiness = async () => (await drifting.gateway.request('GET', '/readyz', undefined, {}, null)).body;

    // Eleven events due: one more than the drifting replica may have of one tenant on their way.
    const ids: string[] = [];
    for (let index = 0; index < 11; index++) ids.push(await create(`event ${index}`));
    drifting.gateway.gateway.startWorkers();
    await drifting.clock.advance(0);
    // Its worker pass claims ten; the receiver holds their POSTs.
    await vi.waitFor(() => expect(receiver.held).toHaveLength(10), SLOW_MACHINE);

    // Its clock steps 20 s ahead while they are on their way; then the receiver answers them. A
    // delivery answered makes room, and the eleventh is due: this replica claims it no more.
    drifting.clock.driftMs = 20_000;
    receiver.answerHeld();
    await drifting.gateway.gateway.webhooks.idle();
    // A few seconds of its worker loops change nothing.
    for (let second = 0; second < 5; second++) {
      await drifting.clock.advance(1_000);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await drifting.gateway.gateway.webhooks.idle();
    expect(receiver.received).toBe(10);
    await vi.waitFor(async () => expect((await readiness()).reason).toMatch(/clock is 20\.\d s ahead of the database server's/), SLOW_MACHINE);
    const left = (await deliveries(ids)).filter((delivery) => delivery.status !== 'delivered');
    expect(left).toEqual([expect.objectContaining({ status: 'pending', attempts: 0 })]);

    // The replica on a good clock delivers it at its next pass.
    await onTime.gateway.gateway.runOnce();
    expect(receiver.received).toBe(11);
    expect(receiver.ids.at(-1)).toBe(left[0]!.id);
    expect((await deliveries(ids)).map((delivery) => delivery.status)).toEqual(Array(11).fill('delivered'));

    // The drifting replica's clock is put right: it is ready again, and delivers the next event itself.
    drifting.clock.driftMs = 0;
    const next = await create('after the clock was put right');
    await vi.waitFor(async () => {
      await drifting.clock.advance(1_000);
      expect(receiver.received).toBe(12);
    }, SLOW_MACHINE);
    // The receiver counts the POST when it arrives; the replica records the answer after it: wait for that.
    await drifting.gateway.gateway.webhooks.idle();
    expect(await readiness()).toEqual({ status: 'ready', store: 'postgres' });
    expect(await deliveries([next])).toEqual([expect.objectContaining({ id: receiver.ids.at(-1), status: 'delivered', attempts: 1 })]);
  });
});
