/**
 * Task notifications across replicas: a change announced by another replica is read back once
 * and handed to everyone here who follows the task; after a lost connection every followed task
 * is read again; a replica ignores its own announcements.
 */
import { describe, expect, it } from 'vitest';
import { replicaFeedOver, type ReplicaFeed, type ReplicaMessage, type TextChannel } from '../../../src/core/replica-feed.js';
import { TaskEvents } from '../../../src/core/tasks/task-events.js';
import type { TaskRecord } from '../../../src/core/tasks/task-records.js';

/** A channel every feed over it hears, as every replica hears PostgreSQL's NOTIFY. */
function sharedChannel() {
  const listeners = new Set<(text: string) => void>();
  const reconnects = new Set<() => void>();
  const channel: TextChannel = {
    listening: true,
    publish: async (text) => {
      for (const listener of listeners) listener(text);
    },
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onReconnect: (listener) => {
      reconnects.add(listener);
      return () => reconnects.delete(listener);
    },
  };
  return { channel, reconnect: () => reconnects.forEach((listener) => listener()) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const record = (version: number, status = 'processing') => ({ id: 'vid_1', version, status, phase: 'tracking' }) as unknown as TaskRecord;

describe('task events between replicas', () => {
  it('reads a task another replica changed once, for every follower here', async () => {
    const { channel } = sharedChannel();
    let reads = 0;
    let stored = record(1);
    const here = new TaskEvents(replicaFeedOver(channel, 'here', () => undefined), async () => {
      reads += 1;
      return stored;
    });
    const there = new TaskEvents(replicaFeedOver(channel, 'there', () => undefined));
    const seen: number[][] = [[], []];
    here.subscribe('vid_1', (task) => seen[0]!.push(task.version));
    here.subscribe('vid_1', (task) => seen[1]!.push(task.version));
    stored = record(2, 'succeeded');
    there.publish(stored);
    await settle();
    await settle();
    expect(seen).toEqual([[2], [2]]);
    expect(reads).toBe(1);
  });

  it('does not read back its own changes, nor tasks nobody here follows', async () => {
    const { channel } = sharedChannel();
    let reads = 0;
    const events = new TaskEvents(replicaFeedOver(channel, 'here', () => undefined), async () => {
      reads += 1;
      return record(3);
    });
    const local: number[] = [];
    events.subscribe('vid_1', (task) => local.push(task.version));
    events.publish(record(3));
    const other = new TaskEvents(replicaFeedOver(channel, 'there', () => undefined));
    other.publish({ ...record(4), id: 'vid_unfollowed' } as TaskRecord);
    await settle();
    expect(local).toEqual([3]);
    expect(reads).toBe(0);
  });

  it('tells who listens about every other replica change (to wake the dispatcher)', async () => {
    const { channel } = sharedChannel();
    const events = new TaskEvents(replicaFeedOver(channel, 'here', () => undefined));
    const changes: string[] = [];
    events.onRemoteChange((change) => changes.push(`${change.id}:${change.phase}`));
    new TaskEvents(replicaFeedOver(channel, 'there', () => undefined)).publish({ ...record(5), phase: 'done' } as TaskRecord);
    expect(changes).toEqual(['vid_1:done']);
  });

  it('reads every followed task again after the connection was lost', async () => {
    const { channel, reconnect } = sharedChannel();
    const events = new TaskEvents(replicaFeedOver(channel, 'here', () => undefined), async () => record(7, 'succeeded'));
    const seen: string[] = [];
    events.subscribe('vid_1', (task) => seen.push(task.status));
    reconnect();
    await settle();
    await settle();
    expect(seen).toEqual(['succeeded']);
  });

  it('ignores messages it cannot read', () => {
    const received: ReplicaMessage[] = [];
    const listeners: ((text: string) => void)[] = [];
    const feed: ReplicaFeed = replicaFeedOver(
      { listening: true, publish: async () => undefined, subscribe: (listener) => (listeners.push(listener), () => undefined), onReconnect: () => () => undefined },
      'here',
      () => undefined,
    );
    feed.subscribe((message) => received.push(message));
    for (const text of ['not json', '{"kind":"task"}', '{"kind":"nope","id":"x"}', '{"kind":"account","key":"freepik","from":"there"}']) listeners[0]!(text);
    expect(received).toEqual([{ kind: 'account', key: 'freepik', from: 'there' }]);
  });
});
