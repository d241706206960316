/**
 * Console-only wording: times relative to now, in the reader's locale; where a cost comes from;
 * what a task makes.
 */
import type { Operation, Task } from '../../packages/client/src/index.js';
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });

/** The console's figures are read by people: thousands apart (`$12,345.67`, `1,500 credits`). */
export const GROUPED = { grouped: true } as const;

/** "12 sec. ago", "3 min. ago", "yesterday". */
export function timeAgo(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 60) return relative.format(seconds, 'second');
  if (abs < 3600) return relative.format(Math.round(seconds / 60), 'minute');
  if (abs < 86_400) return relative.format(Math.round(seconds / 3600), 'hour');
  return relative.format(Math.round(seconds / 86_400), 'day');
}

/**
 * How long ago something the gateway stamped happened (a task created, an event sent): never in the
 * future, where a browser clock behind the gateway's would put it ("in 1 min."), but "now".
 */
export function timeSince(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const time = Date.parse(iso);
  return Number.isNaN(time) ? iso : timeAgo(new Date(Math.min(time, now)).toISOString(), now);
}

/**
 * Full local date and time with the zone's name (`Dec 4, 2026, 6:23:21 PM EST`), for titles and the
 * task page: the Cost page counts by UTC day, so a bare time would leave the reader to guess which
 * zone it is in.
 */
export function localTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'long' });
}

export function shortId(id: string): string {
  return id.length > 14 ? `${id.slice(0, 12)}…` : id;
}

/**
 * Where a task's cost comes from: the price list (`estimated`), the provider's own figure, or
 * nothing at all — no provider holds the task (canceled while queued, every create refused).
 */
export function costSource(task: Pick<Task, 'cost' | 'provider_task_id'>): 'estimate' | 'provider' | 'nothing' {
  if (task.cost.estimated) return 'estimate';
  return task.provider_task_id ? 'provider' : 'nothing';
}

/** Operations whose result is an image (the gateway's own list; the console bundle carries no zod). */
const IMAGE_OPERATIONS: ReadonlySet<Operation> = new Set<Operation>(['image-generation', 'virtual-try-on']);

/** What an operation makes: "Image" or "Video" (an operation this list does not know makes a video). */
export function operationNoun(operation: string): 'Image' | 'Video' {
  return (IMAGE_OPERATIONS as ReadonlySet<string>).has(operation) ? 'Image' : 'Video';
}

/** What a task makes, as its page and announcements name it: "Image" or "Video". */
export function taskNoun(task: Pick<Task, 'operation'>): 'Image' | 'Video' {
  return operationNoun(task.operation);
}

/**
 * Every provider tried refused the task: none holds it, though the API's `provider` names the one
 * tried last.
 */
export function refusedByAll(task: Pick<Task, 'provider' | 'provider_task_id' | 'attempts'>): boolean {
  return Boolean(task.provider) && !task.provider_task_id && task.attempts.length > 0 && task.attempts.every((attempt) => attempt.outcome === 'failed' || attempt.outcome === 'skipped');
}

/**
 * The provider holding a task, as its page names it. The API's `provider` is the one tried last,
 * also when every provider tried refused the task: then none holds it.
 */
export function holderText(task: Pick<Task, 'status' | 'provider' | 'provider_task_id' | 'attempts'>): string {
  // A queued task may still be taken (it waits for a slot, or to try again): "not yet", not "no".
  const none = task.status === 'queued' ? 'no provider has accepted it yet' : 'no provider accepted it';
  if (!task.provider) return `— (${none})`;
  return refusedByAll(task) ? `— (${none}; ${task.provider} was tried last)` : task.provider;
}
