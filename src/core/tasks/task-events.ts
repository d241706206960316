/**
 * In-process notifications of task changes, for `?wait=` and Server-Sent Events. Another
 * replica's changes are not seen here; waiters also re-read the store periodically for that.
 */
import { EventEmitter } from 'node:events';
import type { TaskRow } from '../../store/task-store.js';

export class TaskEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every open SSE stream and waiting GET is one listener.
    this.emitter.setMaxListeners(0);
  }

  publish(task: TaskRow): void {
    this.emitter.emit(task.id, task);
  }

  /** Calls `listener` on each change of the task; returns the unsubscribe function. */
  subscribe(taskId: string, listener: (task: TaskRow) => void): () => void {
    this.emitter.on(taskId, listener);
    return () => this.emitter.off(taskId, listener);
  }
}
