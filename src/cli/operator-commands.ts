/**
 * Operator commands that work on this machine's files rather than through the API:
 * `check-config` validates a config file the way the gateway does at start and shows what would
 * run; `migrate` brings a database to the current schema before a rollout.
 *
 * The server's modules are loaded only when one of these runs, so the API commands start fast.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { GatewayConfig } from '../config/config.js';
import { formatNumber, notHttpUrl, redactUrl } from '../../packages/client/src/index.js';
import type { CliOutput } from './cli-output.js';
import { CliError, ExitCode } from './exit-codes.js';
import type { CliContext } from './cli-context.js';
import { databaseUrlProblem, describeDatabaseUrl } from '../store/database-url.js';

function configPath(file: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(file ?? env.CONFIG_FILE ?? 'config.yaml');
}

async function loadConfig(path: string, env: NodeJS.ProcessEnv): Promise<GatewayConfig> {
  const [{ ConfigError, loadConfigFile }, { PROVIDER_IDS }] = await Promise.all([
    import('../config/config.js'),
    import('../providers/registry.js'),
  ]);
  try {
    return loadConfigFile(path, env, PROVIDER_IDS);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(error.message, ExitCode.badConfig);
    throw error;
  }
}

/** Gateway processes the start would run (`WORKERS`), refused as the start refuses it. */
async function workersFor(config: GatewayConfig, env: NodeJS.ProcessEnv): Promise<number> {
  const [{ ConfigError }, { workerCount }] = await Promise.all([import('../config/config.js'), import('../workers/worker-count.js')]);
  try {
    return workerCount(env.WORKERS, config.database.url);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(error.message, ExitCode.badConfig);
    throw error;
  }
}

interface ProviderPlan {
  id: string;
  mode: 'live' | 'simulator' | 'disabled';
  reason: string | null;
  base_url: string | null;
  priority: number;
  weight: number;
  /** Over all accounts. */
  max_in_flight: number;
  /**
   * Each account's id and cap (one, `default`, for a single key), and how many secrets verify its
   * webhooks while one is rotated (absent for one or none).
   */
  accounts: { id: string; max_in_flight: number; webhook_secrets?: number }[];
  timeout_ms: number;
  rate_limits: { limit: number; window_ms: number }[];
  webhooks: boolean;
  pricing: { currency: string; credit_value: number; rules: number } | null;
}

/** `webhook_secrets`: how many secrets a list holds, for a list of several (a rotation); nothing otherwise. */
function secretCount(secrets: readonly string[] | undefined): { webhook_secrets?: number } {
  return secrets && secrets.length > 1 ? { webhook_secrets: secrets.length } : {};
}

/** What a gateway started with this configuration would run, without secrets. */
async function planFor(path: string, config: GatewayConfig, workers: number, env: NodeJS.ProcessEnv) {
  const [{ PROVIDERS, SIGNED_WEBHOOK_PROVIDER_IDS }, { isLive, needsSimulator, liveEndpoint, missingCredentials }, { mergePricing }] = await Promise.all([
    import('../providers/registry.js'),
    import('../sandbox/sandbox.js'),
    import('../core/model/pricing.js'),
  ]);
  const live = isLive(config, PROVIDERS);
  const problems: string[] = [];
  const providers: ProviderPlan[] = PROVIDERS.map((provider) => {
    const settings = config.providers[provider.id];
    let mode: ProviderPlan['mode'];
    let reason: string | null = null;
    let baseUrl: string | null = null;
    // Judged as the start judges it, for every block (a disabled one and one without credentials
    // too: a region or API shape the provider lacks is refused all the same).
    let endpoint;
    let refusal: string | undefined;
    try {
      endpoint = liveEndpoint(config, provider);
    } catch (error) {
      refusal = (error as Error).message;
      problems.push(refusal);
    }
    if (settings?.enabled === false) {
      mode = 'disabled';
      reason = 'enabled: false';
    } else if (refusal !== undefined) {
      mode = 'disabled';
      reason = refusal;
    } else if (settings?.api_key || settings?.access_key || settings?.accounts) {
      // A user part is a credential the upstream takes as Basic auth: never shown.
      baseUrl = endpoint === undefined ? null : redactUrl(endpoint.baseUrl);
      mode = 'live';
    } else if (needsSimulator(config, PROVIDERS, provider.id)) {
      mode = 'simulator';
    } else {
      mode = 'disabled';
      reason = `${missingCredentials(provider)} (simulators run only when no provider has a key; see sandbox.simulators)`;
    }
    const pricing = settings ? mergePricing(provider.defaultPricing, settings.pricing) : provider.defaultPricing;
    const cap = settings?.max_in_flight ?? 20;
    const accounts = (settings?.accounts ?? [{ id: 'default', max_in_flight: undefined, webhook_secret: undefined }]).map((account) => ({
      id: account.id,
      max_in_flight: account.max_in_flight ?? cap,
      // How many verify its webhooks, said only while a secret is rotated (one: as it always was).
      ...secretCount(account.webhook_secret ?? settings?.webhook_secret),
    }));
    return {
      id: provider.id,
      mode,
      reason,
      base_url: baseUrl,
      priority: settings?.priority ?? 100,
      weight: settings?.weight ?? 1,
      max_in_flight: accounts.reduce((sum, account) => sum + account.max_in_flight, 0),
      accounts,
      timeout_ms: settings?.timeout_ms ?? 30_000,
      rate_limits: [...(settings?.rate_limits ?? provider.defaultRateLimits ?? [])],
      webhooks: Boolean(settings?.webhook_secret || settings?.accounts?.some((account) => account.webhook_secret)),
      pricing: pricing ? { currency: pricing.currency, credit_value: pricing.credit_value, rules: pricing.rules.length } : null,
    };
  });
  // As the start refuses them (the prices the providers would run with).
  const { cheapestCurrencyProblems } = await import('../core/model/routing.js');
  const { budgetSettingsProblems } = await import('../core/tasks/spend-ledger.js');
  const running = providers.map((provider) => ({ id: provider.id, enabled: provider.mode !== 'disabled', pricing: provider.pricing }));
  problems.push(
    ...budgetSettingsProblems(config.tenants, running, config.webhooks.allow_private_targets),
    ...cheapestCurrencyProblems(
      config.routing.strategy,
      running.map((provider) => ({ id: provider.id, enabled: provider.enabled, currency: provider.pricing?.currency })),
    ),
  );
  // As the start warns.
  const { configurationWarnings } = await import('../config/config.js');
  const warnings = configurationWarnings(config, path, env, SIGNED_WEBHOOK_PROVIDER_IDS).map((warning) => warning.message);
  // The shipped sandbox key and secret are refused by the config itself in a live deployment.
  if (providers.every((provider) => provider.mode === 'disabled')) warnings.push('no provider would run: every request would be refused');
  const storage = await storagePlan(config);
  if (storage.problem) warnings.push(`storage.filesystem.path: ${storage.problem}: the gateway would not start on this machine`);
  // The gateway starts on such a port, but no browser (the console) nor fetch (the CLI, the
  // client) connects to it there.
  const blockedPort = notHttpUrl(config.server.public_url)?.blockedPort;
  if (blockedPort) {
    warnings.push(
      `server.public_url ${redactUrl(config.server.public_url)} has port ${blockedPort}, which browsers and fetch never connect to (other protocols use it): the console, the CLI and the client cannot reach the gateway there; use another port (e.g. 8080)`,
    );
  }
  return {
    file: path,
    valid: problems.length === 0,
    problems,
    deployment: live ? ('live' as const) : ('sandbox' as const),
    listen: `${config.server.host}:${config.server.port}`,
    workers,
    public_url: config.server.public_url,
    database: describeDatabaseUrl(config.database.url),
    // Once per tenant, with how many keys it has: two while a key is being rotated.
    tenants: [...new Set(config.auth.api_keys.map((entry) => entry.tenant))].map((tenant) => ({
      tenant,
      keys: config.auth.api_keys.filter((entry) => entry.tenant === tenant).length,
      webhook_secret: Boolean(config.tenants[tenant]?.webhook_secret),
      // How many sign its events, said only while a secret is rotated (one: as it always was).
      ...secretCount(config.tenants[tenant]?.webhook_secret),
    })),
    routing: config.routing,
    task_deadline_ms: config.tasks.deadline_ms,
    /** Who may read /metrics: bearer token, loopback clients only (live without a token), or anyone (sandbox). */
    metrics: config.server.metrics_token ? ('token' as const) : live ? ('loopback only' as const) : ('open' as const),
    limits: config.limits,
    storage: { mode: storage.mode, ...(storage.where ? { where: storage.where } : {}) },
    providers,
    warnings,
  };
}

/** Where result copies go (`storage`), and why the gateway could not write there; S3 is not asked. */
async function storagePlan(config: GatewayConfig): Promise<{ mode: 'copy' | 'passthrough'; where?: string; problem?: string }> {
  const { mode, backend } = config.storage;
  if (mode === 'passthrough') return { mode };
  if (backend === 's3') return { mode, where: `s3:${config.storage.s3.bucket ?? ''}` };
  const { FilesystemStorage } = await import('../storage/filesystem-storage.js');
  const storage = new FilesystemStorage(config.storage.filesystem.path);
  return { mode, where: storage.description, problem: await FilesystemStorage.writeProblem(config.storage.filesystem.path) };
}

function printPlan(out: CliOutput, plan: Awaited<ReturnType<typeof planFor>>): void {
  out.line(`${plan.file}: ${plan.valid ? 'valid' : 'not valid'}`);
  out.line(`  deployment  ${plan.deployment === 'live' ? 'live (an upstream key is set)' : 'sandbox (no upstream key: built-in simulators)'}`);
  out.line(`  listen      ${plan.listen}  (public URL ${plan.public_url})${plan.workers > 1 ? `, ${plan.workers} worker processes` : ''}`);
  out.line(`  database    ${plan.database}`);
  const tenantNotes = (t: (typeof plan.tenants)[number]) => [...(t.keys > 1 ? [`${t.keys} keys`] : []), ...(t.webhook_secret ? [t.webhook_secrets ? `webhooks signed with ${t.webhook_secrets} secrets` : 'webhooks signed'] : [])];
  out.line(`  tenants     ${plan.tenants.map((t) => t.tenant + (tenantNotes(t).length > 0 ? ` (${tenantNotes(t).join(', ')})` : '')).join(', ')}`);
  out.line(`  routing     ${plan.routing.strategy}${plan.routing.allow_fallbacks ? ', failover on' : ', no failover'}${plan.routing.failover_on_timeout ? ', also after timeouts' : ''}`);
  out.line(`  deadline    ${formatNumber(plan.task_deadline_ms / 60_000)} min`);
  out.line(`  metrics     ${plan.metrics === 'token' ? 'bearer token (METRICS_TOKEN)' : plan.metrics === 'loopback only' ? 'loopback clients only (set METRICS_TOKEN to scrape from elsewhere)' : 'open (sandbox)'}`);
  out.line(`  storage     ${plan.storage.mode === 'copy' ? `copies to ${plan.storage.where}` : 'passthrough (upstream URLs, no copies)'}`);
  out.line(`  limits      ${plan.limits.creates_per_minute} creates/min, ${plan.limits.open_streams} streams, ${plan.limits.open_waits} waits per tenant`);
  out.line('');
  out.table(plan.providers, [
    { header: 'PROVIDER', value: (p) => p.id },
    { header: 'MODE', value: (p) => p.mode },
    { header: 'UPSTREAM', value: (p) => p.base_url ?? (p.mode === 'simulator' ? 'loopback simulator' : '—') },
    { header: 'PRIORITY', value: (p) => String(p.priority), right: true },
    { header: 'CAP', value: (p) => String(p.max_in_flight), right: true },
    { header: 'RATE', value: (p) => p.rate_limits.map((r) => `${r.limit}/${formatNumber(r.window_ms / 1000)}s`).join(' ') || '—' },
    { header: 'PRICING', value: (p) => (p.pricing ? `${p.pricing.rules} rules, 1 credit = ${formatNumber(p.pricing.credit_value)} ${p.pricing.currency}` : 'none') },
  ]);
  for (const provider of plan.providers) {
    if (provider.accounts.length > 1 || provider.accounts[0]?.id !== 'default') {
      out.line(
        `  ${provider.id} accounts: ${provider.accounts.map((account) => `${account.id} (cap ${account.max_in_flight}${account.webhook_secrets ? `, ${account.webhook_secrets} webhook secrets` : ''})`).join(', ')}`,
      );
    } else if (provider.accounts[0]?.webhook_secrets) {
      out.line(`  ${provider.id}: webhooks verified with any of ${provider.accounts[0].webhook_secrets} secrets`);
    }
    if (provider.reason) out.line(`  ${provider.id}: ${provider.reason}`);
  }
}

export function registerOperatorCommands(program: Command, context: CliContext): void {
  program
    .command('check-config')
    .description('validate a config file as the gateway would at start, and show what would run (no secrets shown)')
    .argument('[file]', 'the config file (default: $CONFIG_FILE or ./config.yaml)')
    .action(async (file: string | undefined, _options: unknown, command: Command) => {
      const out = context.outputFor(command);
      const path = configPath(file, context.env);
      let plan;
      try {
        const config = await loadConfig(path, context.env);
        plan = await planFor(path, config, await workersFor(config, context.env), context.env);
      } catch (error) {
        if (error instanceof CliError && error.exitCode === ExitCode.badConfig) {
          out.data({ file: path, valid: false, problems: error.message.split('\n').slice(1).map((line) => line.replace(/^\s*- /, '')) });
        }
        throw error;
      }
      out.data(plan);
      printPlan(out, plan);
      for (const warning of plan.warnings) out.note(`warning: ${warning}`);
      if (!plan.valid) {
        for (const problem of plan.problems) out.note(`error: ${problem}`);
        context.exit(ExitCode.badConfig);
      }
    });

  program
    .command('migrate')
    .description('bring the database to the current schema (the gateway also does this at start)')
    .option('-c, --config <file>', 'read database.url from this config file (default: $CONFIG_FILE or ./config.yaml)')
    .option('--database-url <url>', 'this database instead (sqlite:<file> or postgres://…)')
    .action(async (options: { config?: string; databaseUrl?: string }, command: Command) => {
      const out = context.outputFor(command);
      // A flag that names no database is a mistake on the command line: no retry would get through.
      const refused = options.databaseUrl === undefined ? undefined : databaseUrlProblem(options.databaseUrl);
      if (refused) throw new CliError(`--database-url ${refused}`, ExitCode.usage);
      const url = options.databaseUrl ?? (await loadConfig(configPath(options.config, context.env), context.env)).database.url;
      const [{ openStore, StoreMigrationError }, { sql }, { holdSqliteFile, SqliteFileInUseError, SqliteWorkersStillRunningError }] = await Promise.all([import('../store/database.js'), import('kysely'), import('../store/sqlite-owner.js')]);
      let store;
      // A SQLite file a running gateway uses is not migrated under it: that gateway, of the older
      // release, would go on writing rows without what the migrations add.
      const notUnderAGateway = async (pending: readonly string[]) => {
        if (pending.length === 0) return;
        try {
          // Workers of a killed primary still on the file are a gateway running on it too: refused
          // at once, not after the wait a start gives them.
          await holdSqliteFile(url, { waitForOrphans: false });
        } catch (error) {
          const count = pending.length === 1 ? '1 migration' : `${pending.length} migrations`;
          const notChanged = `(${count} to apply: ${pending.join(', ')}); nothing was changed`;
          if (error instanceof SqliteFileInUseError) {
            throw new CliError(`${describeDatabaseUrl(url)}: a gateway is running on this file; stop it before migrating ${notChanged}`, ExitCode.usage);
          }
          if (error instanceof SqliteWorkersStillRunningError) {
            const pids = error.pids.length ? ` (pids ${error.pids.join(', ')})` : '';
            throw new CliError(
              `${describeDatabaseUrl(url)}: worker processes of a gateway whose primary ended${pids} still run on this file; stop them before migrating ${notChanged}`,
              ExitCode.usage,
            );
          }
          throw error;
        }
      };
      try {
        // A short-lived command: SQLite's own checkpoints, no thread.
        store = await openStore(url, { backgroundCheckpoints: false, beforeMigrating: notUnderAGateway });
      } catch (error) {
        if (error instanceof CliError) throw error;
        const message = (error as Error).message;
        throw new CliError(`${describeDatabaseUrl(url)}: ${message}`, error instanceof StoreMigrationError ? ExitCode.unexpected : ExitCode.unreachable);
      }
      try {
        const applied = await sql<{ name: string; timestamp: string }>`select name, timestamp from kysely_migration order by name`.execute(store.db);
        // What this open applied, as the store says: not told by the times recorded, which are
        // the clock of whoever applied each (another host's, ahead of this one's, or a replica
        // that migrated while this ran).
        const appliedNow = new Set(store.migrated ?? []);
        const migrations = applied.rows.map((row) => ({
          name: row.name,
          applied_at: new Date(row.timestamp).toISOString(),
          now: appliedNow.has(row.name),
        }));
        out.data({ database: describeDatabaseUrl(url), migrations });
        out.line(`${describeDatabaseUrl(url)}: schema up to date`);
        for (const migration of migrations) {
          out.line(`  ${migration.name.padEnd(32)} ${migration.now ? 'applied now' : `applied ${migration.applied_at}`}`);
        }
      } finally {
        await store.close();
      }
    });
}
