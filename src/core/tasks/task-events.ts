/**
 * In-process notifications of task changes, for `watch` (SSE and `?wait=`). Another replica's
 * changes are not seen here; watchers also re-read the store periodically for those.
 */
import { EventEmitter } from 'node:events';
import type { TaskRecord } from './task-records.js';

export class TaskEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every open SSE stream and waiting GET is one listener.
    this.emitter.setMaxListeners(0);
  }

  publish(task: TaskRecord): void {
    this.emitter.emit(task.id, task);
  }

  /** Calls `listener` on each change of the task; returns the unsubscribe function. */
  subscribe(taskId: string, listener: (task: TaskRecord) => void): () => void {
    this.emitter.on(taskId, listener);
    return () => this.emitter.off(taskId, listener);
  }
}
