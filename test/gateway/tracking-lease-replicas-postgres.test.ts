/**
 * Each task is tracked by exactly one worker at a time, also across replicas (SPEC §4): a poll
 * leases the task. A replica polls a batch of due tasks a few at a time; a task of the batch
 * still waiting for its turn must not lose its lease to the time the earlier polls take, or
 * another replica polls it as well.
 */
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const pinned = { model: 'kling-v3', prompt: 'polled once at a time', duration: 5, routing: { providers: ['kling3api'] } };

describe.skipIf(!available)('tracking leases across replicas', () => {
  const replicas = usePostgresReplicas();
  const { replica } = replicas;

  it('never lets a second replica poll a task the first has leased and not polled yet', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const kling3api = replicas.simulators.get('kling3api')!;
    for (let i = 0; i < 20; i++) expect((await a.create({ ...pinned, prompt: `task ${i}` })).body.status).toBe('processing');

    // Status answers take a moment; each round of polls takes 20 s of gateway time (well within
    // the provider's time limit and the 30 s lease). When replica A's second round starts,
    // replica B runs its workers.
    kling3api.injectFault({ on: 'status', delayMs: 300, times: 1_000 });
    let statusCalls = 0;
    let other: Promise<void> | undefined;
    let rounds: Promise<void> = Promise.resolve();
    kling3api.onRequest((request) => {
      if (request.method !== 'GET' || request.path !== '/api/status') return;
      statusCalls++;
      if (statusCalls === 1) rounds = rounds.then(() => replicas.clock.advance(20_000));
      if (statusCalls === 9) {
        rounds = rounds.then(() => replicas.clock.advance(20_000));
        other = rounds.then(() => b.gateway.runOnce());
      }
    });
    await replicas.clock.advance(5_500);
    await a.gateway.runOnce();
    await rounds;
    await other;

    expect(other).toBeDefined();
    expect(statusCalls).toBe(20);
  });
});
