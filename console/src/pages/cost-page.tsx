/**
 * Spend by provider, model and day, from `GET /v1/usage`. On a gateway without that report the
 * same charts are worked out in the browser from the caller's recent tasks, and the page says so.
 * The period lives in the page's address (`#/cost?days=30`, `#/cost?from=2026-11-01&to=2026-11-30`),
 * so a reload, Back and a shared link show the same report.
 */
import { useMemo, useState } from 'preact/hooks';
import { useLocation, useSearch } from 'wouter-preact';
import { EndpointNotAvailableError, formatCredits, formatMoney, formatNumber, usageEstimated, type UsageFigures } from '../../../packages/client/src/index.js';
import { MAX_TASKS, recentTasks, usageFromTasks } from '../cost-from-tasks.js';
import { GROUPED } from '../display.js';
import { BarChart } from '../components/bar-chart.js';
import { PageHeading } from '../components/page-heading.js';
import { ProblemMessage } from '../components/problem-message.js';
import { useSession } from '../gateway-context.js';
import { useGatewayData } from '../use-gateway-data.js';

const PERIODS = [
  { days: 1, label: 'Last 24 hours' },
  { days: 7, label: 'Last 7 days' },
  { days: 30, label: 'Last 30 days' },
  { days: 90, label: 'Last 90 days' },
];

const DEFAULT_DAYS = 7;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const DAY_MS = 86_400_000;

/** The last `days` days up to now, or whole UTC days from `from` through `to` (both included). */
type Period = { days: number } | { from: string; to: string };

/** `YYYY-MM-DD` naming a day the calendar has (not 2026-13-45 or 2026-02-30). */
function isDay(text: string): boolean {
  const time = Date.parse(text);
  return DAY.test(text) && !Number.isNaN(time) && utcDay(time) === text;
}

function periodFrom(search: string): Period {
  const query = new URLSearchParams(search);
  const from = query.get('from');
  const to = query.get('to');
  // The right way round whatever the address says (the API refuses a `from` after `to`).
  if (from && to && isDay(from) && isDay(to)) return from <= to ? { from, to } : { from: to, to: from };
  const days = Number(query.get('days'));
  return { days: PERIODS.some((period) => period.days === days) ? days : DEFAULT_DAYS };
}

function addressOf(period: Period): string {
  if (!('days' in period)) return `/cost?from=${period.from}&to=${period.to}`;
  return period.days === DEFAULT_DAYS ? '/cost' : `/cost?days=${period.days}`;
}

function utcDay(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/** The report's bounds as the API takes them: `from` included, `to` excluded (the day after the last). */
function boundsOf(period: Period): { from: string; to?: string } {
  if ('days' in period) return { from: new Date(Date.now() - period.days * DAY_MS).toISOString() };
  return { from: period.from, to: utcDay(Date.parse(period.to) + DAY_MS) };
}

/** Saves `text` as a file through the browser's download. */
function download(text: string, name: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  // After the click has handed the file to the browser.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

const GROUPS = [
  { field: 'provider', title: 'Spend by provider' },
  { field: 'model', title: 'Spend by model' },
  // UTC days (the report's), which are not the reader's own unless they live at UTC.
  { field: 'day', title: 'Spend by day (UTC)' },
] as const;

/** A row's name in its table and chart: the usage report's null provider is the tasks no provider took. */
function rowName(row: UsageFigures, field: (typeof GROUPS)[number]['field'], currencyNamed = false): string {
  const value = row[field];
  const name = value === null || value === undefined || value === '' ? (field === 'provider' ? 'no provider' : '—') : String(value);
  return currencyNamed ? `${name} (${row.currency ?? 'no price list'})` : name;
}

/**
 * Whether a group's rows count money in more than one currency (or some in none: a provider
 * without a price list). The report splits every row by currency, so one model or one day is then
 * several rows, which only their currency tells apart.
 */
function severalCurrencies(rows: UsageFigures[]): boolean {
  return new Set(rows.map((row) => row.currency ?? null)).size > 1;
}

/** The currencies a group's money is in, each once, in alphabetical order (rows without one have no money). */
function moneyCurrencies(rows: UsageFigures[]): string[] {
  return [...new Set(rows.flatMap((row) => (row.currency ? [row.currency] : [])))].sort();
}

/** What `~` means, under each table that has one (the task list says it as `~ estimated cost`). */
const ESTIMATE_LEGEND = "~ estimated, wholly or in part: the provider has not reported its charge, so the figure is the gateway's price list's";

/** `$0.56~` when the row's money is wholly or partly estimated, as the task list marks a task's cost. */
function costText(row: UsageFigures): string {
  if (typeof row.currency_amount !== 'number') return '—';
  return `${formatMoney(row.currency_amount, row.currency ?? null, GROUPED)}${usageEstimated(row) ? '~' : ''}`;
}

/** A figure's tooltip: estimated, or how much of it the providers reported. */
function estimateTitle(row: UsageFigures): string | undefined {
  if (!usageEstimated(row)) return undefined;
  const reported = row.currency_amount_reported ?? 0;
  return reported > 0 ? `partly estimated: ${formatMoney(reported, row.currency ?? null, GROUPED)} of it reported by the providers` : 'estimated';
}

function amountOf(row: UsageFigures): number {
  return typeof row.currency_amount === 'number' ? row.currency_amount : 0;
}

/** Rows with money a provider may also have billed (a create left unanswered, the task taken by another). */
function hasAtRisk(rows: readonly UsageFigures[]): boolean {
  return rows.some((row) => (row.tasks_at_risk ?? 0) > 0);
}

/** A row's money at risk: its value, else its credits (a provider with no price). */
function atRiskText(row: UsageFigures): string {
  if (typeof row.currency_amount_at_risk === 'number') return formatMoney(row.currency_amount_at_risk, row.currency ?? null, GROUPED);
  return row.credits_at_risk ? formatCredits(row.credits_at_risk, GROUPED) : '—';
}

/** The period's money at risk, per currency (`$0.56`, `$0.56 + 12 EUR`): every group adds up the same tasks, so one group's rows. */
function atRiskTotal(rows: readonly UsageFigures[]): string {
  const totals = new Map<string | null, number>();
  for (const row of rows) {
    if (typeof row.currency_amount_at_risk !== 'number') continue;
    const currency = row.currency ?? null;
    totals.set(currency, Math.round(((totals.get(currency) ?? 0) + row.currency_amount_at_risk) * 1e6) / 1e6);
  }
  return [...totals].map(([currency, amount]) => formatMoney(amount, currency, GROUPED)).join(' + ') || '—';
}

/**
 * The row's tasks that Succeeded and Failed leave out (`1 running · 2 canceled`), so Tasks adds
 * up; a running task's cost is counted once it finishes. Empty when there are none.
 */
function notCounted(row: UsageFigures): string {
  return [row.in_progress > 0 ? `${formatNumber(row.in_progress, GROUPED)} running` : null, row.canceled > 0 ? `${formatNumber(row.canceled, GROUPED)} canceled` : null]
    .filter(Boolean)
    .join(' · ');
}

function UsageTable({ field, rows }: { field: (typeof GROUPS)[number]['field']; rows: UsageFigures[] }) {
  const currencyNamed = severalCurrencies(rows);
  const number = (value: unknown) => (typeof value === 'number' ? formatNumber(value, GROUPED) : '—');
  // Only failover_on_timeout puts money at risk: without it the column would be zeros.
  const atRisk = hasAtRisk(rows);
  // A credit is each provider's own unit: a row of a model or a day adds up several providers'
  // credits, a figure that means nothing (Cost is the one to compare), so only providers show it.
  const credits = field === 'provider';
  return (
    <>
      <div class="table-scroll" role="region" aria-label={`Usage by ${field}`} tabIndex={0}>
        {/* One card per row at phone width (roles kept), so Cost is never scrolled out of sight. */}
        <table class="usage responsive" role="table">
          <caption class="visually-hidden">Usage by {field}</caption>
          <thead>
            <tr role="row">
              <th scope="col">{field === 'day' ? 'Day (UTC)' : field.charAt(0).toUpperCase() + field.slice(1)}</th>
              <th scope="col" class="number">Tasks</th>
              <th scope="col" class="number">Succeeded</th>
              <th scope="col" class="number">Failed</th>
              <th scope="col" class="number wide-only">Video seconds</th>
              {credits ? <th scope="col" class="number wide-only">Credits</th> : null}
              <th scope="col" class="number">Cost</th>
              {atRisk ? <th scope="col" class="number">At risk</th> : null}
            </tr>
          </thead>
          <tbody>
            {rows.map((row, index) => (
              <tr key={`${String(row[field])}-${index}`} role="row">
                <th scope="row" role="rowheader" class="primary-cell">{rowName(row, field, currencyNamed)}</th>
                <td role="cell" data-label="Tasks" class="number">
                  {number(row.tasks)}
                  {notCounted(row) ? <span class="row-note muted small">{notCounted(row)}</span> : null}
                </td>
                <td role="cell" data-label="Succeeded" class="number">{number(row.succeeded)}</td>
                <td role="cell" data-label="Failed" class="number">{number(row.failed)}</td>
                <td role="cell" data-label="Video seconds" class="number wide-only">{number(row.video_seconds)}</td>
                {credits ? (
                  <td role="cell" data-label="Credits" class="number wide-only" title={estimateTitle(row)}>
                    {number(row.credits)}
                    {usageEstimated(row) && typeof row.credits === 'number' ? '~' : ''}
                  </td>
                ) : null}
                <td role="cell" data-label="Cost" class="number" title={estimateTitle(row)}>
                  {costText(row)}
                </td>
                {atRisk ? (
                  <td role="cell" data-label="At risk" class="number">
                    {atRiskText(row)}
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {rows.some(usageEstimated) ? <p class="muted small table-note">{ESTIMATE_LEGEND}</p> : null}
    </>
  );
}

export function CostPage() {
  const { client } = useSession();
  const search = useSearch();
  const [, navigate] = useLocation();
  const period = useMemo(() => periodFrom(search), [search]);
  // A period change replaces the address rather than adding a step to Back.
  const setPeriod = (next: Period) => navigate(addressOf(next), { replace: true });
  const [csvError, setCsvError] = useState<unknown>(undefined);
  const address = addressOf(period);
  const loaded = useGatewayData(
    async (_c, signal) => {
      const bounds = boundsOf(period);
      try {
        const reports = await Promise.all(GROUPS.map((group) => client.usage({ group_by: [group.field], ...bounds }, { signal })));
        return { address, source: 'usage' as const, groups: GROUPS.map((group, index) => ({ ...group, rows: reports[index]!.data })) };
      } catch (error) {
        if (!(error instanceof EndpointNotAvailableError)) throw error;
        const { tasks, truncated } = await recentTasks(client, bounds, signal);
        return {
          address,
          source: 'tasks' as const,
          count: tasks.length,
          truncated,
          groups: GROUPS.map((group) => ({ ...group, rows: usageFromTasks(tasks, group.field) })),
        };
      }
    },
    [client, address],
  );
  // Only the report of the period chosen now: another period's figures under its name would be wrong.
  const report = { ...loaded, data: loaded.data?.address === address ? loaded.data : undefined };
  const choosePeriod = (value: string) => {
    if (value !== 'dates') return setPeriod({ days: Number(value) });
    // Dates start as the last seven whole days, today included.
    setPeriod({ from: utcDay(Date.now() - 6 * DAY_MS), to: utcDay(Date.now()) });
  };
  // A date cleared in its control keeps the one the report has; one past the other end takes
  // that end along (a From typed after To moves To too).
  const setDate = (field: 'from' | 'to') => (event: Event) => {
    const value = (event.target as HTMLInputElement).value;
    if ('days' in period || !isDay(value)) return;
    const next = { ...period, [field]: value };
    setPeriod(next.from <= next.to ? next : { from: value, to: value });
  };
  const downloadCsv = async () => {
    setCsvError(undefined);
    try {
      const csv = await client.usageCsv({ group_by: ['day', 'provider', 'model'], ...boundsOf(period) });
      const name = 'days' in period ? `usage-last-${period.days}-days.csv` : `usage-${period.from}-to-${period.to}.csv`;
      download(csv, name);
    } catch (error) {
      setCsvError(error);
    }
  };

  return (
    <section>
      <PageHeading title="Cost" />
      <div class="filters">
        <div class="field">
          <label for="cost-period">Period</label>
          <select id="cost-period" value={'days' in period ? String(period.days) : 'dates'} onChange={(event) => choosePeriod((event.target as HTMLSelectElement).value)}>
            {PERIODS.map((option) => (
              <option key={option.days} value={String(option.days)}>
                {option.label}
              </option>
            ))}
            <option value="dates">Chosen dates</option>
          </select>
        </div>
        {'days' in period ? null : (
          <>
            <div class="field">
              <label for="cost-from">From (UTC)</label>
              <input id="cost-from" type="date" value={period.from} max={period.to} onChange={setDate('from')} />
            </div>
            <div class="field">
              <label for="cost-to">To (UTC, included)</label>
              <input id="cost-to" type="date" value={period.to} min={period.from} onChange={setDate('to')} />
            </div>
          </>
        )}
        {report.data?.source === 'usage' ? (
          <button type="button" onClick={downloadCsv}>
            Download CSV
          </button>
        ) : null}
      </div>
      <ProblemMessage error={csvError} context="CSV" />
      <ProblemMessage error={report.error} context="Cost reports" retrying />
      {/* Also in the render between a new period and its request (loading is not yet set then). */}
      {!report.data && !report.error ? <p class="muted">Loading…</p> : null}
      {report.data?.source === 'tasks' ? (
        <p class="notice" role="status" data-source="tasks">
          This gateway has no usage report (<code>GET /v1/usage</code>), so these figures are added up in your browser from your{' '}
          {report.data.count} most recent task{report.data.count === 1 ? '' : 's'} in the period
          {report.data.truncated ? ` (the first ${MAX_TASKS} only)` : ''}. Costs the provider has not reported are the gateway's estimates;
          days are UTC.
        </p>
      ) : null}
      {report.data && hasAtRisk(report.data.groups[0]!.rows) ? (
        <p class="notice" data-at-risk-total>
          At risk in this period: {atRiskTotal(report.data.groups[0]!.rows)} (estimate): what providers may also have billed for tasks
          another provider took after their create went unanswered (<code>failover_on_timeout</code>). Not in the costs below; budgets
          count it as spent. The At risk columns show it by the provider that may have billed it, and by the task's model and day.
        </p>
      ) : null}
      {/* A period with no tasks: one sentence, not the same one under each of the three charts. */}
      {report.data && report.data.groups.every((group) => group.rows.length === 0) ? (
        <p class="muted" data-empty-period>
          No tasks in this period, so nothing was spent.
        </p>
      ) : null}
      {report.data?.groups.every((group) => group.rows.length === 0) ? null : report.data?.groups.map((group) => {
        // Days in order; else the largest first, within each currency (amounts of two are not compared).
        const currencyOrder = (a: UsageFigures, b: UsageFigures) => String(a.currency ?? '~').localeCompare(String(b.currency ?? '~'));
        const rows = [...group.rows].sort((a, b) =>
          group.field === 'day' ? String(a.day).localeCompare(String(b.day)) || currencyOrder(a, b) : currencyOrder(a, b) || amountOf(b) - amountOf(a),
        );
        // Euros and dollars are not measured with one ruler: a chart per currency, named so.
        const currencies = moneyCurrencies(rows);
        const charts =
          currencies.length > 1
            ? currencies.map((currency) => ({ id: `chart-${group.field}-${currency}`, title: `${group.title}, ${currency}`, rows: rows.filter((row) => row.currency === currency), named: false }))
            : [{ id: `chart-${group.field}`, title: group.title, rows, named: severalCurrencies(rows) }];
        return (
          <section key={group.field} class="panel" aria-label={group.title}>
            {charts.map((chart) => (
              <BarChart
                key={chart.id}
                id={chart.id}
                title={chart.title}
                data={chart.rows.map((row) => ({
                  label: rowName(row, group.field, chart.named),
                  value: amountOf(row),
                  text: costText(row),
                }))}
              />
            ))}
            {/* None in the period: the chart says so; a table of headings alone says nothing more. */}
            {rows.length > 0 ? <UsageTable field={group.field} rows={rows} /> : null}
          </section>
        );
      })}
    </section>
  );
}
