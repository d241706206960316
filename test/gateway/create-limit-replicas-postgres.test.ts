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

  it('gives the place of an invalid create back on every replica, also after creates refused meanwhile', async () => {
    const [a, b] = [await replica('replica-a'), await replica('replica-b')];
    const request = { model: 'kling-v3', prompt: 'shared limit', duration: 5 };
    // Three of the four creates of the minute made tasks.
    for (const gateway of [a, b, a]) expect((await gateway.create(request)).status).toBe(202);
    // Invalid creates at once on both replicas, more than the one place left: whichever were
    // counted give their place back, and those refused for the limit meanwhile were never let
    // through. None made anything.
    const invalid = await Promise.all([a, b, a, b, a, b, a, b].map((gateway) => gateway.create({ ...request, duration: 'five' })));
    for (const answer of invalid) expect([400, 429]).toContain(answer.status);
    // So one place is left, on either replica.
    expect((await b.create(request)).status).toBe(202);
    expect((await a.create(request)).status).toBe(429);
  });
});
