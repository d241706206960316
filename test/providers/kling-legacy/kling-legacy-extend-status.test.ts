/**
 * Where an extension is polled. Kling's own API polls it at `videos/video-extend/<id>`; seed 002's
 * "Get task" lists no `video-extend` among its action2 values (generations, text2video,
 * image2video, lip-sync, kolors-virtual-try-on), so a reseller keeping to that list refuses the
 * path and answers for the task at its generic `videos/text2video/<id>`.
 */
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderTaskRef } from '../../../src/core/upstream/provider.js';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import { UpstreamError } from '../../../src/core/upstream/upstream-error.js';
import { klingLegacyProvider } from '../../../src/providers/kling-legacy/kling-legacy-provider.js';

const BASE_URL = 'https://legacy.example.com';
const API_KEY = 'sk-legacy-test';
const TASK_ID = '831922345719271433';
const EXTEND_PATH = `/kling/v1/videos/video-extend/${TASK_ID}`;
const GENERIC_PATH = `/kling/v1/videos/text2video/${TASK_ID}`;
const EXTEND: ProviderTaskRef = { providerTaskId: TASK_ID, tracking: { family: 'videos', action: 'video-extend' } };

function client(): HttpUpstreamClient {
  return new HttpUpstreamClient({ provider: klingLegacyProvider, baseUrl: BASE_URL, apiKey: API_KEY, timeoutMs: 2_000 });
}

function running(status = 'processing') {
  return { code: 0, message: 'SUCCEED', request_id: 'req-poll', data: { task_id: TASK_ID, task_status: status, task_status_msg: '' } };
}

function refusal(code: number) {
  return { code, message: 'invalid action2', request_id: 'req-refused' };
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('polling an extension on an upstream that keeps to the official path', () => {
  it('asks at videos/video-extend/<id> and nowhere else; the tracking stays as it was', async () => {
    const poll = nock(BASE_URL).get(EXTEND_PATH).reply(200, running());
    const report = await klingLegacyProvider.getStatus(EXTEND, { http: client() });
    expect(poll.isDone()).toBe(true);
    expect(report.status).toBe('processing');
    expect(report.tracking).toBeUndefined();
  });

  it.each([
    ['a server error', 500, { code: 5000, message: 'Server internal error' }],
    ['a rate limit', 429, { code: 1302, message: 'Too many requests' }],
    ['an auth failure', 401, { code: 1000, message: 'Authentication failed' }],
  ])('does not look elsewhere on %s: the poll fails as before', async (_name, status, body) => {
    nock(BASE_URL).get(EXTEND_PATH).reply(status, body);
    const generic = nock(BASE_URL).get(GENERIC_PATH).reply(200, running());
    await expect(klingLegacyProvider.getStatus(EXTEND, { http: client() })).rejects.toBeInstanceOf(UpstreamError);
    expect(generic.isDone()).toBe(false);
  });
});

describe('polling an extension on an upstream that keeps to the seed list of action2', () => {
  it.each([
    ['HTTP 404 with 1202 (invalid method)', 404, refusal(1202)],
    ['HTTP 400 with 1201 (invalid parameter)', 400, refusal(1201)],
    ['HTTP 404 with 1203 (no such resource)', 404, refusal(1203)],
    ['HTTP 200 with 1200 in the envelope', 200, refusal(1200)],
    ['HTTP 404 with no envelope', 404, 'Not Found'],
    ['HTTP 404 whose code repeats the status', 404, { code: 404, message: 'Not Found' }],
    ['HTTP 400 with a code of its own', 400, { code: -1, message: 'unsupported action2' }],
    ['HTTP 405 with no envelope', 405, ''],
  ])('asks at videos/text2video/<id> once video-extend is refused with %s, and says so in the tracking', async (_name, status, body) => {
    const refused = nock(BASE_URL).get(EXTEND_PATH).reply(status, body as nock.Body);
    const generic = nock(BASE_URL).get(GENERIC_PATH).reply(200, running('succeed'));
    const report = await klingLegacyProvider.getStatus(EXTEND, { http: client() });
    expect(refused.isDone()).toBe(true);
    expect(generic.isDone()).toBe(true);
    expect(report.providerStatus).toBe('succeed');
    expect(report.tracking).toEqual({ family: 'videos', action: 'video-extend', statusAction: 'text2video' });
  });

  it('goes straight to the path the tracking remembers', async () => {
    const generic = nock(BASE_URL).get(GENERIC_PATH).reply(200, running());
    const refused = nock(BASE_URL).get(EXTEND_PATH).reply(404, refusal(1202));
    const remembered = { ...EXTEND, tracking: { ...EXTEND.tracking, statusAction: 'text2video' } };
    const report = await klingLegacyProvider.getStatus(remembered, { http: client() });
    expect(generic.isDone()).toBe(true);
    expect(refused.isDone()).toBe(false);
    expect(report.status).toBe('processing');
    expect(report.tracking).toBeUndefined();
  });

  it('fails the poll with the first refusal when both paths refuse', async () => {
    nock(BASE_URL).get(EXTEND_PATH).reply(404, refusal(1202));
    const generic = nock(BASE_URL).get(GENERIC_PATH).reply(404, refusal(1203));
    const error = await klingLegacyProvider.getStatus(EXTEND, { http: client() }).then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(generic.isDone()).toBe(true);
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).providerCode).toBe('1202');
    expect((error as UpstreamError).url).toBe(EXTEND_PATH);
  });

  it('fails the poll with the generic path\'s error when that one is not a refusal', async () => {
    nock(BASE_URL).get(EXTEND_PATH).reply(404, refusal(1202));
    nock(BASE_URL).get(GENERIC_PATH).reply(503, { code: 5001, message: 'Service temporarily unavailable' });
    const error = await klingLegacyProvider.getStatus(EXTEND, { http: client() }).then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect((error as UpstreamError).providerCode).toBe('5001');
  });

  it('does not look elsewhere for a lip-sync, which the seed lists', async () => {
    nock(BASE_URL).get(`/kling/v1/videos/lip-sync/${TASK_ID}`).reply(404, refusal(1203));
    const generic = nock(BASE_URL).get(GENERIC_PATH).reply(200, running());
    await expect(
      klingLegacyProvider.getStatus({ providerTaskId: TASK_ID, tracking: { family: 'videos', action: 'lip-sync' } }, { http: client() }),
    ).rejects.toBeInstanceOf(UpstreamError);
    expect(generic.isDone()).toBe(false);
  });

  it('refuses a remembered path that is no known action', async () => {
    const remembered = { ...EXTEND, tracking: { ...EXTEND.tracking, statusAction: '../admin' } };
    await expect(klingLegacyProvider.getStatus(remembered, { http: client() })).rejects.toThrow(/no status route/);
  });
});

describe('the charge a running answer reported', () => {
  const generic = { family: 'videos', action: 'text2video' };
  const withFigure = (status: string, units: string) => ({ ...running(status), data: { ...running(status).data, final_unit_deduction: units } });

  it('is kept with the task when above 0, and stated by a later answer that leaves it out, as chargedCredits', async () => {
    const ref: ProviderTaskRef = { providerTaskId: TASK_ID, tracking: generic };
    nock(BASE_URL).get(GENERIC_PATH).reply(200, withFigure('processing', '3.5'));
    const first = await klingLegacyProvider.getStatus(ref, { http: client() });
    expect(first).toMatchObject({ status: 'processing', reportedCredits: 3.5, tracking: { ...generic, final_unit_deduction: '3.5' } });
    const kept = { ...ref, tracking: first.tracking! };
    expect(klingLegacyProvider.chargedCredits?.(ref)).toBeUndefined();
    expect(klingLegacyProvider.chargedCredits?.(kept)).toBe(3.5);
    const video = { videos: [{ id: 'v1', url: 'https://cdn.example.com/v1.mp4', duration: '5' }] };
    nock(BASE_URL).get(GENERIC_PATH).reply(200, { ...running('succeed'), data: { ...running('succeed').data, task_result: video } });
    const last = await klingLegacyProvider.getStatus(kept, { http: client() });
    expect(last).toMatchObject({ status: 'succeeded', reportedCredits: 3.5 });
    expect(last.tracking).toBeUndefined();
  });

  it('is not a running 0 (no charge yet), which neither replaces a kept figure nor is kept itself', async () => {
    nock(BASE_URL).get(GENERIC_PATH).reply(200, withFigure('processing', '0'));
    const fresh = await klingLegacyProvider.getStatus({ providerTaskId: TASK_ID, tracking: generic }, { http: client() });
    expect(fresh).toMatchObject({ status: 'processing', reportedCredits: 0 });
    expect(fresh.tracking).toBeUndefined();
    nock(BASE_URL).get(GENERIC_PATH).reply(200, withFigure('processing', '0'));
    const kept = await klingLegacyProvider.getStatus(
      { providerTaskId: TASK_ID, tracking: { ...generic, final_unit_deduction: '3.5' } },
      { http: client() },
    );
    expect(kept).toMatchObject({ status: 'processing', reportedCredits: 3.5 });
    expect(kept.tracking).toBeUndefined();
  });

  it('is kept beside the fallback path an extension learned', async () => {
    nock(BASE_URL).get(EXTEND_PATH).reply(404, refusal(1202));
    nock(BASE_URL).get(GENERIC_PATH).reply(200, withFigure('processing', '2'));
    const report = await klingLegacyProvider.getStatus(EXTEND, { http: client() });
    expect(report.tracking).toEqual({ family: 'videos', action: 'video-extend', statusAction: 'text2video', final_unit_deduction: '2' });
  });
});
