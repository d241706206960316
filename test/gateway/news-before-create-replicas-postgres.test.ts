/**
 * News about a task that reaches another replica than the one sending its create: a legacy
 * callback (sent once, never retried) or a signed Freepik webhook on the attempt's own path. The
 * replica it reached writes the upstream task on the attempt and, as soon as the sending replica
 * records the create's answer, acts on the news as the sending replica would have — not at the
 * safety poll, minutes later.
 */
import { describe, expect, it } from 'vitest';
import { signFreepikWebhook } from '../../src/providers/freepik/freepik-status.js';
import type { TestGateway } from '../support/harness.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';
import { finishesSoon, LEGACY_TASK_ID, LEGACY_VIDEO, legacyUpstreamHoldingCreate, upstreamHoldingCreate } from '../support/upstream-holding-create.js';

const available = await postgresAvailable();

/** Far beyond what these tests let pass: a task found done in time was not found by its safety poll. */
const config = { tracking: { webhook_safety_poll_ms: 600_000 } };

describe.skipIf(!available)('news that reaches another replica than the one sending its create', () => {
  const replicas = usePostgresReplicas(config);

  const legacyRequest = { model: 'kling-v1-6', prompt: 'a lighthouse at dusk', routing: { providers: ['kling-legacy'] } };
  const legacyId = LEGACY_TASK_ID;
  const video = LEGACY_VIDEO;

  /** Replicas A and B on one legacy upstream that holds creates; A is sending one, with its callback token. */
  async function legacyCreateOnA() {
    const upstream = await legacyUpstreamHoldingCreate();
    const a = await replicas.replica('replica-a', {}, {}, { 'kling-legacy': { baseUrl: upstream.base } });
    const b = await replicas.replica('replica-b', {}, {}, { 'kling-legacy': { baseUrl: upstream.base } });
    const creating = a.create(legacyRequest);
    const sent = await upstream.createReached;
    const token = new URL(sent.callback_url!).pathname.split('/').pop()!;
    const callback = (gateway: TestGateway, body: unknown) => gateway.request('POST', `/v1/webhooks/kling-legacy/${token}`, body, {}, null);
    return { upstream, a, b, creating, callback };
  }

  it('legacy: a callback claiming the task done, taken by replica B while A sends the create, is confirmed as soon as A records the answer', async () => {
    const { upstream, b, creating, callback } = await legacyCreateOnA();
    try {
      expect((await callback(b, { task_id: legacyId, task_status: 'succeed' })).status).toBe(200);
      upstream.answerCreate();
      const created = await creating;
      expect(created.body.status).toBe('queued');

      const task = await finishesSoon(b, created.body.id);
      expect(task).toMatchObject({ status: 'succeeded', provider_status: 'succeed', provider_task_id: legacyId });
      expect(task.outputs).toEqual([expect.objectContaining({ upstream_url: video })]);
      // B's confirmation of the task the callback named, then the poll once the answer was recorded.
      expect(upstream.statusCalls).toHaveLength(2);
    } finally {
      await upstream.close();
    }
  });

  it('legacy: a flood of callbacks for that task makes one poll, and one naming another upstream task is not believed', async () => {
    const { upstream, b, creating, callback } = await legacyCreateOnA();
    try {
      expect((await callback(b, { task_id: legacyId, task_status: 'succeed' })).status).toBe(200);
      // Later progress callbacks do not push the claim that it finished aside.
      for (let i = 0; i < 20; i++) expect((await callback(b, { task_id: legacyId, task_status: 'processing' })).status).toBe(200);
      const other = await callback(b, { task_id: '999999999999999999', task_status: 'succeed' });
      expect(other.status).toBe(400);
      upstream.answerCreate();
      const created = await creating;

      const task = await finishesSoon(b, created.body.id);
      expect(task).toMatchObject({ status: 'succeeded', provider_task_id: legacyId });
      expect(upstream.statusCalls).toHaveLength(2);
    } finally {
      await upstream.close();
    }
  });

  it('legacy: a replica stopping with such a callback kept does not wait for the other replica\'s create; the task is tracked there', async () => {
    const { upstream, a, b, creating, callback } = await legacyCreateOnA();
    try {
      expect((await callback(b, { task_id: legacyId, task_status: 'succeed' })).status).toBe(200);
      // A's create is still held (and no gateway time passes): B's stop ends without it.
      await b.gateway.close();
      upstream.answerCreate();
      const created = await creating;
      expect(created.body.status).toBe('queued');
      // Its safety poll learns the rest.
      await replicas.clock.advance(600_000);
      expect((await finishesSoon(a, created.body.id)).status).toBe('succeeded');
    } finally {
      await upstream.close();
    }
  });

  it('Freepik: a signed webhook saying the task completed, taken by replica B while A sends the create, is applied as soon as A records the answer, once', async () => {
    const freepikId = '046b6c7f-0b8a-43b9-b35d-6489e6daee91';
    const upstream = await upstreamHoldingCreate({
      create: { data: { task_id: freepikId, status: 'CREATED', generated: [] } },
      status: { data: { task_id: freepikId, status: 'COMPLETED', generated: [video] } },
    });
    try {
      const a = await replicas.replica('replica-a', {}, {}, { freepik: { baseUrl: upstream.base } });
      const b = await replicas.replica('replica-b', {}, {}, { freepik: { baseUrl: upstream.base } });
      const creating = a.create({ model: 'kling-v3', prompt: 'waves on a pebble beach', duration: 5, routing: { providers: ['freepik'] } });
      const sent = await upstream.createReached;
      // The webhook comes to the attempt's own path, on replica B.
      const path = new URL(sent.webhook_url!).pathname;
      const payload = JSON.stringify({ task_id: freepikId, status: 'COMPLETED', generated: [video] });
      const timestamp = String(Math.floor(replicas.clock.now() / 1000));
      const secret = a.endpoints.get('freepik')!.webhookSecret!;
      const headers = {
        'webhook-id': 'msg_to_b',
        'webhook-timestamp': timestamp,
        'webhook-signature': signFreepikWebhook(secret, 'msg_to_b', timestamp, payload),
      };
      const webhook = () => b.request('POST', path, payload, headers, null);
      expect((await webhook()).status).toBe(200);
      upstream.answerCreate();
      const created = await creating;
      expect(created.body.status).toBe('queued');

      const task = await finishesSoon(b, created.body.id);
      expect(task).toMatchObject({ status: 'succeeded', provider_status: 'COMPLETED', provider_task_id: freepikId });
      expect(task.outputs).toEqual([expect.objectContaining({ upstream_url: video })]);
      // The signed report was applied as it came: no status fetch.
      expect(upstream.statusCalls).toEqual([]);
      // Its id was remembered with the change it made: sent again, it is a replay.
      expect((await webhook()).body).toEqual({ received: true, duplicate: true });
    } finally {
      await upstream.close();
    }
  });
});
