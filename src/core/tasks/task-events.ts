/**
 * Notifications of task changes, for `watch` (SSE and `?wait=`) and for waking the dispatcher.
 * A change made in this process is handed over at once; a change another replica made arrives
 * as a short message on the replica feed (PostgreSQL `LISTEN/NOTIFY`), and the task is read
 * back once for everyone here who follows it. The notification source is pluggable: with a
 * store only this process uses (SQLite) the feed is local only.
 */
import { EventEmitter } from 'node:events';
import { LOCAL_ONLY_FEED, type ReplicaFeed } from '../replica-feed.js';
import type { TaskRecord } from './task-records.js';

/** What another replica said about a task. */
export interface RemoteTaskChange {
  id: string;
  version: number;
  phase: string;
}

export class TaskEvents {
  private readonly emitter = new EventEmitter();
  /** Reads of tasks another replica changed, shared by everyone waiting for the same task. */
  private readonly reading = new Map<string, { again: boolean }>();
  private readonly remoteListeners = new Set<(change: RemoteTaskChange) => void>();

  constructor(
    private readonly feed: ReplicaFeed = LOCAL_ONLY_FEED,
    /** Reads a task from the store (for changes made elsewhere). */
    private readonly load: (id: string) => Promise<TaskRecord | undefined> = async () => undefined,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    // Every open SSE stream and waiting GET is one listener.
    this.emitter.setMaxListeners(0);
    feed.subscribe((message) => {
      if (message.kind !== 'task') return;
      this.remoteChange(message);
    });
    // Messages were missed while the feed was down: read every followed task again.
    feed.onResync(() => {
      for (const id of this.emitter.eventNames()) if (typeof id === 'string') this.readAndPublish(id);
    });
  }

  /** Whether changes made on other replicas are announced here as they happen. */
  get hearsOtherReplicas(): boolean {
    return this.feed.connected;
  }

  /** A change this process wrote: handed to its followers here and announced to other replicas. */
  publish(task: TaskRecord): void {
    this.emitter.emit(task.id, task);
    this.feed.publish({ kind: 'task', id: task.id, version: task.version, phase: task.phase });
  }

  /** Calls `listener` on each change of the task; returns the unsubscribe function. */
  subscribe(taskId: string, listener: (task: TaskRecord) => void): () => void {
    this.emitter.on(taskId, listener);
    return () => this.emitter.off(taskId, listener);
  }

  /** Calls `listener` on every change another replica announces (e.g. a provider slot it freed). */
  onRemoteChange(listener: (change: RemoteTaskChange) => void): () => void {
    this.remoteListeners.add(listener);
    return () => this.remoteListeners.delete(listener);
  }

  private remoteChange(change: RemoteTaskChange): void {
    for (const listener of this.remoteListeners) listener(change);
    if (this.emitter.listenerCount(change.id) > 0) this.readAndPublish(change.id);
  }

  /** Reads the task once (however many follow it) and hands it to its followers here. */
  private readAndPublish(id: string): void {
    const running = this.reading.get(id);
    if (running) {
      // A read is under way and may predate this change: read once more after it.
      running.again = true;
      return;
    }
    const read = { again: false };
    this.reading.set(id, read);
    void (async () => {
      do {
        read.again = false;
        try {
          const task = await this.load(id);
          if (task) this.emitter.emit(id, task);
        } catch (error) {
          this.onError(error);
        }
      } while (read.again);
      this.reading.delete(id);
    })();
  }
}
