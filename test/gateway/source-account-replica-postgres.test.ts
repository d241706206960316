/**
 * A rolling deploy over replicas on one PostgreSQL that adds a legacy account: a replica on the
 * new configuration made a video on account `east` and accepted its video-extend, queued behind
 * that account's cap. A video stays on its account, so only a replica with `east` can send the
 * extension. One still on the old configuration (no `east`) must leave it in line for that
 * replica — not fail it with no_provider_available — and it ends as timeout at its deadline only
 * if no replica ever sends it.
 */
import { describe, expect, it } from 'vitest';
import type { ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas, type PostgresReplicas } from '../support/postgres-replicas.js';
import type { TestGateway } from '../support/harness.js';

const available = await postgresAvailable();

const LEGACY = 'kling-legacy';
const video = (prompt: string) => ({ model: 'kling-v1-6', prompt, routing: { providers: [LEGACY] } });
const extend = (videoId: string) => ({ model: 'kling-v1-6', operation: 'video-extend', video_id: videoId, prompt: 'keep going' });

/** The legacy key configured as account `east` (its account `default` gone). */
function onEast(replicas: PostgresReplicas): Record<string, Partial<ProviderEndpoint>> {
  return { [LEGACY]: { accounts: [{ id: 'east', apiKey: replicas.endpoints.get(LEGACY)!.apiKey }] } };
}

/** A video made on `east` through `gateway`, a task keeping east's one slot busy, and an extension of the video queued behind it. */
async function extensionQueuedOnEast(gateway: TestGateway) {
  const made = (await gateway.create(video('a lighthouse at dusk'))).body;
  const done = await gateway.finish(made.id);
  expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
  expect(done.attempts.map((attempt: { account: string }) => attempt.account)).toEqual(['east']);
  const busy = (await gateway.create(video('a busy harbour'))).body;
  expect(busy.attempts.map((attempt: { account: string; outcome: string }) => [attempt.account, attempt.outcome])).toEqual([['east', 'accepted']]);
  const queued = (await gateway.create(extend(done.outputs[0].upstream_id as string))).body;
  expect(queued).toMatchObject({ status: 'queued', attempts: [] });
  return { busy, queued };
}

describe.skipIf(!available)('a video-extend bound to an account one replica does not have', () => {
  const replicas = usePostgresReplicas({ providers: { [LEGACY]: { max_in_flight: 1 } }, tasks: { deadline_ms: 120_000 } });
  const { replica } = replicas;

  it('is left in line by that replica and sent through the account by the replica that has it', async () => {
    const withEast = await replica('with-east', {}, {}, onEast(replicas));
    const old = await replica('old-config');
    const { busy, queued } = await extensionQueuedOnEast(withEast);

    // Both look for work at each step, the one without east first.
    for (let step = 0; step < 3; step++) {
      await replicas.clock.advance(1_000);
      await old.gateway.runOnce();
      await withEast.gateway.runOnce();
    }
    expect((await old.get(queued.id)).body).toMatchObject({ status: 'queued', error: null, attempts: [] });

    for (let step = 0; step < 40; step++) {
      await replicas.clock.advance(1_000);
      await old.gateway.runOnce();
      await withEast.gateway.runOnce();
    }
    expect((await withEast.get(busy.id)).body.status).toBe('succeeded');
    const done = (await withEast.get(queued.id)).body;
    expect(done, JSON.stringify(done.error)).toMatchObject({ status: 'succeeded', error: null });
    expect(done.attempts.map((attempt: { account: string; outcome: string }) => [attempt.account, attempt.outcome])).toEqual([['east', 'accepted']]);
  }, 60_000);

  it('ends as timeout at its deadline when no replica has the account', async () => {
    const withEast = await replica('with-east', {}, {}, onEast(replicas));
    const { queued } = await extensionQueuedOnEast(withEast);
    await withEast.close();

    const old = await replica('old-config');
    for (let step = 0; step < 60; step++) await old.advance(1_000);
    expect((await old.get(queued.id)).body).toMatchObject({ status: 'queued', error: null });
    for (let step = 0; step < 70; step++) await old.advance(1_000);
    expect((await old.get(queued.id)).body).toMatchObject({
      status: 'failed',
      error: { code: 'timeout', message: 'no provider took the task within the 2-minute deadline' },
    });
  }, 60_000);
});
