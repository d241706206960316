/**
 * The console's Cost page on a gateway without `GET /v1/usage` adds the figures up in the browser
 * from the task list: they must be the report's figures, which count the money of finished tasks
 * only (failed and canceled ones' charges included), never a running task's estimate.
 */
import { describe, expect, it } from 'vitest';
import { usageFromTasks } from '../../console/src/cost-from-tasks.js';
import { usageEstimated, type Task } from '../../packages/client/src/index.js';

const USD = (amount: number, credits: number, estimated: boolean) => ({ credits, estimated, currency_amount: amount, currency: 'USD' });

function task(id: string, status: Task['status'], cost: Task['cost'], extra: Record<string, unknown> = {}): Task {
  return {
    id,
    status,
    model: 'kling-v3',
    provider: 'kling3api',
    provider_task_id: status === 'queued' ? null : `n75_${id}`,
    created_at: '2026-11-22T12:00:00.000Z',
    request: { model: 'kling-v3', prompt: 'a harbour', duration: 5 },
    outputs: status === 'succeeded' ? [{ type: 'video', url: `https://cdn.example.com/${id}.mp4`, duration: 5 }] : [],
    cost,
    ...extra,
  } as unknown as Task;
}

describe('the Cost page added up from the task list', () => {
  it('counts the charges of finished tasks only, failed ones included, as GET /v1/usage does', () => {
    const tasks = [
      task('done', 'succeeded', USD(0.4, 400, false)),
      // kling3api keeps what it charged for a failure.
      task('failed', 'failed', USD(0.4, 400, false)),
      task('canceled', 'canceled', USD(0, 0, false)),
      // Still running or waiting: their estimates are not charges yet.
      task('running', 'processing', USD(0.4, 400, true)),
      task('waiting', 'queued', USD(0.4, 400, true)),
    ];
    expect(usageFromTasks(tasks, 'provider')).toEqual([
      expect.objectContaining({
        provider: 'kling3api',
        currency: 'USD',
        tasks: 5,
        succeeded: 1,
        failed: 1,
        canceled: 1,
        in_progress: 2,
        video_seconds: 5,
        credits: 800,
        currency_amount: 0.8,
      }),
    ]);
  });

  it('splits the money into estimated and reported as the report does, so the page marks an estimate ~ the same way', () => {
    const rows = usageFromTasks(
      [task('freepik', 'succeeded', USD(0.56, 56, true), { provider: 'freepik' }), task('kling3api', 'succeeded', USD(0.4, 400, false))],
      'model',
    );
    expect(rows).toEqual([expect.objectContaining({ model: 'kling-v3', credits_estimated: 56, currency_amount_estimated: 0.56, currency_amount_reported: 0.4 })]);
    expect(usageEstimated(rows[0]!)).toBe(true);
    expect(usageEstimated(usageFromTasks([task('kling3api', 'succeeded', USD(0.4, 400, false))], 'model')[0]!)).toBe(false);
  });

  it('gives no amount (not 0) for tasks of a provider without a price list, as the report does', () => {
    const unpriced = { credits: 3.5, estimated: false, currency_amount: null, currency: null };
    const rows = usageFromTasks([task('legacy', 'succeeded', unpriced, { provider: 'kling-legacy' })], 'provider');
    expect(rows).toEqual([expect.objectContaining({ provider: 'kling-legacy', currency: null, credits: 3.5, currency_amount: null })]);
  });

  it('shows a period whose tasks all still run with their count and no money yet', () => {
    const rows = usageFromTasks([task('running', 'processing', USD(0.4, 400, true))], 'day');
    expect(rows).toEqual([expect.objectContaining({ day: '2026-11-22', tasks: 1, in_progress: 1, credits: 0, currency_amount: 0 })]);
  });
});

describe('the seconds of video added up from the task list', () => {
  const done = (id: string, request: Record<string, unknown>, outputs: unknown[]) =>
    task(id, 'succeeded', USD(0.4, 400, false), { request: { model: 'kling-v3', prompt: 'p', ...request }, outputs });
  const video = (duration: number | null) => ({ type: 'video', url: 'https://cdn.example.com/v.mp4', duration });

  it('are counted as the report counts them: the videos\' lengths, else the seconds asked for (timed shots too), else none', () => {
    const seconds = (one: Task) => usageFromTasks([one], 'provider')[0]!.video_seconds;
    expect(seconds(done('said', { duration: 10 }, [video(5.1)]))).toBe(5.1);
    expect(seconds(done('asked', { duration: 10 }, [video(null)]))).toBe(10);
    expect(seconds(done('shots', { multi_shot: [{ prompt: 'a', duration: 4 }, { prompt: 'b', duration: 6 }] }, [video(null)]))).toBe(10);
    // One video of known length and one not: the seconds asked for, not half of them.
    expect(seconds(done('partly', { duration: 10 }, [video(5), video(null)]))).toBe(10);
    // An edit as long as its source ("auto"), an image: no seconds anybody knows.
    expect(seconds(done('edit', { video_url: 'https://example.com/source.mp4' }, [video(null)]))).toBe(0);
    expect(seconds(done('image', {}, [{ type: 'image', url: 'https://cdn.example.com/i.png', duration: null }]))).toBe(0);
  });
});
