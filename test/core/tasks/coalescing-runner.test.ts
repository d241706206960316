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

  it('is idle only once the running pass and the one asked for during it have ended', async () => {
    const releases: (() => void)[] = [];
    const runner = new CoalescingRunner(() => new Promise<void>((resolve) => releases.push(resolve)));
    const flush = () => new Promise((resolve) => setImmediate(resolve));
    void runner.run();
    void runner.run();
    let idle = false;
    void runner.idle().then(() => (idle = true));
    await flush();
    expect(idle).toBe(false);
    releases.shift()!();
    await flush();
    // The pass asked for during the first runs now.
    expect(releases).toHaveLength(1);
    expect(idle).toBe(false);
    releases.shift()!();
    await flush();
    expect(idle).toBe(true);
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
