/**
 * `fastest` across replicas sharing PostgreSQL: a provider that accepts tasks and then fails most
 * of them goes after the providers that deliver on every replica, not only on the one that saw the
 * failures (the figures come from the shared tasks table).
 */
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();
const body = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };

describe.skipIf(!available)('fastest across replicas on PostgreSQL', () => {
  const replicas = usePostgresReplicas();

  it('puts a provider whose recent tasks mostly failed last on the other replica too', async () => {
    const [a, b] = [await replicas.replica('replica-a', {}, { maxConnections: 3 }), await replicas.replica('replica-b', {}, { maxConnections: 3 })];
    const run = async (provider: string, status: string) => {
      const created = await a.create({ ...body, routing: { providers: [provider] } });
      expect((await a.finish(created.body.id, 5_000)).status).toBe(status);
    };
    await run('freepik', 'succeeded');
    await run('kling3api', 'succeeded');
    replicas.simulators.get('kling3api')!.setOutcome('fail', 2);
    await run('kling3api', 'failed');
    await run('kling3api', 'failed');

    // `/v1/providers` reads every replica's figures first; the median shown stays the time to success.
    const shown = (await b.request('GET', '/v1/providers')).body.data.find((p: { id: string }) => p.id === 'kling3api');
    expect(shown.median_completion_ms).toBeGreaterThan(0);
    const quote = await b.request('POST', '/v1/videos/quote', { ...body, routing: { strategy: 'fastest' } });
    expect(quote.body.order).toEqual(['freepik', 'kling-legacy', 'kling3api']);
    expect((await b.create({ ...body, routing: { strategy: 'fastest' } })).body.provider).toBe('freepik');
  });
});
