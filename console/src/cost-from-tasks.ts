/**
 * Spend worked out in the browser from the task list, for gateways without `GET /v1/usage`:
 * the same rows the usage report gives (tasks, succeeded, failed, canceled, in progress, seconds,
 * credits, amount), from each finished task's own cost (a running task is counted, its money not
 * yet). Bounded: at most MAX_TASKS of the most recent tasks in the period.
 */
import type { GatewayClient, Task, UsageFigures } from '../../packages/client/src/index.js';

export const MAX_TASKS = 1_000;

export type UsageGroup = 'provider' | 'model' | 'day';

const FINISHED: ReadonlySet<Task['status']> = new Set(['succeeded', 'failed', 'canceled']);

function groupValue(task: Task, group: UsageGroup): string | null {
  if (group === 'day') return task.created_at.slice(0, 10);
  if (group === 'provider') return task.provider ?? null;
  return task.model;
}

/**
 * Seconds of video a succeeded task delivered, as the usage report counts them: its videos'
 * lengths when each says one, else the seconds asked for (its duration, or every timed shot's),
 * else none (an edit as long as its source, an image).
 */
function deliveredSeconds(task: Task): number {
  const videos = task.outputs.filter((output) => output.type === 'video');
  if (videos.length === 0) return 0;
  if (videos.every((video) => typeof video.duration === 'number')) return videos.reduce((sum, video) => sum + (video.duration ?? 0), 0);
  // The request as accepted (the API document leaves its fields open).
  const { duration, multi_shot: shots } = task.request as { duration?: number; multi_shot?: readonly { duration?: number }[] };
  if (duration !== undefined) return Number(duration);
  if (!Array.isArray(shots) || shots.length === 0 || !shots.every((shot) => typeof shot?.duration === 'number')) return 0;
  return shots.reduce((sum, shot) => sum + (shot.duration ?? 0), 0);
}

/** Rows grouped by one field (and by currency, so amounts in different currencies never add up). */
export function usageFromTasks(tasks: readonly Task[], group: UsageGroup): UsageFigures[] {
  const rows = new Map<string, UsageFigures & { estimated_tasks: number }>();
  for (const task of tasks) {
    const value = groupValue(task, group);
    const currency = task.cost.currency ?? null;
    const key = JSON.stringify([value, currency]);
    let row = rows.get(key);
    if (!row) {
      // Tasks of a provider without a price list have credits but no currency value: null, as in the report, not 0.
      const amount = currency === null ? null : 0;
      row = { [group]: value, tasks: 0, succeeded: 0, failed: 0, canceled: 0, in_progress: 0, video_seconds: 0, credits: 0, currency_amount: amount, currency, estimated_tasks: 0 };
      rows.set(key, row);
    }
    row.tasks += 1;
    if (task.status === 'succeeded') {
      row.succeeded += 1;
      const seconds = deliveredSeconds(task);
      row.video_seconds += Number.isFinite(seconds) ? seconds : 0;
    }
    if (task.status === 'failed') row.failed += 1;
    if (task.status === 'canceled') row.canceled += 1;
    if (task.status === 'queued' || task.status === 'processing') row.in_progress += 1;
    // As the report: money counts once a task is finished (its charge is then final, a failure's
    // included); a running task's estimate is not a charge yet.
    if (!FINISHED.has(task.status)) continue;
    row.credits += task.cost.credits ?? 0;
    if (row.currency_amount !== null) row.currency_amount = Math.round((row.currency_amount + (task.cost.currency_amount ?? 0)) * 1e6) / 1e6;
    if (task.cost.estimated) row.estimated_tasks += 1;
    // Split as the report splits it, so the page marks the estimated part the same way.
    const part = task.cost.estimated ? 'currency_amount_estimated' : 'currency_amount_reported';
    if (task.cost.estimated) row.credits_estimated = (row.credits_estimated ?? 0) + (task.cost.credits ?? 0);
    if (row.currency_amount !== null) row[part] = Math.round(((row[part] ?? 0) + (task.cost.currency_amount ?? 0)) * 1e6) / 1e6;
  }
  return [...rows.values()];
}

/** The caller's tasks created from `from` and before `to` (when given), newest first, up to MAX_TASKS. */
export async function recentTasks(
  client: GatewayClient,
  { from, to }: { from: string; to?: string },
  signal: AbortSignal,
): Promise<{ tasks: Task[]; truncated: boolean }> {
  const tasks: Task[] = [];
  for await (const task of client.listAllVideos({ limit: 100 }, { signal })) {
    const created = Date.parse(task.created_at);
    if (created < Date.parse(from)) return { tasks, truncated: false };
    if (to !== undefined && created >= Date.parse(to)) continue;
    if (tasks.length >= MAX_TASKS) return { tasks, truncated: true };
    tasks.push(task);
  }
  return { tasks, truncated: false };
}
