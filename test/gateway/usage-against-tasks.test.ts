/**
 * `GET /v1/usage` against the tasks themselves: a mix of providers, models, qualities,
 * operations, outcomes (succeeded, failed upstream, refused everywhere, canceled while queued,
 * failed over) and two UTC days, added up here from each task's own `cost` in whole millionths.
 * Every grouping the report offers, in JSON and in CSV, must give the same money and counts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const postgres = await postgresAvailable();
const stores: [string, boolean][] = [['SQLite', false], ...(postgres ? [['PostgreSQL', true] as [string, boolean]] : [])];

const bodies: Record<string, unknown>[] = [
  { model: 'kling-v3', prompt: 'a', duration: 7, routing: { providers: ['freepik'] } },
  { model: 'kling-v3', quality: 'std', prompt: 'b', duration: 13, routing: { providers: ['freepik'] } },
  { model: 'kling-v3', prompt: 'c', duration: 3, audio: false, routing: { providers: ['kling3api'] } },
  { model: 'kling-v3-omni', quality: 'std', prompt: 'd', video_url: 'https://example.com/v.mp4', routing: { providers: ['kling3api'] } },
  { model: 'kling-v3-omni', prompt: 'e', reference_images: ['https://example.com/r.png'], duration: 11, routing: { providers: ['kling3api'] } },
  { model: 'kling-v1-6', quality: 'std', prompt: 'f', duration: 10, routing: { providers: ['kling-legacy'] } },
  { model: 'kling-v1', operation: 'image-generation', prompt: 'g', routing: { providers: ['kling-legacy'] } },
  { model: 'kling-v3', prompt: 'h', duration: 5, routing: { providers: ['kling-legacy'] } },
];

/** Money of a finished task as usage counts it: its charge; nothing for a task no provider took. */
function micros(task: any): number {
  return Math.round((task.cost.currency_amount ?? 0) * 1_000_000);
}

describe.each(stores)('GET /v1/usage against the tasks it adds up (%s)', (_name, onPostgres) => {
  let gw: TestGateway;
  const tasks: any[] = [];
  const schema = newSchemaName();

  beforeAll(async () => {
    // An hour before midnight UTC: the second half of the tasks is created the next day.
    const clock = new ManualClock(Date.UTC(2026, 10, 30, 23, 0, 0));
    gw = await startTestGateway({
      clock,
      config: { providers: { kling3api: { max_in_flight: 1 } } },
      ...(onPostgres ? { store: await openPostgresStore(schema) } : {}),
    });
    for (const day of [0, 1]) {
      const created: any[] = [];
      for (const body of bodies) created.push((await gw.create(body)).body);
      // Failed upstream (charged what the provider says, else the estimate), refused everywhere, failed over.
      gw.simulator('kling3api').setOutcome('fail');
      gw.simulator('freepik').setOutcome('fail');
      created.push((await gw.create({ model: 'kling-v3', prompt: 'fails', duration: 4, routing: { providers: ['freepik'] } })).body);
      gw.simulator('freepik').injectFault({ kind: 'server_error', status: 500 });
      created.push((await gw.create({ model: 'kling-v3', prompt: 'refused', duration: 6, routing: { providers: ['freepik'] } })).body);
      gw.simulator('freepik').injectFault({ kind: 'insufficient_credits', status: 402 });
      created.push((await gw.create({ model: 'kling-v3', prompt: 'moves on', duration: 9, routing: { providers: ['freepik', 'kling-legacy'] } })).body);
      // Queued behind kling3api's one slot, then canceled: nothing.
      const queued = (await gw.create({ model: 'kling-v3', prompt: 'waits', duration: 5, routing: { providers: ['kling3api'] } })).body;
      expect(queued.status).toBe('queued');
      expect((await gw.request('POST', `/v1/videos/${queued.id}/cancel`)).status).toBe(200);
      created.push(queued);
      for (const task of created) tasks.push(await gw.finish(task.id));
      if (day === 0) await gw.clock.advance(3_600_000);
    }
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    if (onPostgres) await dropSchema(schema);
  });

  const GROUPINGS = ['', 'provider', 'model', 'operation', 'quality', 'day', 'provider,model', 'provider,operation,quality,day', 'day,model,quality'];
  const keyOf = (task: any, key: string) => (key === 'day' ? task.created_at.slice(0, 10) : (task[key] ?? null));

    it('made the mix it means to: every outcome, every provider, two days', () => {
      expect(new Set(tasks.map((task) => task.status))).toEqual(new Set(['succeeded', 'failed', 'canceled']));
      expect(new Set(tasks.map((task) => task.provider))).toEqual(new Set(['freepik', 'kling3api', 'kling-legacy', null]));
      expect(new Set(tasks.map((task) => task.created_at.slice(0, 10)))).toEqual(new Set(['2026-11-30', '2026-12-01']));
    });

    it.each(GROUPINGS)('group_by=%s: counts, credits and money are the tasks\' own, in JSON and in CSV', async (grouping) => {
      const keys = grouping ? grouping.split(',') : [];
      const expected = new Map<string, { tasks: number; succeeded: number; failed: number; canceled: number; credits10k: number; micros: number }>();
      for (const task of tasks) {
        const id = JSON.stringify([...keys.map((key) => keyOf(task, key)), task.cost.currency]);
        const row = expected.get(id) ?? { tasks: 0, succeeded: 0, failed: 0, canceled: 0, credits10k: 0, micros: 0 };
        row.tasks += 1;
        row[task.status as 'succeeded' | 'failed' | 'canceled'] += 1;
        row.credits10k += Math.round((task.cost.credits ?? 0) * 10_000);
        row.micros += micros(task);
        expected.set(id, row);
      }
      const query = `from=2026-11-30&to=2026-12-02${grouping ? `&group_by=${grouping}` : ''}`;
      const json = (await gw.request('GET', `/v1/usage?${query}`)).body.data;
      const csv = (await gw.request('GET', `/v1/usage?${query}&format=csv`)).body as string;
      const [header, ...lines] = csv.trim().split('\r\n');
      const columns = header!.split(',');
      const csvRows = lines.map((line) => Object.fromEntries(line.split(',').map((value, index) => [columns[index]!, value])));
      expect(csvRows).toHaveLength(json.length);
      const seen = new Map<string, unknown>();
      json.forEach((row: any, index: number) => {
        const id = JSON.stringify([...keys.map((key) => row[key]), row.currency]);
        const fromCsv = csvRows[index]!;
        // The CSV says what the JSON says, cell for cell.
        for (const column of ['tasks', 'succeeded', 'failed', 'canceled', 'credits', 'currency_amount']) {
          expect([id, column, Number(fromCsv[column])]).toEqual([id, column, row[column]]);
        }
        for (const key of keys) expect([id, key, fromCsv[key]]).toEqual([id, key, row[key] ?? '']);
        seen.set(id, {
          tasks: row.tasks,
          succeeded: row.succeeded,
          failed: row.failed,
          canceled: row.canceled,
          credits10k: Math.round(row.credits * 10_000),
          micros: Math.round(row.currency_amount * 1_000_000),
        });
      });
      expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(expected));
    });
});
