import { describe, expect, it } from 'vitest';
import { PerTaskAllowance } from '../../../src/core/tasks/per-task-allowance.js';

describe('PerTaskAllowance', () => {
  it('gives a task its burst at once, then one per interval, saying when the next one comes', () => {
    const allowance = new PerTaskAllowance(3, 100);
    expect([0, 0, 0].map((at) => allowance.take('vid_a', at, 1_000))).toEqual([true, true, true]);
    expect(allowance.take('vid_a', 400, 1_000)).toBe(1_000);
    expect(allowance.take('vid_b', 400, 1_000)).toBe(true);
    expect(allowance.take('vid_a', 1_000, 1_000)).toBe(true);
    expect(allowance.take('vid_a', 1_500, 1_000)).toBe(2_000);
  });

  it('one at a time: the next one comes an interval after the last one taken', () => {
    const allowance = new PerTaskAllowance(1, 100);
    expect(allowance.take('vid_a', 5_000, 2_000)).toBe(true);
    expect(allowance.take('vid_a', 5_100, 2_000)).toBe(7_000);
    expect(allowance.take('vid_a', 7_000, 2_000)).toBe(true);
  });

  it('when full, forgets the tasks whose allowance is whole again, and keeps the limit of the others', () => {
    const allowance = new PerTaskAllowance(1, 2);
    expect(allowance.take('vid_old', 0, 1_000)).toBe(true);
    expect(allowance.take('vid_recent', 900, 1_000)).toBe(true);
    // A third task at 1,000: the old one's allowance is whole again and it is forgotten; the recent one is kept.
    expect(allowance.take('vid_new', 1_000, 1_000)).toBe(true);
    expect(allowance.take('vid_recent', 1_000, 1_000)).toBe(1_900);
    expect(allowance.take('vid_old', 1_000, 1_000)).toBe(true);
  });

  it('when full of tasks still within their interval, forgets them all rather than grow', () => {
    const allowance = new PerTaskAllowance(1, 2);
    expect(allowance.take('vid_a', 0, 1_000)).toBe(true);
    expect(allowance.take('vid_b', 0, 1_000)).toBe(true);
    expect(allowance.take('vid_c', 10, 1_000)).toBe(true);
    expect(allowance.take('vid_a', 10, 1_000)).toBe(true);
  });
});
