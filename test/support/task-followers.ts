/**
 * Who follows a task on a gateway: each open event stream and `?wait=` subscribes to the task's
 * changes for as long as it is open (after taking its tenant's place, before its first read), and
 * unsubscribes as it ends (after giving that place back). A test waits for that instead of
 * sleeping and hoping the request got there.
 */
import type { TestGateway } from './harness.js';

export interface TaskFollowers {
  /** How many follow `taskId` now. */
  count(taskId: string): number;
  /** Settles once exactly `count` follow `taskId`. */
  until(taskId: string, count: number): Promise<void>;
}

/** Starts counting the followers of `gateway`'s tasks (those already following are not seen: start before). */
export function followTaskFollowers(gateway: TestGateway): TaskFollowers {
  const events = gateway.gateway.engine.events;
  const subscribe = events.subscribe.bind(events);
  const counts = new Map<string, number>();
  const waiting = new Set<{ taskId: string; count: number; resolve: () => void }>();
  const changed = (taskId: string, by: number) => {
    counts.set(taskId, (counts.get(taskId) ?? 0) + by);
    for (const waiter of waiting) {
      if (waiter.taskId === taskId && counts.get(taskId) === waiter.count) {
        waiting.delete(waiter);
        waiter.resolve();
      }
    }
  };
  events.subscribe = (taskId, listener) => {
    const unsubscribe = subscribe(taskId, listener);
    changed(taskId, 1);
    let done = false;
    return () => {
      unsubscribe();
      if (done) return;
      done = true;
      changed(taskId, -1);
    };
  };
  const count = (taskId: string) => counts.get(taskId) ?? 0;
  return {
    count,
    until: (taskId, wanted) =>
      count(taskId) === wanted ? Promise.resolve() : new Promise((resolve) => waiting.add({ taskId, count: wanted, resolve })),
  };
}
