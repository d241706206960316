import { describe, expect, it } from 'vitest';
import { CoalescingRunner } from '../../../src/core/tasks/coalescing-runner.js';

describe('CoalescingRunner', () => {
  it('never runs two passes at once, and runs once more for calls made during a pass', async () => {
    let active = 0;
    let maxActive = 0;
    let passes = 0;
    let release!: () => void;
    const runner = new CoalescingRunner(async () => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      passes += 1;
      if (passes === 1) await new Promise<void>((resolve) => (release = resolve));
      active -= 1;
    });
    const first = runner.run();
    const second = runner.run();
    const third = runner.run();
    release();
    await Promise.all([first, second, third]);
    expect(maxActive).toBe(1);
    // One pass for the first call, one more for the two that came during it.
    expect(passes).toBe(2);
    await runner.run();
    expect(passes).toBe(3);
  });

  it('recovers after a failing pass', async () => {
    let fail = true;
    const runner = new CoalescingRunner(async () => {
      if (fail) throw new Error('boom');
    });
    await expect(runner.run()).rejects.toThrow('boom');
    fail = false;
    await expect(runner.run()).resolves.toBeUndefined();
  });
});
