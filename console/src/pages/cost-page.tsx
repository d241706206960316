/**
 * Spend by provider, model and day, from `GET /v1/usage`. On a gateway without that report the
 * same charts are worked out in the browser from the caller's recent tasks, and the page says so.
 */
import { useState } from 'preact/hooks';
import { EndpointNotAvailableError, formatMoney, formatNumber, type UsageFigures } from '../../../packages/client/src/index.js';
import { MAX_TASKS, recentTasks, usageFromTasks } from '../cost-from-tasks.js';
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

const GROUPS = [
  { field: 'provider', title: 'Spend by provider' },
  { field: 'model', title: 'Spend by model' },
  { field: 'day', title: 'Spend by day' },
] as const;

function amountOf(row: UsageFigures): number {
  return typeof row.currency_amount === 'number' ? row.currency_amount : 0;
}

function UsageTable({ field, rows }: { field: (typeof GROUPS)[number]['field']; rows: UsageFigures[] }) {
  const number = (value: unknown) => (typeof value === 'number' ? formatNumber(value) : '—');
  return (
    <div class="table-scroll" role="region" aria-label={`Usage by ${field}`} tabIndex={0}>
      <table class="usage">
        <caption class="visually-hidden">Usage by {field}</caption>
        <thead>
          <tr>
            <th scope="col">{field}</th>
            <th scope="col" class="number">Tasks</th>
            <th scope="col" class="number">Succeeded</th>
            <th scope="col" class="number">Failed</th>
            <th scope="col" class="number wide-only">Video seconds</th>
            <th scope="col" class="number wide-only">Credits</th>
            <th scope="col" class="number">Cost</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row, index) => (
            <tr key={`${String(row[field])}-${index}`}>
              <th scope="row">{String(row[field] ?? '—')}</th>
              <td class="number">{number(row.tasks)}</td>
              <td class="number">{number(row.succeeded)}</td>
              <td class="number">{number(row.failed)}</td>
              <td class="number wide-only">{number(row.video_seconds)}</td>
              <td class="number wide-only">{number(row.credits)}</td>
              <td class="number">{typeof row.currency_amount === 'number' ? formatMoney(row.currency_amount, row.currency ?? null) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function CostPage() {
  const { client } = useSession();
  const [days, setDays] = useState(7);
  const report = useGatewayData(
    async (_c, signal) => {
      const from = new Date(Date.now() - days * 86_400_000);
      try {
        const reports = await Promise.all(GROUPS.map((group) => client.usage({ group_by: [group.field], from: from.toISOString() }, { signal })));
        return { source: 'usage' as const, groups: GROUPS.map((group, index) => ({ ...group, rows: reports[index]!.data })) };
      } catch (error) {
        if (!(error instanceof EndpointNotAvailableError)) throw error;
        const { tasks, truncated } = await recentTasks(client, from, signal);
        return {
          source: 'tasks' as const,
          count: tasks.length,
          truncated,
          groups: GROUPS.map((group) => ({ ...group, rows: usageFromTasks(tasks, group.field) })),
        };
      }
    },
    [client, days],
  );

  return (
    <section>
      <PageHeading title="Cost" />
      <div class="filters">
        <div class="field">
          <label for="cost-period">Period</label>
          <select id="cost-period" value={String(days)} onChange={(event) => setDays(Number((event.target as HTMLSelectElement).value))}>
            {PERIODS.map((period) => (
              <option key={period.days} value={String(period.days)}>
                {period.label}
              </option>
            ))}
          </select>
        </div>
      </div>
      <ProblemMessage error={report.error} context="Cost reports" />
      {report.loading && !report.data ? <p class="muted">Loading…</p> : null}
      {report.data?.source === 'tasks' ? (
        <p class="notice" role="status" data-source="tasks">
          This gateway has no usage report (<code>GET /v1/usage</code>), so these figures are added up in your browser from your{' '}
          {report.data.count} most recent task{report.data.count === 1 ? '' : 's'} in the period
          {report.data.truncated ? ` (the first ${MAX_TASKS} only)` : ''}. Costs the provider has not reported are the gateway's estimates;
          days are UTC.
        </p>
      ) : null}
      {report.data?.groups.map((group) => {
        const rows = [...group.rows].sort((a, b) =>
          group.field === 'day' ? String(a.day).localeCompare(String(b.day)) : amountOf(b) - amountOf(a),
        );
        return (
          <section key={group.field} class="panel" aria-label={group.title}>
            <BarChart
              id={`chart-${group.field}`}
              title={group.title}
              data={rows.map((row) => ({
                label: String(row[group.field] ?? '—'),
                value: amountOf(row),
                text: typeof row.currency_amount === 'number' ? formatMoney(row.currency_amount, row.currency ?? null) : '—',
              }))}
            />
            <UsageTable field={group.field} rows={rows} />
          </section>
        );
      })}
    </section>
  );
}
