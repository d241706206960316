/**
 * The simulators' journal: the sandbox's simulators in the gateway's own process keep the tasks
 * they create in a file beside the SQLite database, and simulators started again on that file
 * take them back, so a restarted sandbox still answers for the tasks the gateway resumes.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { SimulatorOptions } from '../../src/core/upstream/provider.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { simulatorJournalPath, startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';
import { JOURNAL_MAX_AGE_MS, JOURNAL_MAX_READ_BYTES, SimulatorKit, type KitTask, type SimulatedPhase } from '../../src/sandbox/simulator-kit.js';
import { testConfig } from '../support/harness.js';

const TIMING = { queuedMs: 1_000, processingMs: 4_000 };
const START = Date.UTC(2026, 11, 3, 12);

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const one of open.splice(0)) await one.close();
});

function journalIn(dir = mkdtempSync(join(tmpdir(), 'kg-journal-'))): string {
  return join(dir, 'gw.db.sandbox-test.jsonl');
}

function kitOn(clock: ManualClock, journalPath: string | undefined): SimulatorKit {
  const options: SimulatorOptions = { clock, apiKey: 'k', timing: TIMING, ...(journalPath !== undefined ? { journalPath } : {}) };
  const kit = new SimulatorKit('test', options);
  open.push(kit);
  return kit;
}

function lines(path: string): unknown[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as unknown);
}

describe('SimulatorKit journal', () => {
  it('takes back the tasks created before, with their creation time, outcome, body and data, so their phase by the clock is right', async () => {
    const clock = new ManualClock(START);
    const path = journalIn();
    const before = kitOn(clock, path);
    before.setOutcome('content_policy');
    before.createTask('t1', '/create', { prompt: 'a fox' }, { callbackUrl: 'http://127.0.0.1:1/cb', credits: 40 });
    await clock.advance(2_000);
    before.createTask('t2', '/create', { prompt: 'an owl' }, { kind: 'png' });
    expect(lines(path)).toEqual([
      { id: 't1', path: '/create', body: { prompt: 'a fox' }, createdAt: START, outcome: 'content_policy', data: { callbackUrl: 'http://127.0.0.1:1/cb', credits: 40 } },
      { id: 't2', path: '/create', body: { prompt: 'an owl' }, createdAt: START + 2_000, outcome: 'succeed', data: { kind: 'png' } },
    ]);

    await clock.advance(500);
    const after = kitOn(clock, path);
    const resumed: string[] = [];
    const restored = after.restoreJournal((task) => {
      resumed.push(`${task.id}:${after.phaseOf(task)}`);
      return true;
    });
    expect(restored.map((task) => task.id)).toEqual(['t1', 't2']);
    expect(resumed).toEqual(['t1:processing', 't2:queued']);
    const t1 = after.findTask('t1')!;
    expect({ createdAt: t1.createdAt, outcome: t1.outcome, body: t1.body, data: t1.data, path: t1.path }).toEqual({
      createdAt: START,
      outcome: 'content_policy',
      body: { prompt: 'a fox' },
      data: { callbackUrl: 'http://127.0.0.1:1/cb', credits: 40 },
      path: '/create',
    });
    expect(after.tasks.map((task) => task.id)).toEqual(['t1', 't2']);
    // Tasks created after the restart are journaled beside them.
    after.createTask('t3', '/create', {});
    expect(lines(path).map((line) => (line as { id: string }).id)).toEqual(['t1', 't2', 't3']);
  });

  it('re-arms only the phases a task taken back has not reached yet, counted from its creation', async () => {
    const clock = new ManualClock(START);
    const path = journalIn();
    const before = kitOn(clock, path);
    before.createTask('early', '/create', {});
    await clock.advance(3_000);
    before.createTask('late', '/create', {});
    await clock.advance(500);

    const after = kitOn(clock, path);
    const announced: string[] = [];
    after.restoreJournal((task) => {
      after.resumeTransitions(task, (phase: SimulatedPhase) => announced.push(`${task.id}:${phase}@${clock.now() - START}`));
      return true;
    });
    await clock.advance(10_000);
    // `early` was processing at the restart: only its end is announced, at 5 s; `late` was queued.
    expect(announced).toEqual(['late:processing@4000', 'early:done@5000', 'late:done@8000']);
  });

  it('skips lines that are not tasks and rewrites the journal with only the tasks taken back, through a file renamed over it', async () => {
    const clock = new ManualClock(START);
    const dir = mkdtempSync(join(tmpdir(), 'kg-journal-'));
    const path = journalIn(dir);
    const good = (id: string, createdAt = START) => JSON.stringify({ id, path: '/create', body: {}, createdAt, outcome: 'succeed', data: {} });
    writeFileSync(
      path,
      [
        good('a'),
        '{"id":"cut-short","path":"/create","bo', // a line a kill cut short
        'not json',
        '[1,2]',
        JSON.stringify({ id: 'no-outcome', path: '/create', body: {}, createdAt: START, data: {} }),
        JSON.stringify({ id: 'bad-outcome', path: '/create', body: {}, createdAt: START, outcome: 'maybe', data: {} }),
        JSON.stringify({ id: 'no-time', path: '/create', body: {}, createdAt: 'yesterday', outcome: 'succeed', data: {} }),
        JSON.stringify({ id: 'no-data', path: '/create', body: {}, createdAt: START, outcome: 'succeed' }),
        JSON.stringify({ id: '', path: '/create', body: {}, createdAt: START, outcome: 'succeed', data: {} }),
        good('refused'),
        good('a'), // twice: the first is kept
        '',
        good('b'),
      ].join('\n'),
    );
    await clock.advance(1_000);
    const kit = kitOn(clock, path);
    const restored = kit.restoreJournal((task: KitTask) => task.id !== 'refused');
    expect(restored.map((task) => task.id)).toEqual(['a', 'b']);
    expect(kit.findTask('refused')).toBeUndefined();
    expect(readFileSync(path, 'utf8')).toBe(`${good('a')}\n${good('b')}\n`);
    // Nothing but the journal is left in its folder (no temporary file).
    expect(readdirSync(dir)).toEqual(['gw.db.sandbox-test.jsonl']);
    // Once only: a second call takes nothing back again.
    expect(kit.restoreJournal(() => true)).toEqual([]);
  });

  it('takes back only tasks younger than 24 hours, and drops older ones from the journal', async () => {
    const clock = new ManualClock(START);
    const path = journalIn();
    const before = kitOn(clock, path);
    before.createTask('old', '/create', {});
    await clock.advance(2 * 3_600_000);
    before.createTask('young', '/create', {});
    await clock.advance(JOURNAL_MAX_AGE_MS - 3_600_000);

    const after = kitOn(clock, path);
    expect(after.restoreJournal(() => true).map((task) => task.id)).toEqual(['young']);
    expect(after.findTask('old')).toBeUndefined();
    expect(lines(path).map((line) => (line as { id: string }).id)).toEqual(['young']);
  });

  it('reads only the newest tasks of a journal too big to hold (a sandbox run until it had no memory left), so the restart is not killed reading it', () => {
    const clock = new ManualClock(START);
    const path = journalIn();
    // Lines of about 1 KiB, a little more of them than JOURNAL_MAX_READ_BYTES holds.
    const prompt = 'p'.repeat(900);
    const count = Math.ceil(JOURNAL_MAX_READ_BYTES / 1_000) + 2_000;
    const line = (index: number) => JSON.stringify({ id: `t${index}`, path: '/create', body: { prompt }, createdAt: START + index, outcome: 'succeed', data: {} });
    writeFileSync(path, Array.from({ length: count }, (_, index) => `${line(index)}\n`).join(''));
    clock.set(START + count);

    const kit = kitOn(clock, path);
    const ids = kit.restoreJournal(() => true).map((task) => task.id);
    // The newest ones, every one of them up to the last, in order; the oldest are let go.
    expect(ids.length).toBeGreaterThan(count - 3_000);
    expect(ids.length).toBeLessThan(count);
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, index) => `t${count - ids.length + index}`));
    expect(kit.findTask('t0')).toBeUndefined();
    // The journal keeps only those, so it stays within the bound.
    expect(readFileSync(path).length).toBeLessThanOrEqual(JOURNAL_MAX_READ_BYTES);
  });

  it('keeps journaling the tasks it creates after its journal was replaced (another gateway started on the file) or deleted', () => {
    const clock = new ManualClock(START);
    const path = journalIn();
    const running = kitOn(clock, path);
    running.createTask('t1', '/create', {});
    // Another gateway started on the same SQLite file takes t1 back and rewrites the journal.
    expect(kitOn(clock, path).restoreJournal(() => true).map((task) => task.id)).toEqual(['t1']);
    running.createTask('t2', '/create', {});
    expect(lines(path).map((line) => (line as { id: string }).id)).toEqual(['t1', 't2']);
    // Deleted to start afresh while the gateway runs: the next task starts a new one.
    rmSync(path);
    running.createTask('t3', '/create', {});
    expect(lines(path).map((line) => (line as { id: string }).id)).toEqual(['t3']);
  });

  it('starts empty when its journal does not exist yet, and creates it with the first task', () => {
    const clock = new ManualClock(START);
    const path = journalIn();
    const kit = kitOn(clock, path);
    expect(kit.restoreJournal(() => true)).toEqual([]);
    expect(existsSync(path)).toBe(false);
    kit.createTask('first', '/create', {});
    expect(lines(path)).toHaveLength(1);
  });

  it('reads a last line that has no newline (a journal written by hand)', () => {
    const clock = new ManualClock(START);
    const path = journalIn();
    appendFileSync(path, JSON.stringify({ id: 'x', path: '/create', body: null, createdAt: START, outcome: 'fail', data: {} }));
    const kit = kitOn(clock, path);
    expect(kit.restoreJournal(() => true).map((task) => [task.id, task.outcome, task.body])).toEqual([['x', 'fail', null]]);
  });

  it('keeps no journal without a path', () => {
    const clock = new ManualClock(START);
    const kit = kitOn(clock, undefined);
    kit.createTask('t1', '/create', {});
    expect(kit.restoreJournal(() => true)).toEqual([]);
    expect(kit.findTask('t1')).toBeDefined();
  });
});

describe('where the sandbox keeps its simulators journals', () => {
  it('beside a SQLite database file, one per provider and per database; none in memory or on PostgreSQL', () => {
    expect(simulatorJournalPath('sqlite:/srv/gw/data/kling-gateway.db', 'freepik')).toBe('/srv/gw/data/kling-gateway.db.sandbox-freepik.jsonl');
    expect(simulatorJournalPath('sqlite:/srv/gw/data/kling-gateway.db', 'kling3api')).toBe('/srv/gw/data/kling-gateway.db.sandbox-kling3api.jsonl');
    expect(simulatorJournalPath('sqlite:/srv/gw/data/other.db', 'freepik')).toBe('/srv/gw/data/other.db.sandbox-freepik.jsonl');
    expect(simulatorJournalPath('sqlite:data/gw.db', 'freepik')).toBe(join(process.cwd(), 'data/gw.db.sandbox-freepik.jsonl'));
    expect(simulatorJournalPath('sqlite::memory:', 'freepik')).toBeUndefined();
    expect(simulatorJournalPath('sqlite:', 'freepik')).toBeUndefined();
    expect(simulatorJournalPath('postgres://gw@db:5432/gw', 'freepik')).toBeUndefined();
    expect(simulatorJournalPath('postgresql://gw@db:5432/gw', 'freepik')).toBeUndefined();
  });

  async function sandboxOn(databaseUrl: string, clock: ManualClock): Promise<Sandbox> {
    const sandbox = await startSandbox(testConfig({ database: { url: databaseUrl } }), PROVIDERS, clock);
    open.push(sandbox);
    return sandbox;
  }

  async function generate(sandbox: Sandbox): Promise<string> {
    const endpoint = sandbox.endpoints.get('kling3api')!;
    const answer = await fetch(`${endpoint.baseUrl}/api/generate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${endpoint.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'std-text-to-video', prompt: 'a kite' }),
    });
    return ((await answer.json()) as { data: { task_id: string } }).data.task_id;
  }

  async function statusOf(sandbox: Sandbox, id: string): Promise<{ status: number; word?: string }> {
    const endpoint = sandbox.endpoints.get('kling3api')!;
    const answer = await fetch(`${endpoint.baseUrl}/api/status?task_id=${id}`, { headers: { authorization: `Bearer ${endpoint.apiKey}` } });
    const body = (await answer.json()) as { data?: { status: string } };
    return { status: answer.status, ...(body.data ? { word: body.data.status } : {}) };
  }

  it('started again on the same SQLite file, its simulators answer for the tasks created before', async () => {
    const clock = new ManualClock(START);
    const dir = mkdtempSync(join(tmpdir(), 'kg-journal-sandbox-'));
    const database = `sqlite:${join(dir, 'gw.db')}`;
    const first = await sandboxOn(database, clock);
    const id = await generate(first);
    expect(lines(join(dir, 'gw.db.sandbox-kling3api.jsonl'))).toEqual([expect.objectContaining({ id, path: '/api/generate' })]);
    await first.close();

    const second = await sandboxOn(database, clock);
    expect(await statusOf(second, id)).toEqual({ status: 200, word: 'IN_PROGRESS' });
    await clock.advance(TIMING.queuedMs + TIMING.processingMs);
    expect(await statusOf(second, id)).toEqual({ status: 200, word: 'SUCCESS' });

    // Another database in the same folder has simulators of its own.
    const other = await sandboxOn(`sqlite:${join(dir, 'other.db')}`, clock);
    expect(await statusOf(other, id)).toEqual({ status: 404 });
  });

  it('keeps nothing for an in-memory database', async () => {
    const clock = new ManualClock(START);
    const cwd = readdirSync(process.cwd());
    const first = await sandboxOn('sqlite::memory:', clock);
    const id = await generate(first);
    await first.close();
    const second = await sandboxOn('sqlite::memory:', clock);
    expect(await statusOf(second, id)).toEqual({ status: 404 });
    expect(readdirSync(process.cwd())).toEqual(cwd);
  });
});
