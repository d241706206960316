import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { heldCall } from '../support/held-call.js';
import { OTHER_TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

/** The problem `type`s of the two 409s a create with an Idempotency-Key can get. */
const KEY_REUSED = 'https://kling-gateway.dev/problems/idempotency-key-reused';
const KEY_IN_PROGRESS = 'https://kling-gateway.dev/problems/idempotency-key-in-progress';

const request = { model: 'kling-v3', prompt: 'a hot-air balloon over vineyards', duration: 5 };

describe('Idempotency-Key (SPEC §5)', () => {
  let gw: TestGateway;
  beforeEach(async () => {
    gw = await startTestGateway();
  });
  afterEach(async () => {
    await gw.close();
  });

  const upstreamTaskCount = () => [...gw.simulators.values()].reduce((sum, simulator) => sum + simulator.tasks.length, 0);

  it('returns the same task for a repeat with the same body, and creates one upstream task', async () => {
    const first = await gw.create(request, { 'idempotency-key': 'order-42' });
    const second = await gw.create({ duration: 5, prompt: request.prompt, model: 'kling-v3' }, { 'idempotency-key': 'order-42' });
    expect(second.status).toBe(202);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(second.body.id).toBe(first.body.id);
    expect(upstreamTaskCount()).toBe(1);
    expect((await gw.request('GET', '/v1/videos')).body.data).toHaveLength(1);
  });

  it('answers 409 for the same key with a different body, and creates nothing', async () => {
    await gw.create(request, { 'idempotency-key': 'order-43' });
    const conflict = await gw.create({ ...request, prompt: 'something else' }, { 'idempotency-key': 'order-43' });
    expect(conflict.status).toBe(409);
    expect(conflict.headers.get('content-type')).toContain('application/problem+json');
    // Told apart from "still being submitted" by its type, not its words: not to be sent again.
    expect(conflict.body).toMatchObject({ type: KEY_REUSED, status: 409, title: 'Idempotency-Key already used with another request' });
    expect(conflict.headers.get('retry-after')).toBeNull();
    expect(upstreamTaskCount()).toBe(1);
  });

  it('says in its 409 why the body differs by its rule (a default written out counts) and which task the key made', async () => {
    const made = await gw.create(request, { 'idempotency-key': 'order-45' });
    expect(made.status).toBe(202);
    // Written out at its default: the same video to the client, another body to the key.
    const conflict = await gw.create({ ...request, quality: 'pro' }, { 'idempotency-key': 'order-45' });
    expect(conflict.status).toBe(409);
    expect(conflict.body.detail).toContain(`made task ${made.body.id}`);
    expect(conflict.body.detail).toMatch(/key order and spacing do not matter/);
    expect(conflict.body.detail).toMatch(/written out at its default/);
    expect(conflict.body.detail).toMatch(/new key/);
    expect(upstreamTaskCount()).toBe(1);
  });

  it('answers 409 for the same key with the same list in another order (@Image1 is another image), and creates nothing', async () => {
    const first = 'https://assets.example.com/portrait.png';
    const second = 'https://assets.example.com/style.png';
    const omni = { model: 'kling-v3-omni', prompt: 'in the style of @Image1', reference_images: [first, second] };
    const made = await gw.create(omni, { 'idempotency-key': 'order-44' });
    expect(made.status).toBe(202);
    const reordered = await gw.create({ ...omni, reference_images: [second, first] }, { 'idempotency-key': 'order-44' });
    expect(reordered.status).toBe(409);
    expect(upstreamTaskCount()).toBe(1);
  });

  it('keeps keys per tenant', async () => {
    const mine = await gw.create(request, { 'idempotency-key': 'shared' });
    const theirs = await gw.request('POST', '/v1/videos', request, { 'idempotency-key': 'shared' }, OTHER_TENANT_KEY);
    expect(theirs.status).toBe(202);
    expect(theirs.body.id).not.toBe(mine.body.id);
    expect(upstreamTaskCount()).toBe(2);
  });

  it('makes a concurrent repeat wait for the first submission instead of creating a second task', async () => {
    gw.simulator('freepik').injectFault({ delayMs: 300 });
    const [a, b] = await Promise.all([
      gw.create(request, { 'idempotency-key': 'double-click' }),
      gw.create(request, { 'idempotency-key': 'double-click' }),
    ]);
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(a.body.id).toBe(b.body.id);
    expect(a.body.status).toBe('queued');
    expect(b.body.status).toBe('queued');
    expect(upstreamTaskCount()).toBe(1);
  });

  it('makes a repeat wait for a submission still in flight after a second has passed, rather than answer 409', async () => {
    // The upstream answers in 400 ms of real time; meanwhile a second of the gateway's time passes
    // (less than the create's own time limit, so the first create is still on its way).
    gw.simulator('freepik').injectFault({ delayMs: 400 });
    const first = gw.create(request, { 'idempotency-key': 'slow-upstream' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const repeat = gw.create(request, { 'idempotency-key': 'slow-upstream' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await gw.clock.advance(1_000);
    const [a, b] = await Promise.all([first, repeat]);
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.id).toBe(a.body.id);
    expect(upstreamTaskCount()).toBe(1);
  });

  it('answers a repeat still in flight after its wait 409 of its own type, with Retry-After saying when the submission is settled', async () => {
    await gw.close();
    // A 30 s upstream limit, so the repeat's wait (limit + 2 s, on the gateway's clock) runs out
    // while the first create is still held upstream.
    gw = await startTestGateway({ config: { providers: { freepik: { timeout_ms: 30_000 } } } });
    const held = heldCall();
    gw.simulator('freepik').injectFault({ on: 'submit', hold: held.hold });
    const first = gw.create(request, { 'idempotency-key': 'held-upstream' });
    let id = '';
    // Let go of the held create whatever happens, so the gateway closes without its 30 s.
    try {
      await held.reached;
      let repeat: Awaited<ReturnType<TestGateway['create']>> | undefined;
      void gw.create(request, { 'idempotency-key': 'held-upstream' }).then((answer) => (repeat = answer));
      // The gateway's time passes a second at a time until the repeat has waited out its 32 s.
      await vi.waitFor(
        async () => {
          await gw.clock.advance(1_000);
          expect(repeat).toBeDefined();
        },
        { timeout: 10_000, interval: 5 },
      );
      expect(repeat!.status).toBe(409);
      expect(repeat!.body).toMatchObject({ type: KEY_IN_PROGRESS, status: 409, title: 'Request with this Idempotency-Key still in progress' });
      expect(repeat!.body.detail).toMatch(/still being submitted/);
      // When the submission's lease runs out: by then its answer is in, or another replica takes it over.
      id = (await gw.request('GET', '/v1/videos')).body.data[0].id;
      const lease = (await gw.gateway.store.getTask(id))!.lease_until!;
      expect(repeat!.headers.get('retry-after')).toBe(String(Math.ceil((lease - gw.clock.now()) / 1000)));
    } finally {
      held.release();
    }
    expect((await first).status).toBe(202);
    const again = await gw.create(request, { 'idempotency-key': 'held-upstream' });
    expect([again.status, again.body.id]).toEqual([202, id]);
    expect(upstreamTaskCount()).toBe(1);
  });

  it('remembers a key for 24 hours, then forgets it', async () => {
    const first = await gw.create(request, { 'idempotency-key': 'daily' });
    await gw.clock.advance(23 * 3600_000);
    expect((await gw.create(request, { 'idempotency-key': 'daily' })).body.id).toBe(first.body.id);
    await gw.clock.advance(2 * 3600_000);
    const later = await gw.create(request, { 'idempotency-key': 'daily' });
    expect(later.body.id).not.toBe(first.body.id);
  });

  it('remembers a key as long as the task it made may still run, when the deadline is longer than 24 hours', async () => {
    await gw.close();
    // A two-day deadline and a video that takes 30 hours: the key must not be forgotten while it runs.
    gw = await startTestGateway({ config: { tasks: { deadline_ms: 48 * 3600_000 }, sandbox: { processing_ms: 30 * 3600_000 } } });
    const pinned = { ...request, routing: { providers: ['kling3api'] } };
    const first = await gw.create(pinned, { 'idempotency-key': 'long-job' });
    expect(first.body.status).toBe('processing');
    await gw.clock.advance(25 * 3600_000);
    const repeat = await gw.create(pinned, { 'idempotency-key': 'long-job' });
    expect([repeat.status, repeat.body.id, repeat.body.status]).toEqual([202, first.body.id, 'processing']);
    expect(upstreamTaskCount()).toBe(1);
    // Once that task is over (its deadline and an hour on), the key is forgotten.
    await gw.clock.advance(24 * 3600_000 + 1);
    const later = await gw.create(pinned, { 'idempotency-key': 'long-job' });
    expect(later.body.id).not.toBe(first.body.id);
  });

  it('returns a failed task on repeat rather than trying again', async () => {
    gw.simulator('freepik').injectFault({ status: 400, body: { message: 'violates our content policy' } });
    const first = await gw.create(request, { 'idempotency-key': 'blocked' });
    expect(first.body.status).toBe('failed');
    const repeat = await gw.create(request, { 'idempotency-key': 'blocked' });
    expect(repeat.body.id).toBe(first.body.id);
    expect(gw.simulator('freepik').requests.filter((r) => r.method === 'POST')).toHaveLength(1);
  });

  it('refuses a malformed key without creating anything', async () => {
    const answer = await gw.create(request, { 'idempotency-key': 'x'.repeat(300) });
    expect(answer.status).toBe(400);
    expect(answer.body.errors[0].path).toBe('header.idempotency-key');
    expect(upstreamTaskCount()).toBe(0);
  });
});
