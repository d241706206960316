/**
 * A task the console already holds whole — the answer of the create that made it — handed to the
 * task page it opens next, so that page shows the task at once instead of saying "Loading…" while
 * it reads the same task again. Handed over for one id, and taken once: a later visit to that page
 * reads the task as any visit does.
 */
import type { Task } from '../../packages/client/src/index.js';

let handed: Task | undefined;

/** Hands `task` to the task page opened next. */
export function handOver(task: Task): void {
  handed = task;
}

/** The task handed over for `id`, left in place (a page's first render, before its effects run). */
export function handedOver(id: string): Task | undefined {
  return handed?.id === id ? handed : undefined;
}

/** The task handed over for `id`, if any; nothing is handed over afterwards. */
export function takeHandedOver(id: string): Task | undefined {
  const task = handedOver(id);
  handed = undefined;
  return task;
}
