/**
 * The per-tenant create limit holds across replicas sharing PostgreSQL: creates counted on one
 * replica count on the other (rate-limiter-flexible's PostgreSQL limiter on the store's pool).
 */
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

describe.skipIf(!available)('create limit across replicas on PostgreSQL', () => {
  const replicas = usePostgresReplicas({ limits: { creates_per_minute: 4 } });
  const { replica } = replicas;

  it('counts creates on every replica against one limit', async () => {
    const [a, b] = [await replica('replica-a'), await replica('replica-b')];
    const request = { model: 'kling-v3', prompt: 'shared limit', duration: 5 };
    const statuses = [];
    for (const gateway of [a, b, a, b, a, b]) statuses.push((await gateway.create(request)).status);
    expect(statuses).toEqual([202, 202, 202, 202, 429, 429]);
  });
});
