/**
 * What the gateway offers and how it is doing: models, providers, usage.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import gatewayDocument from '../../openapi/gateway.json' with { type: 'json' };
import {
  accountsOf,
  formatMoney,
  formatMs,
  formatNumber,
  formatPercent,
  GatewayError,
  type ModelList,
  type ProviderAccountStatus,
  type ProviderStatus,
  type UsageRow,
  usageEstimated,
} from '../../packages/client/src/index.js';
import { formatTime, type Column } from './cli-output.js';
import type { CliContext } from './cli-context.js';
import { CliError, ExitCode } from './exit-codes.js';

/** The keys `GET /v1/usage` groups by, from the API document (`tenant` only for admin keys). */
const USAGE_GROUPS: string[] = (
  gatewayDocument as unknown as { components: { schemas: { UsageReport: { properties: { group_by: { items: { enum: string[] } } } } } } }
).components.schemas.UsageReport.properties.group_by.items.enum;

/** The group keys as `usage --help` and its errors name them. */
const USAGE_GROUPS_SAID = USAGE_GROUPS.map((key) => (key === 'tenant' ? 'tenant (admin keys)' : key)).join(', ');

/** `GET /v1/usage`'s `group_by` parameter in the API document: the gateway's whole rule for it. */
const GROUP_BY_PARAMETER = (
  gatewayDocument as unknown as {
    paths: { '/v1/usage': { get: { parameters: { name: string; schema: { pattern: string; maxLength: number } }[] } } };
  }
).paths['/v1/usage'].get.parameters.find((parameter) => parameter.name === 'group_by')!.schema;
const GROUP_BY_PATTERN = new RegExp(GROUP_BY_PARAMETER.pattern, 'u');

/**
 * `usage --group-by`, checked against the API document's `group_by` parameter (its keys, each at
 * most once, `account` only beside `provider`), so a value the gateway would refuse is a
 * command-line error naming the flag (exit 2) rather than the gateway's 400 (exit 3). The document
 * decides; the messages only say which of its rules the value breaks.
 */
function usageGroups(value: string): string {
  const keys = value.split(',').map((field) => field.trim()).filter(Boolean);
  for (const key of keys) {
    if (!USAGE_GROUPS.includes(key)) throw new InvalidArgumentError(`${key} is not a group key: give ${USAGE_GROUPS_SAID}`);
  }
  if (value.length <= GROUP_BY_PARAMETER.maxLength && GROUP_BY_PATTERN.test(value)) return value;
  const twice = keys.find((key, index) => keys.indexOf(key) !== index);
  if (twice) throw new InvalidArgumentError(`${twice} is named twice: give each key once`);
  if (keys.includes('account') && !keys.includes('provider')) {
    throw new InvalidArgumentError('account ids are per provider: group by provider too (provider,account)');
  }
  throw new InvalidArgumentError(`is not a grouping the gateway takes: comma-separated, each at most once: ${USAGE_GROUPS_SAID}`);
}

/**
 * `usage`'s columns for what providers may also have billed (a create left unanswered before
 * another provider took the task): estimates, in no other column.
 */
const AT_RISK_COLUMNS: Column<UsageRow>[] = [
  { header: 'AT RISK', value: (row) => formatNumber(row.tasks_at_risk), right: true },
  { header: 'CREDITS AT RISK', value: (row) => formatNumber(row.credits_at_risk), right: true },
  {
    header: 'COST AT RISK',
    value: (row) => (typeof row.currency_amount_at_risk === 'number' ? formatMoney(row.currency_amount_at_risk, row.currency ?? null) : '—'),
    right: true,
  },
];
const AT_RISK_NOTE =
  'AT RISK: tasks a provider may also have billed, its create left unanswered before another provider took them (failover_on_timeout); estimates, not in CREDITS or COST';

/** The canonical model names, from the API document (a misspelt one would list nothing). */
const MODELS = (gatewayDocument as unknown as { components: { schemas: { Model: { enum: string[] } } } }).components.schemas.Model.enum;

/**
 * `usage --from` / `--to`, checked here by the rule `GET /v1/usage` applies, so a date it would
 * refuse is a command-line error naming the flag (exit 2) rather than the gateway's 400 (exit 3).
 * The rule is loaded only when a date is given: its schema library costs more than the CLI's own
 * start.
 */
async function checkUsagePeriod(from: string | undefined, to: string | undefined): Promise<void> {
  if (!from && !to) return;
  const { DateOrZonedDateTime, effectiveFromMs } = await import('../core/model/pricing.js');
  for (const [flag, value] of [['--from', from], ['--to', to]] as const) {
    if (value && !DateOrZonedDateTime.safeParse(value).success) {
      throw new CliError(`${flag} ${value} is not a date the gateway takes: give YYYY-MM-DD (00:00 UTC) or an ISO 8601 date-time with a zone, e.g. 2026-11-22T10:00+01:00`, ExitCode.usage);
    }
  }
  if (from && to && effectiveFromMs(from) >= effectiveFromMs(to)) throw new CliError(`--from ${from} must be before --to ${to}`, ExitCode.usage);
}

/**
 * The gateway's 400 for a period of one end given (`--from` alone at or after the end of today,
 * where `to` defaults; `--to` alone at or before the 1st of this month) as the command-line error
 * it is, naming the flags; the defaults are the gateway's (its clock), so it says when.
 */
function oneEndOutOfOrder(error: unknown, from: string | undefined, to: string | undefined): unknown {
  if (!(error instanceof GatewayError) || error.status !== 400 || Boolean(from) === Boolean(to)) return error;
  const fields = error.problem.errors ?? [];
  if (fields.length !== 1) return error;
  if (from && fields[0]!.path === 'from') return new CliError(`--from ${from} is not before the end of today (UTC), where --to defaults: give --to too`, ExitCode.usage);
  if (to && fields[0]!.path === 'to') return new CliError(`--to ${to} is not after the 1st of this month (UTC), where --from defaults: give --from too`, ExitCode.usage);
  return error;
}

type ModelEntry = ModelList['data'][number];
type ServingProvider = ModelEntry['operations'][number]['providers'][number];

/**
 * One models-table row: a model (alone on its line), or a provider serving one of its operations
 * (the operation named, indented, on its first provider's line). A model has a line of its own
 * so the longest names do not widen every row: the table stays within 100 columns.
 */
interface ModelRow {
  name: string;
  provider: string;
  qualities: string;
  needs: string;
  upstream: string;
}

/**
 * What a request must carry for `provider` to serve it so: each field required alone, then each
 * group of which it needs one (`prompt|multi_shot`), as the console's Models page says.
 */
function needsOf(provider: ServingProvider): string {
  const required = Object.entries(provider.fields)
    .filter(([, rule]) => rule.required)
    .map(([field]) => field);
  // Older gateways do not list such groups.
  const groups = (provider.required_one_of ?? []).map((group) => group.join('|'));
  return [...required, ...groups].join(', ') || '—';
}

function modelRows(entry: ModelEntry): ModelRow[] {
  const heading: ModelRow = { name: entry.model, provider: '', qualities: '', needs: '', upstream: '' };
  return [
    heading,
    ...entry.operations.flatMap((operation) =>
      operation.providers.map((provider, index) => ({
        name: index === 0 ? `  ${operation.operation}` : '',
        provider: provider.provider + (provider.enabled ? '' : ' (disabled)'),
        qualities: provider.qualities.join(','),
        needs: needsOf(provider),
        upstream: provider.upstream,
      })),
    ),
  ];
}

/** One providers-table row: a provider, or one of its accounts (indented under it). */
interface ProviderRow {
  name: string;
  mode: string;
  circuit: string;
  inFlight: string;
  queued: string;
  success: string;
  calls: string;
  p50: string;
  p95: string;
  completion: string;
}

function providerRow(provider: ProviderStatus): ProviderRow {
  return {
    name: provider.id,
    mode: provider.mode,
    circuit: provider.circuit.replace('_', '-') + (provider.cooling_down_until ? ` (cool-down until ${formatTime(provider.cooling_down_until)})` : ''),
    inFlight: `${provider.in_flight}/${provider.max_in_flight}`,
    queued: String(provider.queued),
    success: formatPercent(provider.success_rate),
    calls: String(provider.calls),
    p50: formatMs(provider.latency_p50_ms),
    p95: formatMs(provider.latency_p95_ms),
    completion: formatMs(provider.median_completion_ms),
  };
}

function accountRow(account: ProviderAccountStatus): ProviderRow {
  return {
    name: `  └ ${account.id}`,
    mode: '',
    circuit: account.circuit.replace('_', '-') + (account.cooling_down_until ? ` (cool-down until ${formatTime(account.cooling_down_until)})` : ''),
    inFlight: `${account.in_flight}/${account.max_in_flight}`,
    queued: '',
    success: formatPercent(account.success_rate),
    calls: String(account.calls),
    p50: formatMs(account.latency_p50_ms),
    p95: formatMs(account.latency_p95_ms),
    completion: '',
  };
}

export function registerCatalogCommands(program: Command, context: CliContext): void {
  program
    .command('models')
    .description('canonical models and operations, which providers serve each, and what a request needs for it')
    .addOption(new Option('--model <model>', 'only this model').choices(MODELS))
    .option('--upstream', 'add the call each provider makes upstream (a wide column)')
    .action(async (options: { model?: string; upstream?: boolean }, command: Command) => {
      const out = context.outputFor(command);
      const models = await context.clientFor(command).listModels({ signal: context.signal });
      out.data(options.model ? { data: models.data.filter((entry) => entry.model === options.model) } : models);
      const rows = models.data.filter((entry) => !options.model || entry.model === options.model).flatMap(modelRows);
      out.table(rows, [
        { header: 'MODEL / OPERATION', value: (r) => r.name },
        { header: 'PROVIDER', value: (r) => r.provider },
        { header: 'QUALITIES', value: (r) => r.qualities },
        { header: 'NEEDS', value: (r) => r.needs },
        ...(options.upstream ? [{ header: 'UPSTREAM', value: (r: ModelRow) => r.upstream }] : []),
      ]);
      if (rows.length > 0) out.legend('NEEDS: fields a request must carry; a|b: at least one of them');
    });

  program
    .command('providers')
    .description('each provider (and account): mode, circuit, load, success rate, latency')
    .action(async (_options: unknown, command: Command) => {
      const out = context.outputFor(command);
      const providers = await context.clientFor(command).listProviders({ signal: context.signal });
      out.data(providers);
      const rows = providers.data.flatMap((provider) => [providerRow(provider), ...accountsOf(provider).map(accountRow)]);
      out.table(rows, [
        { header: 'PROVIDER', value: (r) => r.name },
        { header: 'MODE', value: (r) => r.mode },
        { header: 'CIRCUIT', value: (r) => r.circuit },
        { header: 'IN FLIGHT', value: (r) => r.inFlight, right: true },
        { header: 'QUEUED', value: (r) => r.queued, right: true },
        { header: 'SUCCESS', value: (r) => r.success, right: true },
        { header: 'CALLS', value: (r) => r.calls, right: true },
        { header: 'P50', value: (r) => r.p50, right: true },
        { header: 'P95', value: (r) => r.p95, right: true },
        { header: 'MEDIAN DONE', value: (r) => r.completion, right: true },
      ]);
      for (const provider of providers.data) {
        if (provider.disabled_reason) out.note(`${provider.id}: ${provider.disabled_reason}`);
      }
      // A gateway that does not say (an older one) is not taken to say no.
      const cannotCancel = providers.data.filter((provider) => provider.can_cancel === false).map((provider) => provider.id);
      if (cannotCancel.length > 0) out.note(`cannot cancel a task they accepted (cancel works only while it waits at the gateway: queued, no provider task id): ${cannotCancel.join(', ')}`);
      out.legend('queued = tasks waiting for any provider; success and latency over the last 10 minutes of upstream calls');
    });

  program
    .command('usage')
    .description('spend and outcomes grouped by provider, account, model, operation, quality, day or (admin keys) tenant')
    .option('--group-by <fields>', `comma-separated: ${USAGE_GROUPS_SAID}; account only with provider, each key once`, usageGroups, 'provider,model')
    .option('--tenant <name>', 'only this tenant (admin keys; without it an admin key reads every tenant)')
    .option('--from <date>', 'from this date or time (inclusive): YYYY-MM-DD (00:00 UTC) or ISO 8601 with a zone (default: the 1st of this month, UTC)')
    .option('--to <date>', 'until this date or time (exclusive): YYYY-MM-DD (00:00 UTC) or ISO 8601 with a zone (default: the end of today, UTC)')
    .option('--csv', 'print the CSV the gateway produces')
    .action(async (options: { groupBy: string; from?: string; to?: string; tenant?: string; csv?: boolean }, command: Command) => {
      if (options.csv && context.globals(command).json) throw new CliError('--csv and --json each ask for a format of their own: give one', ExitCode.usage);
      await checkUsagePeriod(options.from, options.to);
      const out = context.outputFor(command);
      const client = context.clientFor(command);
      const groupBy = options.groupBy.split(',').map((field) => field.trim()).filter(Boolean);
      const query = {
        group_by: groupBy,
        ...(options.from ? { from: options.from } : {}),
        ...(options.to ? { to: options.to } : {}),
        ...(options.tenant ? { tenant: options.tenant } : {}),
      };
      const refused = (error: unknown) => {
        throw oneEndOutOfOrder(error, options.from, options.to);
      };
      if (options.csv) {
        context.stdout.write(await client.usageCsv(query, { signal: context.signal }).catch(refused));
        return;
      }
      const report = await client.usage(query, { signal: context.signal }).catch(refused);
      out.data(report);
      // The period the gateway counted (its defaults when no --from/--to was given).
      const period = `from ${formatTime(report.from)} to ${formatTime(report.to)} (UTC, to excluded)`;
      if (report.data.length === 0) {
        out.line(`no usage ${period}`);
        return;
      }
      out.note(`usage ${period}`);
      // `~`: wholly or partly the price list's estimate, as `list` marks a task's cost.
      const estimate = (row: UsageRow, text: string) => (text !== '—' && usageEstimated(row) ? `${text}~` : text);
      const count = (value: unknown) => (typeof value === 'number' ? formatNumber(value) : '—');
      // Only failover_on_timeout puts money at risk: without it the columns would be zeros.
      const atRisk = report.data.some((row) => row.tasks_at_risk > 0);
      out.table(report.data, [
        ...groupBy.map((field) => ({
          header: field.toUpperCase(),
          value: (row: UsageRow) => String((row as Record<string, unknown>)[field] ?? '—'),
        })),
        { header: 'TASKS', value: (row: UsageRow) => count(row.tasks), right: true },
        { header: 'SUCCEEDED', value: (row: UsageRow) => count(row.succeeded), right: true },
        { header: 'FAILED', value: (row: UsageRow) => count(row.failed), right: true },
        // Tasks that SUCCEEDED and FAILED leave out (a running one's money counts once it ends): shown once there are any.
        ...(report.data.some((row) => row.canceled > 0 || row.in_progress > 0)
          ? [
              { header: 'CANCELED', value: (row: UsageRow) => count(row.canceled), right: true },
              { header: 'RUNNING', value: (row: UsageRow) => count(row.in_progress), right: true },
            ]
          : []),
        { header: 'SECONDS', value: (row: UsageRow) => count(row.video_seconds), right: true },
        { header: 'CREDITS', value: (row: UsageRow) => estimate(row, count(row.credits)), right: true },
        {
          header: 'COST',
          value: (row: UsageRow) => estimate(row, typeof row.currency_amount === 'number' ? formatMoney(row.currency_amount, row.currency ?? null) : '—'),
          right: true,
        },
        ...(atRisk ? AT_RISK_COLUMNS : []),
      ]);
      if (report.data.some(usageEstimated)) out.legend('~ = estimated, wholly or in part (the provider has not reported its charge): the price list\'s figure');
      if (atRisk) out.legend(AT_RISK_NOTE);
    });
}
