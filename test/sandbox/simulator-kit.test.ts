import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import { ManualClock } from '../../src/core/clock.js';
import { SimulatorKit } from '../../src/sandbox/simulator-kit.js';

/** A clock whose timers can be fired by hand at any time, like a real timer firing a millisecond early. */
class HandFiredClock implements Clock {
  current = 0;
  readonly timers: { at: number; run: () => void }[] = [];
  now() {
    return this.current;
  }
  setTimeout(run: () => void, delayMs: number) {
    this.timers.push({ at: this.current + delayMs, run });
    return { cancel: () => undefined };
  }
  sleep() {
    return Promise.resolve();
  }
}

let kit: SimulatorKit | undefined;
afterEach(async () => {
  await kit?.close();
  kit = undefined;
});

describe('SimulatorKit lifecycle', () => {
  it('never reports an earlier phase than a transition timer announced, even if the clock reads a millisecond short', () => {
    const clock = new HandFiredClock();
    kit = new SimulatorKit('test', { clock, apiKey: 'k', timing: { queuedMs: 200, processingMs: 800 } });
    const task = kit.createTask('t1', '/create', {});
    const announced: string[] = [];
    kit.scheduleTransitions(task, (phase) => announced.push(`${phase}:${kit!.phaseOf(task)}`));
    clock.current = 199;
    clock.timers[0]!.run();
    clock.current = 999;
    clock.timers[1]!.run();
    expect(announced).toEqual(['processing:processing', 'done:done']);
    expect(kit.phaseOf(task)).toBe('done');
  });

  it('follows the clock between transitions', async () => {
    const clock = new ManualClock(0);
    kit = new SimulatorKit('test', { clock, apiKey: 'k', timing: { queuedMs: 200, processingMs: 800 } });
    const task = kit.createTask('t1', '/create', {});
    kit.scheduleTransitions(task, () => undefined);
    expect(kit.phaseOf(task)).toBe('queued');
    await clock.advance(200);
    expect(kit.phaseOf(task)).toBe('processing');
    await clock.advance(800);
    expect(kit.phaseOf(task)).toBe('done');
    expect(kit.findTask('t1')).toBe(task);
    expect(kit.findTask('nope')).toBeUndefined();
  });
});
