/**
 * A kling3api create answered with a server error beside a task id is asked about (its status)
 * before the task is given up: the provider may be making, and billing, that video. One so
 * answered while the gateway stops gracefully is not asked in the drain (no call is started then):
 * the named id is kept on the attempt, and the next start asks about it — adopting the task when
 * the provider's status shows it, never sending the create again. So is one whose status cannot be
 * asked at once (the account's rate window is full): held, not failed unasked.
 */
import { expect, it } from 'vitest';
import type { TestGateway } from '../support/harness.js';
import { namedCreateCase, type StatusAnswer, type UpstreamHoldingCreate } from '../support/upstream-holding-create.js';

const NAMED = 'n75named0001';
const VIDEO = 'https://cdn.example.com/named.mp4';
/** kling3api's server error, naming the task it made (`namedServerError`); its status, showing that task done (`shown`). */
const named = namedCreateCase(NAMED, VIDEO, 'answered with a server error during a deploy');
const { request, shown, open } = named;

/** A first deploy whose kling3api create is answered `namedServerError` once its graceful stop has begun; then the next deploy. */
async function namedDuringTheStop(status: unknown): Promise<{ upstream: UpstreamHoldingCreate; created: any; next: TestGateway }> {
  const upstream = await named.upstream(status);
  const deploys = await named.deploys();
  const options = { endpointOverrides: { kling3api: { baseUrl: upstream.base } } };
  const first = await deploys.deploy({}, options);
  open.push(first);
  const answer = first.create(request);
  await upstream.createReached;
  const stopped = first.gateway.close();
  upstream.answerCreate();
  const created = await answer;
  await stopped;
  open.splice(0);
  expect(created.status).toBe(202);
  // Nothing was asked in the drain.
  expect(upstream.statusCalls).toEqual([]);
  const next = await deploys.deploy({}, options);
  open.push(next);
  return { upstream, created: created.body, next };
}

/**
 * A deploy (`config`) whose kling3api create is answered `namedServerError` at once, the status
 * fetches answered by `status` (by the fetch's number): the create, left in doubt (202, queued).
 */
async function namedAtOnce(status: (call: number) => StatusAnswer, config: Record<string, unknown> = {}): Promise<{ upstream: UpstreamHoldingCreate; gw: TestGateway; id: string }> {
  const upstream = await named.upstream(status);
  upstream.answerCreate();
  const deploys = await named.deploys();
  const gw = await deploys.deploy(config, { endpointOverrides: { kling3api: { baseUrl: upstream.base } } });
  open.push(gw);
  const created = await gw.create(request);
  expect(created.status).toBe(202);
  expect(created.body).toMatchObject({ status: 'queued', provider_task_id: null, error: null });
  return { upstream, gw, id: created.body.id };
}

it('a create answered with a server error naming a task during a graceful stop is adopted by the next start once the status shows it', async () => {
  const { upstream, created, next } = await namedDuringTheStop(shown);
  const done = await next.finish(created.id);
  expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: NAMED, error: null });
  expect(done.outputs).toEqual([expect.objectContaining({ upstream_url: VIDEO })]);
  expect(done.attempts).toEqual([
    expect.objectContaining({ provider: 'kling3api', outcome: 'accepted', recovered_by: 'answer', provider_code: 'INTERNAL_ERROR' }),
  ]);
  expect(upstream.statusCalls[0]).toContain(`task_id=${NAMED}`);
  // Never sent again (paid twice).
  expect(upstream.creates).toHaveLength(1);
}, 30_000);

it('one whose named task the provider does not show is not adopted: it fails in doubt, never sent again', async () => {
  // An answer about the task (404), not a failure to get one (a server error, a reset: asked again).
  const notFound = { http: 404, body: { code: 'TASK_NOT_FOUND', message: `Task ${NAMED} not found` } };
  const { upstream, created, next } = await namedDuringTheStop(() => notFound);
  const done = await next.finish(created.id);
  expect(done).toMatchObject({ status: 'failed', provider: 'kling3api', provider_task_id: null, error: { code: 'provider_error' } });
  expect(done.attempts).toEqual([expect.objectContaining({ provider: 'kling3api', outcome: 'ambiguous', recovered_by: null })]);
  // Asked about the task the answer named, by the next start: again until the create could no
  // longer be in the making (its time limit + 5 s), then given up on.
  expect(upstream.statusCalls.length).toBeGreaterThan(0);
  for (const call of upstream.statusCalls) expect(call).toContain(`task_id=${NAMED}`);
  expect(upstream.creates).toHaveLength(1);
}, 30_000);

it('one answered so while the account\'s rate window is full is held until its status can be asked, then adopted', async () => {
  // The create takes the one request a minute allows: its status cannot be asked at once.
  const { upstream, gw, id } = await namedAtOnce(() => ({ http: 200, body: shown }), { providers: { kling3api: { rate_limits: [{ limit: 1, window_ms: 60_000 }] } } });
  expect(upstream.statusCalls).toEqual([]);
  const done = await gw.finish(id, 5_000);
  expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: NAMED });
  expect(done.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: 'answer' })]);
  expect(upstream.creates).toHaveLength(1);
}, 30_000);

it.each([
  ['a server error (503)', { http: 503, body: { code: 'INTERNAL_ERROR', message: 'Server error, please try again later' } }],
  ['throttling (429)', { http: 429, body: { code: 'RATE_LIMITED', message: 'Too many requests, please slow down' } }],
  ['a connection reset', 'reset'],
  // A 2xx that is no answer about the task (a proxy's page, a cut body): it says nothing either.
  ['an unreadable 200 (not the envelope)', { http: 200, body: 'upstream warming up' }],
] as const)('one whose first status fetch fails with %s is asked again and adopted, not failed in doubt', async (_, failure) => {
  // The failed fetch told nothing: the task waits in doubt for the next one.
  const { upstream, gw, id } = await namedAtOnce((call) => (call === 0 ? failure : { http: 200, body: shown }));
  const done = await gw.finish(id, 5_000);
  expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: NAMED });
  expect(done.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: 'answer' })]);
  expect(upstream.statusCalls.slice(0, 2)).toEqual([expect.stringContaining(`task_id=${NAMED}`), expect.stringContaining(`task_id=${NAMED}`)]);
  expect(upstream.creates).toHaveLength(1);
}, 30_000);

it('one its provider does not show yet when first asked (still making it) is asked again, and adopted once shown', async () => {
  const notYet = { http: 404, body: { code: 'TASK_NOT_FOUND', message: `Task ${NAMED} not found` } };
  // A "not found" right after the create's answer proves nothing yet: the task waits in doubt.
  const { upstream, gw, id } = await namedAtOnce((call) => (call === 0 ? notYet : { http: 200, body: shown }));
  expect(upstream.statusCalls).toHaveLength(1);
  const done = await gw.finish(id, 1_000);
  expect(done).toMatchObject({ status: 'succeeded', provider: 'kling3api', provider_task_id: NAMED });
  expect(done.attempts).toEqual([expect.objectContaining({ outcome: 'accepted', recovered_by: 'answer' })]);
  expect(upstream.creates).toHaveLength(1);
}, 30_000);
