/**
 * `watchTask`: one task's changes as an async iterator, on a ManualClock. It starts with the
 * task as it is, follows this process's changes at once and other replicas' by re-reading,
 * never goes back a version, ends at the terminal one, and lets go of everything it held
 * when it ends (timeout, abort, or the consumer stopping).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { ProblemError } from '../../../src/core/model/problems.js';
import { TaskEvents } from '../../../src/core/tasks/task-events.js';
import type { TaskChange, TaskRecord } from '../../../src/core/tasks/task-records.js';
import { TaskRepository } from '../../../src/core/tasks/task-repository.js';
import { watchTask } from '../../../src/core/tasks/task-watch.js';
import { openStore, type Store } from '../../../src/store/database.js';
import { TaskStore } from '../../../src/store/task-store.js';
import { taskRecord } from '../../support/task-records.js';

const T0 = Date.UTC(2026, 0, 1);

describe('watchTask', () => {
  let store: Store;
  let tasks: TaskRepository;
  let events: TaskEvents;
  let clock: ManualClock;

  beforeAll(async () => {
    store = await openStore('sqlite::memory:');
    tasks = new TaskRepository(new TaskStore(store));
  });

  afterAll(async () => {
    await store.close();
  });

  beforeEach(async () => {
    await store.db.deleteFrom('tasks').execute();
    events = new TaskEvents();
    clock = new ManualClock(T0);
    await tasks.create(taskRecord('t_1'));
  });

  const listeners = () => (events as unknown as { emitter: { listenerCount(name: string): number } }).emitter.listenerCount('t_1');

  /** A change made in this process: written, then published (as the lifecycle does). */
  async function changeHere(change: TaskChange): Promise<TaskRecord> {
    const changed = (await tasks.update('t_1', change, {}))!;
    events.publish(changed);
    return changed;
  }

  /** Collects what the watch yields, in the background. */
  function collect(watch: AsyncGenerator<TaskRecord>) {
    const seen: TaskRecord[] = [];
    const done = (async () => {
      for await (const task of watch) seen.push(task);
    })();
    return { seen, done };
  }

  it('yields the task as it is, then each change made here, and ends after the terminal one', async () => {
    const { seen, done } = collect(watchTask({ tasks, events, clock }, 'acme', 't_1'));
    await clock.advance(0);
    await changeHere({ status: 'processing', phase: 'tracking' });
    await clock.advance(0);
    await changeHere({ status: 'succeeded', phase: 'done' });
    await done;
    expect(seen.map((task) => [task.version, task.status])).toEqual([
      [0, 'queued'],
      [1, 'processing'],
      [2, 'succeeded'],
    ]);
    expect(listeners()).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('finds another replica’s change by re-reading the task every recheck interval', async () => {
    const { seen, done } = collect(watchTask({ tasks, events, clock }, 'acme', 't_1', { recheckMs: 2_000 }));
    await clock.advance(0);
    // Written by another process: no event here.
    await tasks.update('t_1', { status: 'failed', phase: 'done' }, {});
    await clock.advance(1_999);
    expect(seen.map((task) => task.status)).toEqual(['queued']);
    await clock.advance(1);
    await done;
    expect(seen.map((task) => task.status)).toEqual(['queued', 'failed']);
  });

  it('answers another tenant’s task as not found, before yielding anything', async () => {
    const watch = watchTask({ tasks, events, clock }, 'other', 't_1');
    const error = await watch.next().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProblemError);
    expect(error).toMatchObject({ status: 404 });
    await expect(watchTask({ tasks, events, clock }, 'acme', 't_missing').next()).rejects.toMatchObject({ status: 404 });
    expect(listeners()).toBe(0);
  });

  it('ends when its time is up, and when the signal aborts', async () => {
    const timed = collect(watchTask({ tasks, events, clock }, 'acme', 't_1', { timeoutMs: 5_000 }));
    await clock.advance(5_000);
    await timed.done;
    expect(timed.seen.map((task) => task.status)).toEqual(['queued']);

    const gone = new AbortController();
    const aborted = collect(watchTask({ tasks, events, clock }, 'acme', 't_1', { signal: gone.signal }));
    await clock.advance(0);
    gone.abort();
    await aborted.done;
    expect(listeners()).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('counts its time from when it began, not from the end of a slow first read', async () => {
    // A first read held while 3 s pass (a busy database): the 5 s end 2 s after it, not 5 s.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const slowTasks = Object.assign(Object.create(tasks) as TaskRepository, {
      get: async (id: string) => {
        await held;
        return tasks.get(id);
      },
    });
    const timed = collect(watchTask({ tasks: slowTasks, events, clock }, 'acme', 't_1', { timeoutMs: 5_000 }));
    await clock.advance(3_000);
    release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await clock.advance(1_999);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(listeners(), 'still waiting 4.999 s after it began').toBe(1);
    await clock.advance(1);
    await vi.waitFor(() => expect(listeners(), 'ended 5 s after it began').toBe(0), { timeout: 2_000 });
    await timed.done;
    expect(timed.seen.map((task) => task.status)).toEqual(['queued']);
  });

  it('never goes back a version and keeps only the newest change while the consumer is busy', async () => {
    const watch = watchTask({ tasks, events, clock }, 'acme', 't_1');
    expect((await watch.next()).value).toMatchObject({ version: 0 });
    const processing = await changeHere({ status: 'processing' });
    await changeHere({ providerStatus: 'IN_PROGRESS' });
    // A stale copy arriving late (an earlier re-read) is ignored.
    events.publish(processing);
    expect((await watch.next()).value).toMatchObject({ version: 2, providerStatus: 'IN_PROGRESS' });
    await watch.return();
    expect(listeners()).toBe(0);
  });

  describe('with everyStatus (an event stream)', () => {
    const accepted = { status: 'processing', phase: 'tracking', provider: 'kling3api', providerTaskId: 'up_1' } as const;
    const failed = { status: 'failed', phase: 'done', error: { code: 'provider_error', message: 'boom', provider_code: null } } as const;

    it('keeps each status that lands while the consumer is busy, in order', async () => {
      const watch = watchTask({ tasks, events, clock }, 'acme', 't_1', { everyStatus: true });
      expect((await watch.next()).value).toMatchObject({ version: 0, status: 'queued' });
      await changeHere(accepted);
      await changeHere({ providerStatus: 'IN_PROGRESS' });
      await changeHere(failed);
      const rest: TaskRecord[] = [];
      for await (const task of watch) rest.push(task);
      expect(rest.map((task) => [task.version, task.status])).toEqual([
        [2, 'processing'],
        [3, 'failed'],
      ]);
      expect(listeners()).toBe(0);
    });

    it('yields the processing another replica went through when it only reads the task back done', async () => {
      const { seen, done } = collect(watchTask({ tasks, events, clock }, 'acme', 't_1', { everyStatus: true, recheckMs: 1_000 }));
      await clock.advance(0);
      // Written by another process, between two re-reads here.
      await tasks.update('t_1', accepted, {});
      await tasks.update('t_1', { providerStatus: 'IN_PROGRESS' }, {});
      await tasks.update('t_1', { ...failed, providerStatus: 'FAILED' }, {});
      await clock.advance(1_000);
      await done;
      expect(seen.map((task) => [task.version, task.status])).toEqual([
        [0, 'queued'],
        [2, 'processing'],
        [3, 'failed'],
      ]);
      // The word read here is the outcome's: a processing event never carries it.
      expect(seen[1]).toMatchObject({ phase: 'tracking', providerTaskId: 'up_1', providerStatus: null, outputs: [], error: null, completedAt: null });
      expect(seen[2]).toMatchObject({ providerStatus: 'FAILED' });
    });

    it('yields no processing for a task no provider took', async () => {
      const { seen, done } = collect(watchTask({ tasks, events, clock }, 'acme', 't_1', { everyStatus: true, recheckMs: 1_000 }));
      await clock.advance(0);
      await tasks.update('t_1', { phase: 'submitting' }, {});
      await tasks.update('t_1', failed, {});
      await clock.advance(1_000);
      await done;
      expect(seen.map((task) => task.status)).toEqual(['queued', 'failed']);
    });

    it('yields only the terminal version of a task already done', async () => {
      await tasks.update('t_1', accepted, {});
      await tasks.update('t_1', failed, {});
      const { seen, done } = collect(watchTask({ tasks, events, clock }, 'acme', 't_1', { everyStatus: true }));
      await done;
      expect(seen.map((task) => [task.version, task.status])).toEqual([[2, 'failed']]);
    });
  });

  it('without everyStatus (a wait for the outcome) keeps only the newest version while the consumer is busy', async () => {
    const watch = watchTask({ tasks, events, clock }, 'acme', 't_1');
    expect((await watch.next()).value).toMatchObject({ version: 0 });
    await changeHere({ status: 'processing', phase: 'tracking', providerTaskId: 'up_1' });
    await changeHere({ status: 'failed', phase: 'done' });
    const rest: TaskRecord[] = [];
    for await (const task of watch) rest.push(task);
    expect(rest.map((task) => [task.version, task.status])).toEqual([[2, 'failed']]);
  });
});
