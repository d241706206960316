/**
 * A task keeps the deadline it was created with, and its `timeout` error names that deadline —
 * not the one `TASK_DEADLINE_MS` says after a restart — in words that match it (a deadline of
 * seconds is not "0-minute").
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startTestGateway, tempDatabaseUrl, testConfig, type TestGateway } from '../support/harness.js';

const request = { model: 'kling-v3', prompt: 'a lighthouse at dusk', duration: 5, routing: { providers: ['kling3api'] } };

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('a task deadline is its own', () => {
  it('a running task ends at the deadline it was created with, named as such, after TASK_DEADLINE_MS changed across a restart', async () => {
    const clock = new ManualClock(Date.UTC(2026, 11, 6, 12));
    const sandbox = await startSandbox(testConfig({ sandbox: { processing_ms: 3_600_000 } }), PROVIDERS, clock);
    cleanups.push(() => sandbox.close());
    const { endpoints, simulators } = sandbox;
    const database = tempDatabaseUrl();
    const first = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database }, tasks: { deadline_ms: 60_000 } } });
    const created = await first.create(request);
    expect(created.body.status).toBe('processing');
    await first.close();

    const second = await startTestGateway({ clock, endpoints, simulators, config: { database: { url: database }, tasks: { deadline_ms: 3 * 60_000 } } });
    open.push(second);
    for (let second_ = 0; second_ < 70; second_++) await second.advance(1_000);
    const task = (await second.get(created.body.id)).body;
    expect(task.status).toBe('failed');
    expect(task.error.code).toBe('timeout');
    expect(task.error.message).toMatch(/^the task did not finish within the 1-minute deadline/);
  });

  it('a deadline of seconds is named in seconds, in the queue and while running', async () => {
    const gw = await startTestGateway({
      config: { tasks: { deadline_ms: 20_000 }, sandbox: { processing_ms: 600_000 }, providers: { kling3api: { max_in_flight: 1 } } },
    });
    open.push(gw);
    const running = await gw.create(request);
    expect(running.body.status).toBe('processing');
    const waiting = await gw.create(request);
    expect(waiting.body.status).toBe('queued');
    for (let second = 0; second < 25; second++) await gw.advance(1_000);
    const task = (await gw.get(running.body.id)).body;
    expect(task.error).toMatchObject({ code: 'timeout' });
    expect(task.error.message).toMatch(/^the task did not finish within the 20-second deadline/);
    const queued = (await gw.get(waiting.body.id)).body;
    expect(queued).toMatchObject({ status: 'failed', provider: null, cost: { credits: 0 }, error: { code: 'timeout', message: 'no provider took the task within the 20-second deadline' } });
  });
});
