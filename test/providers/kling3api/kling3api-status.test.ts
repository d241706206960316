/**
 * Status words → canonical status (SPEC §2, kling3api column), outputs and reported credits.
 */
import { describe, expect, it } from 'vitest';
import { Kling3apiGenerateData, Kling3apiStatusData } from '../../../src/providers/kling3api/kling3api-schemas.js';
import { mapKling3apiStatus } from '../../../src/providers/kling3api/kling3api-status.js';

const URL = 'https://cdn.example.com/videos/abc123.mp4';

describe('mapKling3apiStatus', () => {
  it('IN_PROGRESS → processing, with the credits already charged', () => {
    expect(mapKling3apiStatus({ status: 'IN_PROGRESS', consumed_credits: 400, response: [] })).toStrictEqual({
      status: 'processing',
      providerStatus: 'IN_PROGRESS',
      outputs: [],
      reportedCredits: 400,
    });
  });

  it('SUCCESS → succeeded with data.response[] as video outputs (the seed example)', () => {
    expect(
      mapKling3apiStatus({ status: 'SUCCESS', consumed_credits: 400, response: [URL], error_message: null }),
    ).toStrictEqual({
      status: 'succeeded',
      providerStatus: 'SUCCESS',
      outputs: [{ type: 'video', url: URL, duration: null }],
      reportedCredits: 400,
    });
  });

  it('COMPLETED → succeeded as well; every URL becomes an output, a lone string too', () => {
    const report = mapKling3apiStatus({ status: 'COMPLETED', response: [URL, `${URL}?2`, 7, ''] });
    expect(report.status).toBe('succeeded');
    expect(report.outputs.map((o) => o.url)).toEqual([URL, `${URL}?2`]);
    expect(mapKling3apiStatus({ status: 'COMPLETED', response: URL }).outputs).toEqual([
      { type: 'video', url: URL, duration: null },
    ]);
  });

  it('SUCCESS without any URL is reported as succeeded with no outputs (the gateway fails such a task)', () => {
    expect(mapKling3apiStatus({ status: 'SUCCESS', response: [] })).toStrictEqual({
      status: 'succeeded',
      providerStatus: 'SUCCESS',
      outputs: [],
    });
  });

  it('a failed or expired task names kling3api in its error, with what kling3api said', () => {
    expect(mapKling3apiStatus({ status: 'FAILED', error_message: 'Render node crashed' }).error?.message).toBe(
      'kling3api reported the task FAILED: Render node crashed',
    );
    expect(mapKling3apiStatus({ status: 'EXPIRED', error_message: 'queue timed out' }).error?.message).toBe('kling3api expired the task: queue timed out');
  });

  it('FAILED → failed with error_message as a provider_error', () => {
    expect(mapKling3apiStatus({ status: 'FAILED', error_message: 'Render node crashed', consumed_credits: 240 })).toStrictEqual({
      status: 'failed',
      providerStatus: 'FAILED',
      outputs: [],
      reportedCredits: 240,
      error: { code: 'provider_error', message: 'kling3api reported the task FAILED: Render node crashed', providerCode: 'FAILED' },
    });
    expect(mapKling3apiStatus({ status: 'FAILED', error_message: null }).error).toEqual({
      code: 'provider_error',
      message: 'kling3api reported the task failed',
      providerCode: 'FAILED',
    });
  });

  it('FAILED whose message reads as a safety rejection → content_policy', () => {
    for (const message of [
      'Content policy violation detected',
      'Prompt flagged by the safety system',
      'The image contains sensitive content',
      'NSFW content is not allowed',
    ]) {
      expect(mapKling3apiStatus({ status: 'FAILED', error_message: message }).error?.code).toBe('content_policy');
    }
  });

  it('EXPIRED → failed with code expired', () => {
    expect(mapKling3apiStatus({ status: 'EXPIRED', error_message: null })).toStrictEqual({
      status: 'failed',
      providerStatus: 'EXPIRED',
      outputs: [],
      error: { code: 'expired', message: 'kling3api expired the task', providerCode: 'EXPIRED' },
    });
    // Even a safety-sounding message does not turn an expiry into something else.
    expect(mapKling3apiStatus({ status: 'EXPIRED', error_message: 'safety queue timed out' }).error?.code).toBe('expired');
  });

  it('an unknown word → unknown, raw word kept, never success even with URLs present', () => {
    expect(mapKling3apiStatus({ status: 'PENDING_REVIEW', response: [URL] })).toStrictEqual({
      status: 'unknown',
      providerStatus: 'PENDING_REVIEW',
      outputs: [],
    });
    expect(mapKling3apiStatus({}).status).toBe('unknown');
    expect(mapKling3apiStatus({ status: null }).providerStatus).toBe('');
  });

  it('matches words without regard to case or spaces, but reports them as sent', () => {
    const report = mapKling3apiStatus({ status: ' success ', response: [URL] });
    expect(report.status).toBe('succeeded');
    expect(report.providerStatus).toBe(' success ');
  });

  it('reports consumed_credits only when it is a usable number', () => {
    expect(mapKling3apiStatus({ status: 'IN_PROGRESS', consumed_credits: 0 }).reportedCredits).toBe(0);
    expect(mapKling3apiStatus({ status: 'IN_PROGRESS', consumed_credits: -1 })).not.toHaveProperty('reportedCredits');
    expect(mapKling3apiStatus({ status: 'IN_PROGRESS', consumed_credits: Number.NaN })).not.toHaveProperty('reportedCredits');
    expect(mapKling3apiStatus({ status: 'IN_PROGRESS', consumed_credits: null })).not.toHaveProperty('reportedCredits');
  });

  it('reads a blank consumed_credits string as not reported, not as a charge of 0', () => {
    for (const blank of ['', ' ', '\t']) {
      const answer = Kling3apiStatusData.parse({ status: 'SUCCESS', response: [URL], consumed_credits: blank });
      expect(mapKling3apiStatus(answer)).not.toHaveProperty('reportedCredits');
      expect(Kling3apiGenerateData.parse({ task_id: 'n75abc', consumed_credits: blank }).consumed_credits).toBeUndefined();
    }
    expect(mapKling3apiStatus(Kling3apiStatusData.parse({ status: 'SUCCESS', consumed_credits: ' 400 ' })).reportedCredits).toBe(400);
    expect(mapKling3apiStatus(Kling3apiStatusData.parse({ status: 'SUCCESS', consumed_credits: '0' })).reportedCredits).toBe(0);
  });
});
