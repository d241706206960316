/**
 * `npm run chaos`: the gateway's worst day, bounded to a few minutes (issue 11). SIGKILL loops on
 * SQLite and on one of two PostgreSQL replicas, SIGTERM under load, three PostgreSQL replicas
 * behind the balancer stopped at random (SIGTERM of one, SIGKILL of one or two) while clients
 * abandon creates mid-request, connections dropped after the upstream accepted, PostgreSQL out
 * of reach for seconds at a time under three replicas — with the simulators in their own process
 * counting every upstream create and every callback they sent.
 * Prints the figures and exits 1 if any promise broke: a task lost, a task created twice
 * upstream, an idempotency key with two tasks, a legacy callback refused by a stopping replica,
 * a legacy or Freepik task `interrupted` although the upstream holds it, any task `interrupted`
 * after graceful stops, a task left unfinished, any task not succeeded or upstream task left
 * untracked where no create's answer was lost (database outages alone). `CHAOS_SCALE` (default 1)
 * multiplies the creates, `CHAOS_ONLY` runs the scenarios whose name holds it; PostgreSQL is
 * `TEST_DATABASE_URL` (skipped when it does not answer).
 */
import pg from 'pg';
import { brokenPromises, runScenario, type ScenarioOptions } from './chaos-scenarios.js';

const POSTGRES_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const scale = Number(process.env.CHAOS_SCALE ?? 1);

async function postgresSchemaUrl(): Promise<{ url: string; drop: () => Promise<void> } | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
  } catch {
    return undefined;
  }
  const schema = `chaos_${Date.now().toString(36)}`;
  await client.end();
  return {
    url: `${POSTGRES_URL}?schema=${schema}`,
    drop: async () => {
      const dropper = new pg.Client({ connectionString: POSTGRES_URL });
      await dropper.connect();
      await dropper.query(`drop schema if exists "${schema}" cascade`);
      await dropper.end();
    },
  };
}

/** One scenario of the run: its options (undefined: skipped), judged gracefully or not. */
interface Scenario {
  name: string;
  graceful: boolean;
  everyTaskSucceeds?: boolean;
  options: () => Promise<ScenarioOptions | undefined>;
  cleanup?: () => Promise<void>;
}

/** A scenario on a PostgreSQL schema of its own, made when it starts and dropped after it; skipped when PostgreSQL does not answer. */
function onPostgres(scenario: Omit<Scenario, 'options' | 'cleanup'>, options: (url: string) => ScenarioOptions): Scenario {
  let drop: (() => Promise<void>) | undefined;
  return {
    ...scenario,
    options: async () => {
      const postgres = await postgresSchemaUrl();
      if (!postgres) return undefined;
      drop = postgres.drop;
      return options(postgres.url);
    },
    cleanup: async () => drop?.(),
  };
}

async function main(): Promise<void> {
  const common = { clients: 8, createDelayMs: 700, dropEveryMs: 1_500, settleMs: 120_000, log: (line: string) => console.log(line) };
  const scenarios: Scenario[] = [];
  scenarios.push({
    name: 'SQLite, kill -9 mid-create',
    graceful: false,
    options: async () => ({ ...common, database: { kind: 'sqlite' }, creates: Math.round(120 * scale), stops: { signal: 'SIGKILL', count: 6, everyMs: 2_500 } }),
  });
  scenarios.push(
    onPostgres({ name: 'PostgreSQL, two replicas, one killed again and again', graceful: false }, (url) => ({
      ...common,
      database: { kind: 'postgres', url },
      creates: Math.round(120 * scale),
      stops: { signal: 'SIGKILL', count: 5, everyMs: 3_000 },
    })),
  );
  scenarios.push(
    onPostgres({ name: 'PostgreSQL, three replicas behind the balancer, random SIGKILL or SIGTERM, abandoned creates', graceful: false }, (url) => ({
      ...common,
      database: { kind: 'postgres', url, replicas: 3 },
      creates: Math.round(120 * scale),
      stops: { signal: 'random', count: 6, everyMs: 3_000 },
      throughBalancer: true,
      abandonOneIn: 6,
    })),
  );
  scenarios.push(
    onPostgres({ name: 'PostgreSQL, three replicas, the database out of reach for 3 s again and again', graceful: false, everyTaskSucceeds: true }, (url) => ({
      ...common,
      database: { kind: 'postgres', url, replicas: 3 },
      creates: Math.round(60 * scale),
      // No stop and no dropped connection: every create's answer arrives, so none may be lost.
      stops: { signal: 'SIGTERM', count: 0, everyMs: 25_000 },
      dropEveryMs: 0,
      databaseOutages: { everyMs: 4_000, lengthMs: 3_000 },
      throughBalancer: true,
    })),
  );
  scenarios.push({
    name: 'SQLite, SIGTERM under load',
    graceful: true,
    options: async () => ({ ...common, database: { kind: 'sqlite' }, creates: Math.round(80 * scale), stops: { signal: 'SIGTERM', count: 3, everyMs: 2_500 } }),
  });

  let failed = false;
  const only = process.env.CHAOS_ONLY;
  for (const scenario of scenarios.filter((candidate) => !only || candidate.name.toLowerCase().includes(only.toLowerCase()))) {
    console.log(`== ${scenario.name}`);
    const options = await scenario.options();
    if (!options) {
      console.log('  skipped: PostgreSQL did not answer');
      continue;
    }
    try {
      const result = await runScenario(options);
      const { verdict } = result;
      console.log(
        `  ${verdict.tasks} tasks, ${result.stops} stops, ${Math.round(result.durationMs / 1000)} s; answers ${JSON.stringify(result.answers)}\n` +
          `  lost ${verdict.lost}, created twice ${verdict.doubleCreates}, unfinished ${verdict.unfinished}, ` +
          `interrupted ${verdict.interrupted} (held upstream: ${JSON.stringify(result.interruptedHeldByProvider)}), ` +
          `upstream tasks no gateway task tracks ${JSON.stringify(verdict.orphanedUpstream)}, adopted ${JSON.stringify(verdict.recovered)}\n` +
          `  stops ${JSON.stringify(result.stopKinds)}, database outages ${result.databaseOutages}, abandoned mid-request ${result.abandoned}, keys with two tasks ${result.keysWithTwoTasks}, ` +
          `callbacks sent (answers) ${JSON.stringify(result.callbacks)}`,
      );
      const broken = brokenPromises(result, { graceful: scenario.graceful, everyTaskSucceeds: scenario.everyTaskSucceeds ?? false });
      for (const line of broken) console.log(`  BROKEN: ${line}`);
      if (broken.length > 0) failed = true;
    } finally {
      await scenario.cleanup?.();
    }
  }
  console.log(failed ? 'chaos: promises broken' : 'chaos: every promise held');
  process.exit(failed ? 1 : 0);
}

main().catch((error) => {
  console.error('chaos run failed:', error);
  process.exit(2);
});
