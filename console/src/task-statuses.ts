/**
 * Every task status, in lifecycle order. The check below fails to compile when the API gains a
 * status this list lacks (the generated types come from openapi/gateway.json).
 */
import type { Task, TaskStatus } from '../../packages/client/src/index.js';

export const TASK_STATUSES = ['queued', 'processing', 'succeeded', 'failed', 'canceled'] as const satisfies readonly TaskStatus[];

type MissingStatus = Exclude<TaskStatus, (typeof TASK_STATUSES)[number]>;
const everyStatusListed: [MissingStatus] extends [never] ? true : MissingStatus = true;
void everyStatusListed;

/** How far along a task is: its status only moves forward (queued → processing → its end). */
const PROGRESS: Record<TaskStatus, number> = { queued: 0, processing: 1, succeeded: 2, failed: 2, canceled: 2 };

/**
 * Whether `a` is a read of the task at least as recent as `b`. A read showing a status the task
 * has left is older, whatever its time: a read made before the task ended (a refresh, an event
 * stream's first event) and answered after its end was shown, or a version written in the same
 * millisecond as the end.
 */
export function newer(a: Task, b: Task | undefined): boolean {
  if (!b) return true;
  if (PROGRESS[a.status] !== PROGRESS[b.status]) return PROGRESS[a.status] > PROGRESS[b.status];
  return Date.parse(a.updated_at) >= Date.parse(b.updated_at);
}
