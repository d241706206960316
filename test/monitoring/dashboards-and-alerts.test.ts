/**
 * The Grafana dashboard and Prometheus alert rules that ship in `monitoring/`: the rules pass
 * `promtool check rules` and their unit tests (`promtool test rules`), every dashboard query is
 * valid PromQL, and every metric and label they name is one the gateway exports (and a real scrape
 * of `/metrics` declares). promtool comes
 * with Debian's `prometheus` package (`.ci/run` installs it when missing); outside CI the
 * promtool checks are skipped when it is not installed, in CI they must run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../src/observability/metrics.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { promtoolInstalled } from '../support/promtool.js';

const ROOT = resolve(import.meta.dirname, '../..');
const RULES = join(ROOT, 'monitoring/prometheus/kling-gateway-alerts.yml');
const RULE_TESTS = join(ROOT, 'monitoring/prometheus/kling-gateway-alerts.test.yml');
const DASHBOARD = join(ROOT, 'monitoring/grafana/kling-gateway-dashboard.json');

const hasPromtool = promtoolInstalled();

function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { encoding: 'utf8', cwd: ROOT });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { refId: string; expr: string; legendFormat?: string; datasource?: { uid: string } }[];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; definition?: string }[] };
};
const rules = parseYaml(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: { alert: string; expr: string }[] }[] };

const dashboardQueries = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));
const variableQueries = dashboard.templating.list.filter((variable) => variable.definition).map((variable) => variable.definition!);
const alertQueries = rules.groups.flatMap((group) => group.rules.map((rule) => ({ alert: rule.alert, expr: rule.expr })));

/** Grafana's variables replaced by values PromQL accepts, as Grafana would before sending the query. */
function asPromql(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '5m')
    .replaceAll('$__range', '24h')
    .replaceAll('$__interval', '1m')
    .replaceAll('$provider', '.*')
    .replaceAll('$model', '.*');
}

/** Every series name and its labels, as the gateway exports them (histograms as _bucket, _sum, _count). */
function exportedSeries(): Map<string, Set<string>> {
  const metrics = new GatewayMetrics({ defaultMetrics: true });
  const series = new Map<string, Set<string>>();
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const { name, labelNames, type } = metric as unknown as { name: string; labelNames: string[]; type?: string };
    const labels = new Set(labelNames ?? []);
    const kind = type ?? (metric.constructor.name.toLowerCase());
    if (kind === 'histogram') {
      series.set(`${name}_bucket`, new Set([...labels, 'le']));
      series.set(`${name}_sum`, labels);
      series.set(`${name}_count`, labels);
    } else {
      series.set(name, labels);
    }
  }
  return series;
}
const EXPORTED = exportedSeries();
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = new Set(['instance', 'job']);

function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\bkling_gateway_[a-z0-9_]+/g) ?? [])];
}

describe('Prometheus alert rules', () => {
  it.skipIf(!hasPromtool)('pass promtool check rules', () => {
    const result = promtool('check', 'rules', RULES);
    expect(result.output).toMatch(/SUCCESS: 8 rules found/);
    expect(result.status).toBe(0);
  });

  it.skipIf(!hasPromtool)('fire as their unit tests expect (promtool test rules)', () => {
    const result = promtool('test', 'rules', RULE_TESTS);
    expect(result.output).toMatch(/SUCCESS/);
    expect(result.status).toBe(0);
  });

  it('cover circuit open, failure rate, budget near limit, queue age and paid upstream tasks nobody tracks', () => {
    expect(alertQueries.map((rule) => rule.alert)).toEqual(
      expect.arrayContaining(['KlingGatewayCircuitOpen', 'KlingGatewayTaskFailureRate', 'KlingGatewayBudgetNearLimit', 'KlingGatewayQueueAge', 'KlingGatewayUntrackedUpstreamTask']),
    );
  });
});

describe('Grafana dashboard', () => {
  it('has the panels operators asked for', () => {
    const titles = dashboard.panels.map((panel) => panel.title);
    for (const wanted of [
      'Spend per hour by provider and model',
      'Money at risk per hour (failed over after an unanswered create)',
      'Cost per second of video',
      'Task success rate by provider',
      'Time to complete (succeeded tasks)',
      'Circuit state',
      'Queue depth',
      'Quote against actual (reported ÷ estimated credits)',
      'Budget committed (spent + reserved)',
      'Replica clock offset (against PostgreSQL)',
    ]) {
      expect(titles).toContain(wanted);
    }
  });

  it('is well formed: unique panel ids, inside the 24-column grid, every query on the chosen data source', () => {
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      if (panel.type === 'row') continue;
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) expect(target.datasource?.uid, panel.title).toBe('${datasource}');
    }
    expect(dashboard.templating.list.map((variable) => variable.name)).toEqual(['datasource', 'provider', 'model']);
  });

  it.skipIf(!hasPromtool)('has only valid PromQL (checked by promtool as recording rules)', () => {
    const directory = mkdtempSync(join(tmpdir(), 'kg-dashboard-'));
    const file = join(directory, 'dashboard-queries.yml');
    writeFileSync(
      file,
      stringifyYaml({
        groups: [
          {
            name: 'dashboard',
            rules: dashboardQueries.map((query, index) => ({ record: `dashboard:query_${index}`, expr: asPromql(query.expr) })),
          },
        ],
      }),
    );
    const result = promtool('check', 'rules', file);
    expect(result.output).toMatch(new RegExp(`SUCCESS: ${dashboardQueries.length} rules found`));
    expect(result.status).toBe(0);
  });
});

describe('dashboard and alert queries read only what the gateway exports', () => {
  const everyQuery = [
    ...dashboardQueries.map((query) => ({ where: `dashboard panel "${query.panel}"`, expr: query.expr })),
    ...variableQueries.map((expr) => ({ where: 'dashboard variable', expr })),
    ...alertQueries.map((query) => ({ where: `alert ${query.alert}`, expr: query.expr })),
  ];

  it('names only metrics the gateway exports', () => {
    const missing = everyQuery.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((name) => !EXPORTED.has(name))
        .map((name) => `${where}: ${name}`),
    );
    expect(missing).toEqual([]);
    // And each reads at least one gateway metric.
    for (const { where, expr } of everyQuery) expect(metricNames(expr).length, where).toBeGreaterThan(0);
  });

  it('matches and groups only by labels those metrics have', () => {
    const problems: string[] = [];
    for (const { where, expr } of everyQuery) {
      const names = metricNames(expr);
      const known = new Set([...TARGET_LABELS, ...names.flatMap((name) => [...(EXPORTED.get(name) ?? [])])]);
      for (const match of expr.matchAll(/(kling_gateway_[a-z0-9_]+)\{([^}]*)\}/g)) {
        const labels = EXPORTED.get(match[1]!) ?? new Set();
        for (const matcher of match[2]!.matchAll(/([a-z_]+)\s*(=~|!~|!=|=)/g)) {
          if (!labels.has(matcher[1]!) && !TARGET_LABELS.has(matcher[1]!)) problems.push(`${where}: ${match[1]} has no label ${matcher[1]}`);
        }
      }
      for (const grouping of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
        for (const label of grouping[1]!.split(',').map((entry) => entry.trim()).filter(Boolean)) {
          if (!known.has(label)) problems.push(`${where}: groups by ${label}, which none of ${names.join(', ')} has`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('names in each legend only labels its query keeps', () => {
    const problems: string[] = [];
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        const groupings = [...target.expr.matchAll(/\bby\s*\(([^)]*)\)/g)].map((match) => match[1]!.split(',').map((label) => label.trim()));
        // An aggregation keeps only its `by` labels; a query with none keeps its metrics' own.
        const kept = new Set(
          groupings.length > 0 ? groupings.flat() : [...TARGET_LABELS, ...metricNames(target.expr).flatMap((name) => [...(EXPORTED.get(name) ?? [])])],
        );
        for (const [, label] of (target.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
          if (!kept.has(label!)) problems.push(`${panel.title} (${target.refId}): legend names ${label}, which the query drops`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  describe('against a real scrape of /metrics', () => {
    let gw: TestGateway;
    let scraped: Set<string>;
    beforeAll(async () => {
      gw = await startTestGateway();
      const exposition = await (await fetch(`${gw.url}/metrics`)).text();
      // Every family the scrape declares, with the series names a histogram's family stands for.
      scraped = new Set(
        [...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) =>
          type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!],
        ),
      );
    });
    afterAll(async () => {
      await gw.close();
    });

    it('declares every metric a dashboard query or an alert rule reads', () => {
      expect(scraped.size).toBeGreaterThan(10);
      const missing = everyQuery.flatMap(({ where, expr }) =>
        metricNames(expr)
          .filter((name) => !scraped.has(name))
          .map((name) => `${where}: ${name}`),
      );
      expect(missing).toEqual([]);
    });
  });

  describe('counters a query takes rate() or increase() of, before their first event', () => {
    // Prometheus reads a counter's rise from its first sample on: a series that first appears at
    // its first task's charge (a failover, a refusal) starts there, and rate()/increase() never
    // count that first amount. So the spend stat missed each provider and model's first task, the
    // failovers panel its first failover of each reason, KlingGatewayBudgetRefusingCreates a
    // tenant's first refusal. The gateway exports them at 0 from its start instead.
    let gw: TestGateway;
    let exposition: string;
    beforeAll(async () => {
      gw = await startTestGateway({ config: { tenants: { acme: { budget: { amount: 10, currency: 'USD', period: 'month' } } } } });
      exposition = await (await fetch(`${gw.url}/metrics`)).text();
    });
    afterAll(async () => {
      await gw.close();
    });

    /** The labels of each series of `name` whose value is 0, in a scrape before any traffic. */
    function zeroSeries(name: string): Record<string, string>[] {
      return [...exposition.matchAll(new RegExp(`^${name}\\{([^}]*)\\} 0$`, 'gm'))].map(([, labels]) =>
        Object.fromEntries([...labels!.matchAll(/(\w+)="([^"]*)"/g)].map(([, key, value]) => [key!, value!])),
      );
    }

    it('exports every counter a dashboard or alert query rates at 0, for each provider and budgeted tenant', () => {
      const rated = new Set(
        everyQuery.flatMap(({ expr }) =>
          [...expr.matchAll(/\b(?:rate|increase)\((kling_gateway_[a-z0-9_]+)/g)].map(([, name]) => name!),
        ),
      );
      // Histograms' series (_bucket, _sum, _count) lose one observation, not an amount: left out.
      const counters = [...rated].filter((name) => name.endsWith('_total'));
      expect(counters.length).toBeGreaterThan(3);
      const problems: string[] = [];
      for (const name of counters) {
        const labels = EXPORTED.get(name)!;
        const zeros = zeroSeries(name);
        if (labels.has('provider')) {
          for (const provider of ['freepik', 'kling3api', 'kling-legacy']) {
            if (!zeros.some((series) => series.provider === provider)) problems.push(`${name}: no zero series for ${provider}`);
          }
        }
        if (labels.has('tenant') && !zeros.some((series) => series.tenant === 'acme')) problems.push(`${name}: no zero series for tenant acme`);
      }
      expect(problems).toEqual([]);
    });

    it('with the label values a task, a failover and a refusal will carry', () => {
      expect(zeroSeries('kling_gateway_currency_spent_total')).toContainEqual({ provider: 'freepik', account: 'default', model: 'kling-v3', currency: 'USD' });
      expect(zeroSeries('kling_gateway_credits_spent_total')).toContainEqual({ provider: 'kling-legacy', account: 'default', model: 'kling-v2-6' });
      expect(zeroSeries('kling_gateway_currency_at_risk_total')).toContainEqual({ provider: 'kling3api', account: 'default', model: 'kling-v3', currency: 'USD' });
      expect(zeroSeries('kling_gateway_video_seconds_total')).toContainEqual({ provider: 'kling3api', model: 'kling-v3-omni' });
      expect(zeroSeries('kling_gateway_tasks_finished_total')).toEqual(
        expect.arrayContaining([
          { provider: 'freepik', model: 'kling-v3', status: 'succeeded', error_code: '' },
          { provider: 'freepik', model: 'kling-v3', status: 'failed', error_code: 'provider_error' },
          { provider: 'kling3api', model: 'kling-v3', status: 'failed', error_code: 'content_policy' },
          // A task no provider took (every one refused it, or none was left) finishes under "none".
          { provider: 'none', model: 'kling-v3', status: 'failed', error_code: 'no_provider_available' },
        ]),
      );
      expect(zeroSeries('kling_gateway_failovers_total')).toEqual(
        expect.arrayContaining([
          { provider: 'freepik', reason: 'server_error' },
          { provider: 'freepik', reason: 'insufficient_credits' },
          { provider: 'kling-legacy', reason: 'rate_limited' },
          { provider: 'kling3api', reason: 'circuit_open' },
        ]),
      );
      expect(zeroSeries('kling_gateway_budget_refusals_total')).toEqual([{ tenant: 'acme' }]);
    });
  });

  it('would notice a metric the gateway does not export', () => {
    expect(EXPORTED.has('kling_gateway_currency_spent_total')).toBe(true);
    expect(EXPORTED.has('kling_gateway_cost_drift_ratio_bucket')).toBe(true);
    expect(EXPORTED.has('kling_gateway_spend_dollars_total')).toBe(false);
  });
});
