/** Freepik status words and task answers → canonical status reports (SPEC §2). */
import { describe, expect, it } from 'vitest';
import { readFreepikTask } from '../../../src/providers/freepik/freepik-schemas.js';
import { mapFreepikStatus, toFreepikStatusReport } from '../../../src/providers/freepik/freepik-status.js';

const TASK_ID = '046b6c7f-0b8a-43b9-b35d-6489e6daee91';
const VIDEO = 'https://ai-statics.freepik.com/result.mp4';

describe('mapFreepikStatus', () => {
  it.each([
    ['CREATED', 'queued'],
    ['IN_PROGRESS', 'processing'],
    ['COMPLETED', 'succeeded'],
    ['FAILED', 'failed'],
  ] as const)('%s → %s', (word, status) => {
    expect(mapFreepikStatus(word)).toBe(status);
  });

  it.each(['SUCCESS', 'completed', 'COMPLETED_WITH_ERRORS', 'DONE', 'constructor', '', null, undefined])(
    'keeps %s unknown, never success',
    (word) => {
      expect(mapFreepikStatus(word)).toBe('unknown');
    },
  );
});

describe('toFreepikStatusReport', () => {
  it('reads the seed example of a completed task (data envelope) as a video output', () => {
    const task = readFreepikTask({ data: { generated: [VIDEO], task_id: TASK_ID, status: 'COMPLETED' } });
    expect(task && toFreepikStatusReport(task)).toEqual({
      status: 'succeeded',
      providerStatus: 'COMPLETED',
      outputs: [{ type: 'video', url: VIDEO, duration: null }],
    });
  });

  it('reads a bare task object too (webhook payloads)', () => {
    const task = readFreepikTask({ task_id: TASK_ID, status: 'IN_PROGRESS', generated: [] });
    expect(task && toFreepikStatusReport(task)).toEqual({ status: 'processing', providerStatus: 'IN_PROGRESS', outputs: [] });
  });

  it('keeps an unknown word raw and the task open', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'REVIEWING', generated: [VIDEO] } });
    const report = task && toFreepikStatusReport(task);
    expect(report?.status).toBe('unknown');
    expect(report?.providerStatus).toBe('REVIEWING');
    expect(report?.error).toBeUndefined();
  });

  it('tolerates missing and odd fields', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'CREATED', generated: 'nope', extra: { a: 1 } } });
    expect(task && toFreepikStatusReport(task)).toEqual({ status: 'queued', providerStatus: 'CREATED', outputs: [] });
    const noStatus = readFreepikTask({ data: { task_id: TASK_ID } });
    expect(noStatus && toFreepikStatusReport(noStatus).status).toBe('unknown');
  });

  it('takes only URL strings (or {url}) from generated', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'COMPLETED', generated: [VIDEO, 42, { url: `${VIDEO}?2` }, ''] } });
    expect(task && toFreepikStatusReport(task).outputs.map((output) => output.url)).toEqual([VIDEO, `${VIDEO}?2`]);
  });

  it('reports a failed task without a reason as provider_error', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'FAILED', generated: [] } });
    expect(task && toFreepikStatusReport(task)).toEqual({
      status: 'failed',
      providerStatus: 'FAILED',
      outputs: [],
      error: { code: 'provider_error', message: 'Freepik reported the task FAILED', providerCode: 'FAILED' },
    });
  });

  it('keeps an ordinary failure reason in the message, still provider_error', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'FAILED', generated: [], error: 'Image could not be downloaded' } });
    const report = task && toFreepikStatusReport(task);
    expect(report?.error?.code).toBe('provider_error');
    expect(report?.error?.message).toContain('Image could not be downloaded');
  });

  it.each([
    { error: 'Content policy violation' },
    { message: 'NSFW content detected' },
    { reason: { detail: 'Blocked by the safety system' } },
    { failure_reason: 'The prompt was flagged by moderation' },
  ])('reads a failure reason that speaks of content policy as content_policy: %o', (reason) => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'FAILED', generated: [], ...reason } });
    expect(task && toFreepikStatusReport(task).error?.code).toBe('content_policy');
  });

  it('does not read the task id or result URLs as a reason', () => {
    const task = readFreepikTask({ data: { task_id: 'nsfw-safety-id', status: 'FAILED', generated: ['https://x/safety.mp4'] } });
    expect(task && toFreepikStatusReport(task).error?.code).toBe('provider_error');
  });

  it('reports COMPLETED without a file as a success with no outputs (the gateway confirms, then fails it)', () => {
    const task = readFreepikTask({ data: { task_id: TASK_ID, status: 'COMPLETED', generated: [] } });
    expect(task && toFreepikStatusReport(task)).toStrictEqual({ status: 'succeeded', providerStatus: 'COMPLETED', outputs: [] });
  });
});

describe('readFreepikTask', () => {
  it.each([null, undefined, 'not json', 42, []])('gives nothing for %o', (body) => {
    expect(readFreepikTask(body)?.task_id ?? undefined).toBeUndefined();
  });

  it('parses JSON text', () => {
    expect(readFreepikTask(JSON.stringify({ data: { task_id: TASK_ID, status: 'CREATED' } }))?.task_id).toBe(TASK_ID);
  });
});
