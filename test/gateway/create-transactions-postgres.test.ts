/**
 * A create on PostgreSQL (replicas sharing one schema) in two transactions: the first writes the
 * task, takes its first provider's slot, asks that account's circuit and rate windows on its own
 * connection and writes the attempt `sending`; the second writes the answer. Counted on the pool,
 * and held against what replicas share: rate windows, caps and the circuit's single trial.
 */
import { describe, expect, it } from 'vitest';
import { countPoolStatements } from '../support/pool-statements.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const freepikRequest = { model: 'kling-v3', prompt: 'counted', duration: 5, routing: { providers: ['freepik'] } };
const kling3apiRequest = { model: 'kling-v3', prompt: 'shared limits', duration: 5, routing: { providers: ['kling3api'] } };
/** Freepik's documented windows (50 hits per 5 s, 10/s averaged over 2 minutes). */
const freepikWindows = { providers: { freepik: { rate_limits: [{ limit: 50, window_ms: 5_000 }, { limit: 1_200, window_ms: 120_000 }] } } };

describe.skipIf(!available)('a create on PostgreSQL', () => {
  const replicas = usePostgresReplicas();
  const { replica } = replicas;

  it('is two transactions: the task with its allowance and first attempt, committed before the request leaves; then the answer', async () => {
    const a = await replica('replica-a', freepikWindows);
    const pool = countPoolStatements(a.gateway.store.store.pool!);
    replicas.simulators.get('freepik')!.onRequest((request) => pool.mark(`${request.method} ${request.path}`));
    pool.reset();

    const created = await a.create(freepikRequest);

    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'queued', provider: 'freepik', attempts: [{ provider: 'freepik', outcome: 'accepted' }] });
    expect(pool.commits).toBe(2);
    const steps = pool.events.flatMap((event) => {
      if (event.kind === 'commit') return ['commit'];
      if (event.kind === 'mark') return event.what.startsWith('POST') ? ['request leaves'] : [];
      if (event.kind !== 'statement' || !event.inTransaction) return [];
      if (event.sql.startsWith('insert into "rate_grants"')) return ['allowance'];
      if (event.sql.startsWith('insert into "attempts"')) return ['attempt sending'];
      return event.sql.startsWith('update "attempts"') ? ['attempt accepted'] : [];
    });
    expect(steps).toEqual(['allowance', 'attempt sending', 'commit', 'request leaves', 'attempt accepted', 'commit']);
    // Nothing about the task or the account's standing is written outside those two.
    const writes = pool.outside.filter((text) => /^(insert|update|delete)/i.test(text.trim()) && /"(tasks|attempts|rate_grants|provider_state)"/.test(text));
    expect(writes).toEqual([]);
    // The rate windows and the circuit were asked on the create's own connection.
    expect(pool.takenDuringTransaction).toBe(0);
  });

  it('never waits for a second connection: replicas with one pool connection each take creates at once', async () => {
    const a = await replica('replica-a', freepikWindows, { maxConnections: 1 });
    const b = await replica('replica-b', freepikWindows, { maxConnections: 1 });
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).create({ ...freepikRequest, prompt: `at once ${i}` })));
    expect(answers.map((answer) => [answer.status, answer.body.status])).toEqual(Array.from({ length: 6 }, () => [202, 'queued']));
    expect(replicas.simulators.get('freepik')!.tasks).toHaveLength(6);
  });

  it('creates at once on two replicas never pass a rate window: the rest wait in line with no attempt, and go when it has room', async () => {
    const config = { providers: { kling3api: { rate_limits: [{ limit: 3, window_ms: 10_000 }] } } };
    const a = await replica('replica-a', config);
    const b = await replica('replica-b', config);
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).create({ ...kling3apiRequest, prompt: `window ${i}` })));
    const sent = answers.filter((answer) => answer.body.status === 'processing');
    const waiting = answers.filter((answer) => answer.body.status === 'queued');
    expect([sent.length, waiting.length]).toEqual([3, 7]);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(3);
    for (const answer of waiting) expect(answer.body.attempts).toEqual([]);

    // Once the window has room again, waiting tasks go the usual way (three more), once each.
    await replicas.clock.advance(10_200);
    await Promise.all([a.gateway.runOnce(), b.gateway.runOnce()]);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(6);
    const now = await Promise.all(waiting.map(async (answer) => (await a.get(answer.body.id)).body));
    const gone = now.filter((task) => task.status === 'processing');
    expect(gone).toHaveLength(3);
    for (const task of gone) expect(task.attempts).toMatchObject([{ provider: 'kling3api', outcome: 'accepted' }]);
  });

  it('creates at once on two replicas never pass an account’s cap; a create behind waiting tasks waits its turn with no attempt', async () => {
    const config = { providers: { kling3api: { max_in_flight: 2 } } };
    const a = await replica('replica-a', config);
    const b = await replica('replica-b', config);
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).create({ ...kling3apiRequest, prompt: `cap ${i}` })));
    expect(answers.map((answer) => answer.body.status).sort()).toEqual([...Array(2).fill('processing'), ...Array(6).fill('queued')]);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(2);
    for (const answer of answers.filter((answer) => answer.body.status === 'queued')) expect(answer.body.attempts).toEqual([]);

    // A slot frees (a task finishes), but older tasks wait for it: a new create queues behind them.
    await replicas.clock.advance(5_500);
    await a.gateway.runOnce();
    const behind = await b.create({ ...kling3apiRequest, prompt: 'behind the line' });
    expect(behind.body).toMatchObject({ status: 'queued', attempts: [] });
  });

  it('gives the circuit’s single trial to one create across replicas', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const freepik = replicas.simulators.get('freepik')!;
    const posts = () => freepik.requests.filter((request) => request.method === 'POST').length;
    freepik.injectFault({ kind: 'unavailable', status: 503, times: 3 });
    for (let i = 0; i < 3; i++) expect((await a.create(freepikRequest)).body.status).toBe('failed');
    expect(posts()).toBe(3);
    // Half-open after a minute: one call may probe it; it fails slowly, so every other create is asked meanwhile.
    await replicas.clock.advance(60_001);
    freepik.injectFault({ kind: 'unavailable', status: 503, delayMs: 300 });
    const answers = await replicas.withClockRunning(
      Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).create({ ...freepikRequest, prompt: `probe ${i}` }))),
    );
    expect(posts()).toBe(4);
    expect(answers.filter((answer) => answer.body.attempts.some((attempt: { outcome: string }) => attempt.outcome !== 'skipped'))).toHaveLength(1);
  });
});
