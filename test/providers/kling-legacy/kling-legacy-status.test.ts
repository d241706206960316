import { describe, expect, it } from 'vitest';
import { KlingLegacyTask } from '../../../src/providers/kling-legacy/kling-legacy-schemas.js';
import {
  klingLegacyFailure,
  mapKlingLegacyStatus,
  readKlingLegacyCallbackTaskId,
} from '../../../src/providers/kling-legacy/kling-legacy-status.js';

function status(task: Record<string, unknown>) {
  return mapKlingLegacyStatus(KlingLegacyTask.parse({ task_id: '831922345719271433', created_at: 1722769557708, ...task }));
}

describe('mapKlingLegacyStatus', () => {
  it('maps the four official words (SPEC §2)', () => {
    expect(status({ task_status: 'submitted' })).toEqual({ status: 'queued', providerStatus: 'submitted', outputs: [] });
    expect(status({ task_status: 'processing' })).toEqual({ status: 'processing', providerStatus: 'processing', outputs: [] });
    expect(status({ task_status: 'succeed' }).status).toBe('succeeded');
    expect(status({ task_status: 'failed', task_status_msg: 'boom' }).status).toBe('failed');
  });

  it('reads the official words whatever their case or surrounding spaces, keeping the raw word', () => {
    const video = { id: 'v1', url: 'https://cdn.example.com/v.mp4', duration: '5' };
    expect(status({ task_status: ' Succeed ', task_result: { videos: [video] } })).toEqual({
      status: 'succeeded',
      providerStatus: ' Succeed ',
      outputs: [{ type: 'video', url: video.url, duration: 5, id: 'v1' }],
    });
    expect(status({ task_status: 'SUBMITTED' }).status).toBe('queued');
    expect(status({ task_status: 'Processing' }).status).toBe('processing');
    expect(status({ task_status: 'FAILED', task_status_msg: 'boom' }).error?.code).toBe('provider_error');
  });

  it('keeps an unknown word as unknown, never success', () => {
    const report = status({
      task_status: 'succeeded_partially',
      task_result: { videos: [{ id: 'v', url: 'https://cdn.example.com/v.mp4', duration: '5' }] },
    });
    expect(report.status).toBe('unknown');
    expect(report.providerStatus).toBe('succeeded_partially');
    expect(report.error).toBeUndefined();
    expect(status({}).status).toBe('unknown');
  });

  it('reads videos with their duration in seconds and images without one', () => {
    expect(
      status({
        task_status: 'succeed',
        task_result: { videos: [{ id: 'v1', url: 'https://cdn.example.com/v1.mp4', duration: '5.1' }] },
      }).outputs,
    ).toEqual([{ type: 'video', url: 'https://cdn.example.com/v1.mp4', duration: 5.1, id: 'v1' }]);
    expect(
      status({
        task_status: 'succeed',
        task_result: { images: [{ index: 0, url: 'https://cdn.example.com/0.png' }, { index: 1, url: '' }] },
      }).outputs,
    ).toEqual([{ type: 'image', url: 'https://cdn.example.com/0.png', duration: null }]);
    expect(
      status({ task_status: 'succeed', task_result: { videos: [{ url: 'https://cdn.example.com/v.mp4', duration: 'n/a' }] } }).outputs,
    ).toEqual([{ type: 'video', url: 'https://cdn.example.com/v.mp4', duration: null }]);
  });

  it('says no duration for a `duration` that is no decimal figure of seconds (blank, hex, negative), rather than a wrong one', () => {
    // The document types `duration` as any string ("Seconds, as a string"): a fake may send these.
    const durationOf = (duration: unknown) =>
      status({ task_status: 'succeed', task_result: { videos: [{ url: 'https://cdn.example.com/v.mp4', duration }] } }).outputs[0]!.duration;
    expect(durationOf(' ')).toBeNull();
    expect(durationOf('0x10')).toBeNull();
    expect(durationOf('-5')).toBeNull();
    expect(durationOf('5')).toBe(5);
    expect(durationOf(' 10.5 ')).toBe(10.5);
    expect(durationOf(5)).toBe(5);
  });

  it('reports final_unit_deduction as credits, string or number', () => {
    expect(status({ task_status: 'succeed', final_unit_deduction: '3.5' }).reportedCredits).toBe(3.5);
    expect(status({ task_status: 'succeed', final_unit_deduction: 10 }).reportedCredits).toBe(10);
    expect(status({ task_status: 'succeed', final_unit_deduction: '' })).not.toHaveProperty('reportedCredits');
    // Blank is not reported: it is no charge of 0.
    expect(status({ task_status: 'succeed', final_unit_deduction: ' ' })).not.toHaveProperty('reportedCredits');
    expect(status({ task_status: 'succeed', final_unit_deduction: '0' }).reportedCredits).toBe(0);
    expect(status({ task_status: 'succeed', final_unit_deduction: 'free' })).not.toHaveProperty('reportedCredits');
    expect(status({ task_status: 'succeed' })).not.toHaveProperty('reportedCredits');
  });

  it('a failed task names kling-legacy in its error, with what task_status_msg said', () => {
    expect(status({ task_status: 'failed', task_status_msg: 'internal render error' }).error?.message).toBe(
      'kling-legacy reported the task failed: internal render error',
    );
    expect(status({ task_status: 'failed' }).error?.message).toBe('kling-legacy reported the task failed without a reason');
  });

  it('reads the failure code from task_status_msg: content policy', () => {
    expect(status({ task_status: 'failed', task_status_msg: 'Failure to pass the risk control system' }).error).toEqual({
      code: 'content_policy',
      message: 'kling-legacy reported the task failed: Failure to pass the risk control system',
      providerCode: 'failed',
    });
    expect(klingLegacyFailure('触发风控，请修改后重试').code).toBe('content_policy');
    expect(klingLegacyFailure('The content may contain sensitive information').code).toBe('content_policy');
  });

  it('reads a service code the message names by the official table', () => {
    expect(klingLegacyFailure('task 2024 failed: 1301').code).toBe('content_policy');
    expect(klingLegacyFailure('error 1201, please check').code).toBe('invalid_request');
    // 1304 is the rate-limit family: neither the code nor "policy" alone reads as a content refusal.
    expect(klingLegacyFailure('1304 IP whitelist policy triggered').code).toBe('provider_error');
  });

  it('reads the failure code from task_status_msg: input and generic failures', () => {
    expect(klingLegacyFailure('Image resolution too small').code).toBe('invalid_request');
    expect(klingLegacyFailure('Task failed due to an internal error, please try again later')).toEqual({
      code: 'provider_error',
      message: 'kling-legacy reported the task failed: Task failed due to an internal error, please try again later',
      providerCode: 'failed',
    });
    expect(status({ task_status: 'failed' }).error).toEqual({
      code: 'provider_error',
      message: 'kling-legacy reported the task failed without a reason',
      providerCode: 'failed',
    });
  });
});

describe('readKlingLegacyCallbackTaskId', () => {
  it('reads task_id from the task object the legacy callback posts', () => {
    expect(readKlingLegacyCallbackTaskId({ task_id: '8319', task_status: 'succeed' })).toBe('8319');
    expect(readKlingLegacyCallbackTaskId({ task_id: 8319 })).toBe('8319');
  });

  it('reads data.task_id when an aggregator wraps the task in the envelope', () => {
    expect(readKlingLegacyCallbackTaskId({ code: 0, data: { task_id: 'abc', task_status: 'failed' } })).toBe('abc');
  });

  it('reads raw JSON bodies and says nothing about bodies without an id', () => {
    expect(readKlingLegacyCallbackTaskId(Buffer.from('{"task_id":"raw-1"}'))).toBe('raw-1');
    expect(readKlingLegacyCallbackTaskId('{"data":{"task_id":"raw-2"}}')).toBe('raw-2');
    expect(readKlingLegacyCallbackTaskId('not json')).toBeUndefined();
    expect(readKlingLegacyCallbackTaskId({ task_id: '' })).toBeUndefined();
    expect(readKlingLegacyCallbackTaskId({ data: null })).toBeUndefined();
    expect(readKlingLegacyCallbackTaskId(null)).toBeUndefined();
  });
});
