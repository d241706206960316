/** The routes fuzzed (`test/support/routes-fuzz.ts`) on PostgreSQL, with fewer runs (each costs more). */
import { describe } from 'vitest';
import { describeRoutesFuzz } from '../support/routes-fuzz.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const available = await postgresAvailable();

describe.skipIf(!available)('on PostgreSQL', () => {
  describeRoutesFuzz({
    runShare: 0.4,
    openStore: async () => {
      const schema = newSchemaName();
      return { store: await openPostgresStore(schema), drop: () => dropSchema(schema) };
    },
  });
});
