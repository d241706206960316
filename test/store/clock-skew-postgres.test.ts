/**
 * A replica whose clock is off the PostgreSQL server's does not start: replicas compare times each
 * wrote with its own clock (leases, when a create was sent), and one 20 s ahead took over other
 * replicas' submissions still on their way (chaos: 17 of 60 tasks paid twice, 24 upstream tasks
 * left untracked).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { gatewayExit } from '../support/gateway-process.js';
import { dropSchema, newSchemaName, POSTGRES_URL, postgresAvailable } from '../support/postgres.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const available = await postgresAvailable();
const schema = newSchemaName();
afterAll(async () => {
  if (available) await dropSchema(schema);
});

/** `npm start`'s entry on the test schema, its clock `skewMs` off; how it exited and what it said. */
function startSkewed(skewMs: number): Promise<{ code: number | null; stderr: string }> {
  return gatewayExit(
    { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', DATABASE_URL: `${POSTGRES_URL}?schema=${schema}`, SKEWED_CLOCK_MS: String(skewMs) },
    [join(REPO, 'test/fixtures/skewed-clock.mjs')],
  );
}

it.skipIf(!available)('refuses to start with a clock 20 s ahead of the database server, saying by how much', { timeout: 60_000 }, async () => {
  const refused = await startSkewed(20_000);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/clock is 20\.0 s ahead of the database server's .*synchronize the clocks/);
});

it.skipIf(!available)('refuses to start with a clock 5 s behind it', { timeout: 60_000 }, async () => {
  const refused = await startSkewed(-5_000);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/clock is 5\.0 s behind the database server's/);
});
