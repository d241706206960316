import { describe, expect, it } from 'vitest';
import { FairShares, fairOrder, type WaitingTask } from '../../../src/core/tasks/fair-queue.js';

/** Tasks named `<tenant><n>@<provider>+<provider>`, created in the order given, for those providers (kling3api unless said). */
function queue(...names: string[]): WaitingTask[] {
  return names.map((name, index) => {
    const [tenant, provider] = name.split('@') as [string, string | undefined];
    return { id: name, tenant: tenant.replace(/\d+$/, ''), createdAt: 1_000 + index, providers: (provider ?? 'kling3api').split('+') };
  });
}

const ids = (tasks: WaitingTask[]) => tasks.map((task) => task.id);

describe('fairOrder', () => {
  it('keeps one tenant’s queue oldest first, whatever it holds', () => {
    const tasks = queue('a1', 'a2@freepik', 'a3');
    expect(ids(fairOrder(tasks, new FairShares([{ tenant: 'a', provider: 'kling3api', count: 9 }])))).toEqual(['a1', 'a2@freepik', 'a3']);
  });

  it('puts the tenant holding fewer slots of the provider first, counting the tasks placed ahead', () => {
    const tasks = queue('a1', 'a2', 'a3', 'a4', 'b1', 'b2', 'b3');
    const shares = new FairShares([{ tenant: 'a', provider: 'kling3api', count: 2 }]);
    // b holds none: two of its tasks first, then turns (b placed last each time), each tenant oldest first.
    expect(ids(fairOrder(tasks, shares))).toEqual(['b1', 'b2', 'a1', 'b3', 'a2', 'a3', 'a4']);
    // The shares given are left as they were.
    expect(shares.of('a', 'kling3api')).toBe(2);
    expect(shares.of('b', 'kling3api')).toBe(0);
  });

  it('between tenants holding as many, goes to the one served longest ago, then to the older task', () => {
    const tasks = queue('a1', 'a2', 'b1', 'b2', 'c1');
    // a took a slot last; b before it; c never.
    const shares = new FairShares([], [
      { tenant: 'a', provider: 'kling3api', servedAt: 900 },
      { tenant: 'b', provider: 'kling3api', servedAt: 800 },
    ]);
    expect(ids(fairOrder(tasks, shares))).toEqual(['c1', 'b1', 'a1', 'b2', 'a2']);
    // With no turns known, ties go to the older task.
    expect(ids(fairOrder(tasks, new FairShares()))).toEqual(['a1', 'b1', 'c1', 'a2', 'b2']);
  });

  it('counts only the slots of the provider the tenant’s next task waits for', () => {
    const tasks = queue('a1', 'b1', 'b2');
    // a holds many freepik slots and none of kling3api; b holds one of kling3api.
    const shares = new FairShares([
      { tenant: 'a', provider: 'freepik', count: 5 },
      { tenant: 'b', provider: 'kling3api', count: 1 },
    ]);
    expect(ids(fairOrder(tasks, shares))).toEqual(['a1', 'b1', 'b2']);
  });

  it('counts the slots and turns of every provider the task may take, not only its first choice', () => {
    // a prefers freepik (down or full): its tasks run at kling3api, where it holds the slot and took the last turn.
    const tasks = queue('a1@freepik+kling3api', 'a2@freepik+kling3api', 'b1', 'b2');
    const shares = new FairShares(
      [{ tenant: 'a', provider: 'kling3api', count: 1 }],
      [{ tenant: 'a', provider: 'kling3api', servedAt: 900 }],
    );
    expect(ids(fairOrder(tasks, shares))).toEqual(['b1', 'a1@freepik+kling3api', 'b2', 'a2@freepik+kling3api']);
    // Holding none, a's last turn at kling3api still puts it after b, never served there.
    const turnsOnly = new FairShares([], [{ tenant: 'a', provider: 'kling3api', servedAt: 900 }]);
    expect(ids(fairOrder(tasks, turnsOnly))).toEqual(['b1', 'a1@freepik+kling3api', 'b2', 'a2@freepik+kling3api']);
  });

  it('counts a task placed ahead once, however many providers it may take', () => {
    // a's tasks may take either provider, b's only kling3api: each placed task is one slot, so the tenants alternate.
    const tasks = queue('a1@freepik+kling3api', 'a2@freepik+kling3api', 'a3@freepik+kling3api', 'b1', 'b2', 'b3');
    expect(ids(fairOrder(tasks, new FairShares()))).toEqual([
      'a1@freepik+kling3api',
      'b1',
      'a2@freepik+kling3api',
      'b2',
      'a3@freepik+kling3api',
      'b3',
    ]);
  });

  it('adds up the slots a tenant holds at each of its task’s providers', () => {
    // a holds one slot at each of its two providers (two in all), b one: b goes first, though a’s task is older.
    const tasks = queue('a1@freepik+kling3api', 'b1');
    const shares = new FairShares([
      { tenant: 'a', provider: 'freepik', count: 1 },
      { tenant: 'a', provider: 'kling3api', count: 1 },
      { tenant: 'b', provider: 'kling3api', count: 1 },
    ]);
    expect(ids(fairOrder(tasks, shares))).toEqual(['b1', 'a1@freepik+kling3api']);
  });

  it('orders a long queue of many tenants, each tenant’s tasks oldest first', () => {
    const names = Array.from({ length: 3_000 }, (_, index) => `t${index % 30}x${index}`);
    const tasks = names.map((name, index) => ({ id: name, tenant: name.split('x')[0]!, createdAt: index, providers: ['kling3api'] }));
    const order = fairOrder(tasks, new FairShares());
    expect(order).toHaveLength(3_000);
    expect(new Set(ids(order)).size).toBe(3_000);
    // Round after round: thirty tenants, one task each, oldest first within each.
    expect(ids(order.slice(0, 30))).toEqual(names.slice(0, 30));
    const seen = new Map<string, number>();
    for (const task of order) {
      expect(task.createdAt).toBeGreaterThan(seen.get(task.tenant) ?? -1);
      seen.set(task.tenant, task.createdAt);
    }
  });
});
