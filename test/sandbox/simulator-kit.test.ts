import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import { ManualClock } from '../../src/core/clock.js';
import { MAX_KEPT_TASKS, SimulatorKit } from '../../src/sandbox/simulator-kit.js';

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

describe('tasks a simulator keeps', () => {
  // A sandbox runs inside the gateway process (`npm start` with no keys): every task it ever
  // created stayed in memory, so a long-running sandbox grew with each video.
  it('forgets its oldest finished tasks past MAX_KEPT_TASKS', async () => {
    const clock = new ManualClock(0);
    kit = new SimulatorKit('test', { clock, apiKey: 'k', timing: { queuedMs: 200, processingMs: 800 } });
    for (let index = 0; index < MAX_KEPT_TASKS + 50; index++) kit.createTask(`t${index}`, '/create', {});
    await clock.advance(1_000);
    kit.createTask('newest', '/create', {});
    expect(kit.tasks.length).toBe(MAX_KEPT_TASKS);
    expect(kit.findTask('t0')).toBeUndefined();
    expect(kit.findTask('t50')).toBeUndefined();
    expect(kit.findTask('t51')).toBeDefined();
    expect(kit.findTask('newest')).toBeDefined();
  });

  it('keeps every task still queued or processing, however many', () => {
    const clock = new ManualClock(0);
    kit = new SimulatorKit('test', { clock, apiKey: 'k', timing: { queuedMs: 200, processingMs: 800 } });
    for (let index = 0; index < MAX_KEPT_TASKS + 50; index++) kit.createTask(`t${index}`, '/create', {});
    expect(kit.tasks.length).toBe(MAX_KEPT_TASKS + 50);
    expect(kit.findTask('t0')).toBeDefined();
  });
});

describe('callbacks a simulator sent', () => {
  it('records each try with the answer it got, and serves them at /simulators/<id>/callbacks', async () => {
    const { createServer } = await import('node:http');
    const { startSimulatorHost } = await import('../../src/sandbox/simulator-host.js');
    const { PROVIDERS } = await import('../../src/providers/registry.js');
    // A receiver that refuses, as a stopping gateway did.
    const receiver = createServer((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'the gateway is stopping' }));
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const port = (receiver.address() as { port: number }).port;
    const clock = new ManualClock(0);
    const host = await startSimulatorHost({ providers: PROVIDERS, clock, timing: { queuedMs: 100, processingMs: 100 } });
    try {
      const legacy = host.simulators.get('kling-legacy') as unknown as { kit: SimulatorKit };
      legacy.kit.deliver(`http://127.0.0.1:${port}/v1/webhooks/kling-legacy/tok`, '{}', {}, 'task-1');
      for (let i = 0; i < 2_000 && legacy.kit.callbacks[0]?.detail == null; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      const served = await (await fetch(`${host.url}/simulators/kling-legacy/callbacks`)).json();
      expect(served).toEqual([
        { url: `http://127.0.0.1:${port}/v1/webhooks/kling-legacy/tok`, task_id: 'task-1', attempt: 1, sent_at: 0, status: 503, detail: 'the gateway is stopping' },
      ]);
      expect(await (await fetch(`${host.url}/simulators/freepik/callbacks`)).json()).toEqual([]);
      expect(await (await fetch(`${host.url}/simulators/kling-legacy/callbacks?since=1`)).json()).toEqual([]);
    } finally {
      await host.close();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});
