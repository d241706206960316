/**
 * How long a Freepik create whose answer was lost stays in doubt before the gateway decides
 * (README "Guarantees"): a task list that shows none of it proves nothing until the create's
 * answer could no longer come (`timeout_ms` + 5 s after it was sent), and a create the list cannot
 * rule out waits up to 10 minutes for a webhook naming its task. Deciding sooner sends a task the
 * upstream may still take to the next provider (paid twice), or fails one whose webhook was yet to
 * come (a paid video abandoned).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { anotherClientsFreepikTask, postFreepikWebhook } from '../support/freepik-webhook.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

const klingV3 = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const outcomes = (task: { attempts: { provider: string; outcome: string }[] }) => task.attempts.map((attempt) => [attempt.provider, attempt.outcome]);

describe('a Freepik create whose connection broke after the request was written', () => {
  it('is not proved absent by a task list read before timeout_ms + 5 s have passed since it was sent', async () => {
    gw = await startTestGateway({ config: { providers: { freepik: { timeout_ms: 20_000 } } } });
    gw.simulator('freepik').injectFault({ transport: 'reset' });
    const created = (await gw.create(klingV3)).body;
    expect(outcomes(created)).toEqual([['freepik', 'ambiguous']]);
    // Up to 24 s after the send (the 20 s limit and most of the 5 s margin), every list read proves nothing.
    for (let second = 1; second <= 24; second++) await gw.advance(1_000);
    const waiting = (await gw.get(created.id)).body;
    expect(waiting.status).toBe('queued');
    expect(outcomes(waiting)).toEqual([['freepik', 'ambiguous']]);
    expect(gw.simulator('kling3api').tasks).toHaveLength(0);
    // Past 25 s a list of known tasks only proves it: the task moves on.
    const finished = await gw.finish(created.id);
    expect(finished).toMatchObject({ status: 'succeeded', provider: 'kling3api' });
    expect(outcomes(finished)).toEqual([
      ['freepik', 'failed'],
      ['kling3api', 'accepted'],
    ]);
  });

  it('that the list cannot rule out still adopts the task a signed webhook names 9 minutes later', async () => {
    gw = await startTestGateway();
    // Someone else's task under the same key: the list cannot prove the create was not accepted.
    await anotherClientsFreepikTask(gw);
    gw.simulator('freepik').injectFault({ transport: 'reset' });
    const created = (await gw.create(klingV3)).body;
    for (let step = 0; step < 18; step++) await gw.advance(30_000);
    expect((await gw.get(created.id)).body).toMatchObject({ status: 'queued', provider_task_id: null });

    const answer = await postFreepikWebhook(gw, { task_id: 'fp-named-late', status: 'IN_PROGRESS', generated: [] }, { attemptKey: `${created.id}-1` });
    expect(answer.status).toBe(200);
    const adopted = (await gw.get(created.id)).body;
    expect(adopted).toMatchObject({ status: 'processing', provider: 'freepik', provider_task_id: 'fp-named-late' });
    expect(outcomes(adopted)).toEqual([['freepik', 'accepted']]);
    expect(gw.simulator('kling3api').tasks).toHaveLength(0);
  });

  it('with no webhook to wait for, is looked up for 2 minutes after its send before it fails as in doubt', async () => {
    // No webhook secret: Freepik's webhooks could not be verified, so only its task list can tell.
    gw = await startTestGateway({ config: { providers: { freepik: { timeout_ms: 20_000 } } }, endpointOverrides: { freepik: { webhookSecret: undefined } } });
    // Someone else's task under the same key: each list read proves nothing.
    await anotherClientsFreepikTask(gw);
    gw.simulator('freepik').injectFault({ transport: 'reset' });
    const created = (await gw.create(klingV3)).body;
    for (let step = 0; step < 22; step++) await gw.advance(5_000);
    // 110 s in: still looked up (past the create's 25 s, not yet its 2 minutes).
    expect((await gw.get(created.id)).body).toMatchObject({ status: 'queued', provider_task_id: null });
    const failed = await gw.finish(created.id, 5_000);
    expect(failed).toMatchObject({ status: 'failed', provider: 'freepik' });
    expect(failed.error.message).toMatch(/does not know/);
    expect(Date.parse(failed.completed_at ?? failed.updated_at) - Date.parse(created.created_at)).toBeGreaterThanOrEqual(120_000);
    expect(gw.simulator('kling3api').tasks).toHaveLength(0);
  });

  it('waits for news no longer than the task\'s deadline', async () => {
    gw = await startTestGateway({ config: { tasks: { deadline_ms: 4 * 60_000 } } });
    await anotherClientsFreepikTask(gw);
    gw.simulator('freepik').injectFault({ transport: 'reset' });
    const created = (await gw.create(klingV3)).body;
    for (let step = 0; step < 10; step++) await gw.advance(30_000);
    // 5 minutes in, past its 4-minute deadline: ended, not waiting out the 10 minutes for a webhook.
    const ended = (await gw.get(created.id)).body;
    expect(ended).toMatchObject({ status: 'failed', provider: 'freepik' });
    expect(Date.parse(ended.completed_at) - Date.parse(created.created_at)).toBeLessThanOrEqual(4 * 60_000 + 60_000);
    expect(gw.simulator('kling3api').tasks).toHaveLength(0);
  });
});

