/**
 * Counters shared by replicas (the per-tenant create limit), on the real PostgreSQL: two stores
 * on one freshly migrated schema stand for two replicas taking their very first creates at the
 * same moment. The limiter's table is part of the schema, so no replica has to make it then.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { Store } from '../../src/store/database.js';
import { openWindowLimiter } from '../../src/store/window-limiter.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const available = await postgresAvailable();

describe.skipIf(!available)('window limiter on PostgreSQL', () => {
  const schema = newSchemaName();
  const stores: Store[] = [];

  beforeAll(async () => {
    stores.push(await openPostgresStore(schema), await openPostgresStore(schema));
  });

  afterAll(async () => {
    for (const store of stores) await store.close();
    await dropSchema(schema);
  });

  it('has its table from the migrations, before any limiter opens', async () => {
    const found = await sql<{ n: number }>`select count(*)::int as n from information_schema.tables
      where table_schema = ${schema} and table_name = 'gateway_rate_windows'`.execute(stores[0]!.db);
    expect(found.rows[0]!.n).toBe(1);
  });

  it('counts first takes racing on two replicas against one limit, none of them failing', async () => {
    const opened = await Promise.all(
      Array.from({ length: 8 }, (_, i) => openWindowLimiter(stores[i % 2]!, { name: `first-${i % 2 ? 'b' : 'a'}`, points: 3, windowMs: 60_000 })),
    );
    // Eight limiters over two names, each asked at once for the same tenant: every take answers.
    const decisions = await Promise.all(opened.flatMap((limiter) => [limiter.take('acme'), limiter.take('acme')]));
    // Per name, 8 takes against a limit of 3, whichever replica and limiter counted them.
    expect(decisions.filter((decision) => decision.allowed)).toHaveLength(6);
    const refused = decisions.filter((decision) => !decision.allowed);
    expect(refused).toHaveLength(10);
    for (const decision of refused) expect(decision.allowed === false && decision.retryAfterMs).toBeGreaterThan(0);
  });

  it('lets the next take through on another replica once a counted take is given back, whatever was refused meanwhile', async () => {
    const [a, b] = await Promise.all(stores.map((store) => openWindowLimiter(store, { name: 'given-back', points: 2, windowMs: 60_000 })));
    const first = await a!.take('acme');
    const second = await a!.take('acme');
    expect([first.allowed, second.allowed]).toEqual([true, true]);
    // Past the limit while the second is still being handled (a create refused as bad input a
    // moment later): these are refused, and were never let through.
    for (let i = 0; i < 3; i++) expect((await b!.take('acme')).allowed).toBe(false);
    // The second gives its place back: one of the two is free again, for whichever replica asks.
    if (second.allowed) await a!.giveBack('acme', second.countedUntil);
    expect((await b!.take('acme')).allowed).toBe(true);
    expect((await a!.take('acme')).allowed).toBe(false);
  });
});
