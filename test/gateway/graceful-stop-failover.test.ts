/**
 * A graceful stop sends no second create for a task: a dispatch whose create a provider refused
 * once the stop had begun does not fail over to the next provider then, since that create could
 * outlast the drain — cut there, its client's request would be reset, and a provider that gives
 * no way to find a task (kling3api) would leave a video made and billed that the next start fails
 * as `interrupted`. The task waits in the queue instead, its client is answered `202 queued`, and
 * the next start sends it on.
 */
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { heldCall } from '../support/held-call.js';
import { GatewayDeploys, startTestGateway, tempDatabaseUrl, type TestGateway } from '../support/harness.js';
import { MultiKeyKling3api } from '../support/multi-key-upstream.js';

const open: TestGateway[] = [];
const releases: (() => void)[] = [];
const upstreams: MultiKeyKling3api[] = [];
afterEach(async () => {
  for (const release of releases.splice(0)) release();
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
  for (const upstream of upstreams.splice(0)) await upstream.close();
});

it('fails over to no other provider once the stop began: the task waits in the queue, and the next start sends it there', async () => {
  const deploys = await GatewayDeploys.start();
  // Shorter than the upstreams' time limit, so the test does not wait the default drain out.
  const config = { server: { drain_timeout_ms: 3_000 }, providers: { freepik: { rate_limits: [], timeout_ms: 30_000 }, kling3api: { rate_limits: [], timeout_ms: 30_000 } } };
  const first = await deploys.deploy(config);
  open.push(first);
  const freepik = deploys.simulators.get('freepik')!;
  const kling3api = deploys.simulators.get('kling3api')!;
  // Freepik answers the create with a server error, once the stop has begun.
  const refusal = heldCall();
  releases.push(refusal.release);
  freepik.injectFault({ on: 'submit', kind: 'server_error', hold: refusal.hold });
  // kling3api would answer a create only after the drain is over.
  const slow = heldCall();
  releases.push(slow.release);
  kling3api.injectFault({ on: 'submit', hold: slow.hold });

  const answer = first
    .create({ model: 'kling-v3', prompt: 'refused during the stop', duration: 5, routing: { providers: ['freepik', 'kling3api'] } })
    .catch((error: unknown) => ({ status: 0, body: { cut: String(error) } as Record<string, unknown> }));
  await refusal.reached;
  const stopped = first.gateway.close();
  refusal.release();
  const created = await answer;
  await stopped;
  open.splice(0);
  slow.release();

  // The client hears of its task, still to be sent on.
  expect(created.status).toBe(202);
  expect(created.body).toMatchObject({ status: 'queued' });

  // The next start sends it to kling3api, which makes it once; nothing is failed as interrupted.
  const next = await deploys.deploy(config);
  open.push(next);
  const id = String(created.body.id);
  await next.advanceUntil(async () => (await next.get(id)).body.status === 'succeeded');
  const done = (await next.get(id)).body;
  expect(done.attempts).toEqual([
    expect.objectContaining({ provider: 'freepik', outcome: 'failed' }),
    expect.objectContaining({ provider: 'kling3api', outcome: 'accepted' }),
  ]);
  expect(kling3api.tasks).toHaveLength(1);
  await deploys.close();
}, 40_000);

it("asks no other account of the provider once the stop began: the task waits in the queue, and the next start sends it there", async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12));
  const keys = { east: 'key-east-0001', west: 'key-west-0002' };
  const upstream = await MultiKeyKling3api.start(clock, Object.values(keys));
  upstreams.push(upstream);
  const config = {
    database: { url: tempDatabaseUrl() },
    server: { drain_timeout_ms: 3_000 },
    providers: {
      kling3api: {
        base_url: upstream.url,
        timeout_ms: 30_000,
        rate_limits: [],
        accounts: [
          { id: 'east', api_key: keys.east },
          { id: 'west', api_key: keys.west },
        ],
      },
    },
  };
  const first = await startTestGateway({ clock, config });
  open.push(first);
  // The first account's credits run out, said once the stop has begun; the other's create would
  // be answered only after the drain is over.
  const refusal = heldCall();
  releases.push(refusal.release);
  upstream.simulator.injectFault({ on: 'submit', kind: 'insufficient_credits', hold: refusal.hold });
  const slow = heldCall();
  releases.push(slow.release);
  upstream.simulator.injectFault({ on: 'submit', hold: slow.hold });

  const answer = first
    .create({ model: 'kling-v3', prompt: 'credits out during the stop', duration: 5, routing: { providers: ['kling3api'] } })
    .catch((error: unknown) => ({ status: 0, body: { cut: String(error) } as Record<string, unknown> }));
  await refusal.reached;
  const stopped = first.gateway.close();
  refusal.release();
  const created = await answer;
  await stopped;
  open.splice(0);
  slow.release();

  expect(created.status).toBe(202);
  expect(created.body).toMatchObject({ status: 'queued' });
  expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'failed', error_code: 'insufficient_credits' })]);

  const next = await startTestGateway({ clock, config });
  open.push(next);
  const id = String(created.body.id);
  await next.advanceUntil(async () => (await next.get(id)).body.status === 'succeeded');
  expect([...upstream.created.values()].flat()).toHaveLength(1);
}, 40_000);
