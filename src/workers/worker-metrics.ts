/**
 * What the primary answers a scrape with, so that every counter of the sum only grows (Prometheus
 * takes a counter that went down for a restart of the process, and counts its whole value again:
 * a spike in every rate and increase, false alerts included). The workers come and go inside one
 * process Prometheus sees:
 *
 * - a worker that did not answer in time counts with what it last answered;
 * - a worker that died goes on counting with what it had counted, under its replacement.
 *
 * Only counters and histograms are carried over: a late or dead worker's gauges describe a moment
 * or a process that is gone, and the workers that answered report those.
 */
import type { MetricsSnapshot } from '../observability/metrics.js';

type Metric = MetricsSnapshot[number];
/** A histogram's values name their series (`_bucket`, `_sum`, `_count`). */
type Value = Metric['values'][number] & { metricName?: string };

/** Types that add up across the workers' lives (prom-client's JSON names them; its typings say numbers). */
const COUNTING_TYPES = new Set(['counter', 'histogram']);

/** The counters and histograms of a snapshot. */
function countsOf(snapshot: MetricsSnapshot): MetricsSnapshot {
  return snapshot.filter((metric) => COUNTING_TYPES.has(String(metric.type)));
}

/** One series of a metric: its name (a histogram's `_bucket`, `_sum`, `_count`) and its labels. */
function seriesKey(metric: Metric, value: Value): string {
  const labels = Object.entries(value.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${value.metricName ?? metric.name}\u0000${JSON.stringify(labels)}`;
}

/** `total` and `more` added up, series by series (both counters and histograms only). */
function addCounts(total: MetricsSnapshot, more: MetricsSnapshot): MetricsSnapshot {
  const byName = new Map(total.map((metric) => [metric.name, { ...metric, values: metric.values.map((value) => ({ ...value })) }]));
  for (const metric of more) {
    const sum = byName.get(metric.name);
    if (!sum) {
      byName.set(metric.name, { ...metric, values: metric.values.map((value) => ({ ...value })) });
      continue;
    }
    const series = new Map(sum.values.map((value) => [seriesKey(sum, value), value]));
    for (const value of metric.values) {
      const known = series.get(seriesKey(metric, value));
      if (known) known.value += value.value;
      else sum.values.push({ ...value });
    }
  }
  return [...byName.values()];
}

function isSnapshot(value: unknown): value is MetricsSnapshot {
  return Array.isArray(value);
}

export class WorkerMetricsLedger {
  /** Each live worker's last answer, by cluster worker id. */
  private readonly latest = new Map<number, MetricsSnapshot>();
  /** What the workers that died had counted, added up. */
  private retired: MetricsSnapshot = [];

  /** Notes a worker's answer to a collection. */
  answered(workerId: number, snapshot: unknown): void {
    if (isSnapshot(snapshot)) this.latest.set(workerId, snapshot);
  }

  /** A worker died: what it counted stays in every later sum. */
  retire(workerId: number): void {
    const last = this.latest.get(workerId);
    if (!last) return;
    this.latest.delete(workerId);
    this.retired = addCounts(this.retired, countsOf(last));
  }

  /**
   * The parts of a scrape when `answeredIds` answered it: their snapshots first (a gauge the
   * store gives every worker is read from the first), then the counts of the live workers that
   * did not answer and of those that died.
   */
  parts(answeredIds: ReadonlySet<number>): MetricsSnapshot[] {
    const fresh: MetricsSnapshot[] = [];
    const late: MetricsSnapshot[] = [];
    for (const [workerId, snapshot] of this.latest) {
      if (answeredIds.has(workerId)) fresh.push(snapshot);
      else late.push(countsOf(snapshot));
    }
    return [...fresh, ...late, ...(this.retired.length > 0 ? [this.retired] : [])];
  }
}
