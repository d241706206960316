/**
 * A graceful stop answers a create that was on the wire at the signal within its drain, also when
 * the upstream let that create time out: the stop sends no new upstream call to find out what the
 * provider holds (a lookup can take the provider's whole time limit again); the task is left in
 * doubt for recovery, and the client gets its answer instead of a connection cut once the drain and
 * the 5 s the stop then waits for work still running are over (with the default 30 s time limit: a
 * create that timed out at 30 s, then a lookup hanging 30 s more, past the 35 s drain + 5 s).
 */
import { afterEach, expect, it } from 'vitest';
import { heldCall } from '../support/held-call.js';
import { GatewayDeploys, startTestGateway, type TestGateway } from '../support/harness.js';

const open: TestGateway[] = [];
const releases: (() => void)[] = [];
afterEach(async () => {
  for (const release of releases.splice(0)) release();
  for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
});

/** The legacy API's time limit; the drain covers it with a margin, as the default drain does. */
const TIMEOUT_MS = 6_000;
const DRAIN_MS = 6_500;

it('answers a create whose upstream timed out during the stop, without looking the create up first', async () => {
  const gw = await startTestGateway({
    config: {
      server: { drain_timeout_ms: DRAIN_MS },
      providers: { 'kling-legacy': { timeout_ms: TIMEOUT_MS, rate_limits: [] } },
    },
  });
  open.push(gw);
  const legacy = gw.simulator('kling-legacy');
  // The create reaches the upstream, which never answers it; nor would it answer a lookup.
  const create = heldCall();
  releases.push(create.release);
  legacy.injectFault({ on: 'submit', hold: create.hold });
  legacy.injectFault({ on: 'status', transport: 'hang', times: 10 });

  const answer = gw
    .create({ model: 'kling-v1-6', prompt: 'on the wire at the stop', duration: 5, routing: { providers: ['kling-legacy'] } })
    .catch((error: unknown) => ({ status: 0, body: { cut: String(error) } }));
  await create.reached;
  const stopped = gw.gateway.close();

  // The client hears of its task: it is waiting in doubt (recovery finds out what the provider holds).
  const created = await answer;
  expect(created.status).toBe(202);
  expect(created.body).toMatchObject({ status: 'queued' });
  await stopped;
  open.splice(0);
  create.release();
  await Promise.all([...gw.simulators.values()].map((simulator) => simulator.close()));
}, 30_000);

it('a create whose answer is lost during the stop after its task\'s deadline is looked up by the next start, not failed unasked', async () => {
  const deploys = await GatewayDeploys.start();
  const config = { tasks: { deadline_ms: 60_000 } };
  // Kling's own API: the create's external_task_id finds the task it made.
  const endpointOverrides = { 'kling-legacy': { apiShape: 'official' as const } };
  const first = await deploys.deploy(config, { endpointOverrides });
  open.push(first);
  const legacy = deploys.simulators.get('kling-legacy')!;
  // The upstream takes the create, but its answer never reaches the gateway.
  const create = heldCall();
  releases.push(create.release);
  legacy.injectFault({ on: 'submit', hold: create.hold, transport: 'drop_after_accept' });
  const answer = first.create({ model: 'kling-v3', prompt: 'sent late in its life', duration: 5, routing: { providers: ['kling-legacy', 'kling3api'] } });
  await create.reached;
  // The task's deadline passes while its create is on the wire, then the gateway is told to stop.
  await deploys.clock.advance(61_000);
  const stopped = first.gateway.close();
  create.release();
  const created = await answer;
  await stopped;
  open.splice(0);
  // Not failed before anyone asked the provider, which holds (and bills) the task.
  expect(created.status).toBe(202);
  expect(created.body.status).toBe('queued');

  const next = await deploys.deploy(config, { endpointOverrides });
  open.push(next);
  await next.advanceUntil(async () => (await next.get(created.body.id)).body.attempts[0]?.outcome !== 'ambiguous');
  const found = (await next.get(created.body.id)).body;
  expect(found.attempts).toEqual([expect.objectContaining({ provider: 'kling-legacy', outcome: 'accepted', recovered_by: 'external_id' })]);
  expect(legacy.tasks).toHaveLength(1);
  expect(deploys.simulators.get('kling3api')!.tasks).toHaveLength(0);
  await deploys.close();
}, 30_000);
