/**
 * The legacy Kling-API's answer to "did this create whose answer was lost make a task?" (issue
 * 11): the query route asked for the `external_task_id` the create carried (the attempt key).
 */
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CreateVideoRequest } from '../../../src/core/model/canonical.js';
import { matchOffering, resolveRequest } from '../../../src/core/model/capabilities.js';
import type { LookupContext, UnansweredCreate } from '../../../src/core/upstream/provider.js';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import { klingLegacyProvider } from '../../../src/providers/kling-legacy/index.js';

const BASE = 'https://legacy.example.test';

function create(input: Record<string, unknown> = { model: 'kling-v1', prompt: 'x', duration: 5 }): UnansweredCreate {
  const resolved = resolveRequest(CreateVideoRequest.parse(input));
  const { offering, reasons } = matchOffering(klingLegacyProvider.offerings, resolved);
  if (!offering) throw new Error(reasons.join('; '));
  return { request: resolved.request, offering, attemptKey: 'vid_7-2' };
}

function context(apiShape?: string): LookupContext {
  return {
    http: new HttpUpstreamClient({ provider: klingLegacyProvider, baseUrl: BASE, apiKey: 'legacy_key_123456', timeoutMs: 2_000, apiShape }),
    knownTaskIds: async () => new Set(),
    recordedTaskCount: async () => 0,
  };
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('klingLegacyProvider.findCreate', () => {
  it('finds the task by the external_task_id the create carried', async () => {
    const scope = nock(BASE)
      .get('/kling/v1/videos/text2video/vid_7-2')
      .reply(200, { code: 0, message: 'SUCCEED', data: { task_id: '831922345719271433', task_status: 'processing', task_info: { external_task_id: 'vid_7-2' } } });
    const lookup = await klingLegacyProvider.findCreate!(create(), context());
    expect(lookup).toEqual({ kind: 'found', ref: { providerTaskId: '831922345719271433', tracking: { family: 'videos', action: 'text2video' } } });
    expect(scope.isDone()).toBe(true);
  });

  it('a task echoing another external_task_id is not ours', async () => {
    nock(BASE)
      .get('/kling/v1/videos/text2video/vid_7-2')
      .reply(200, { code: 0, data: { task_id: '1', task_status: 'submitted', task_info: { external_task_id: 'someone-else' } } });
    expect(await klingLegacyProvider.findCreate!(create(), context())).toMatchObject({ kind: 'unknown' });
  });

  it('an answer naming no task (empty task_id) finds nothing to track', async () => {
    nock(BASE)
      .get('/kling/v1/videos/text2video/vid_7-2')
      .reply(200, { code: 0, data: { task_id: '', task_status: 'processing', task_info: { external_task_id: 'vid_7-2' } } });
    expect(await klingLegacyProvider.findCreate!(create(), context())).toMatchObject({ kind: 'unknown' });
  });

  it('"does not exist" (1203) proves nothing was accepted on Kling\'s own API, and nothing from an aggregator', async () => {
    nock(BASE).get('/v1/videos/text2video/vid_7-2').reply(404, { code: 1203, message: 'Requested resource does not exist' });
    expect(await klingLegacyProvider.findCreate!(create(), context('official'))).toMatchObject({ kind: 'absent' });
    nock(BASE).get('/kling/v1/videos/text2video/vid_7-2').reply(404, { code: 1203, message: 'Requested resource does not exist' });
    expect(await klingLegacyProvider.findCreate!(create(), context())).toMatchObject({ kind: 'unknown', why: expect.stringMatching(/only Kling's own API documents/) });
  });

  it('an action that carries no external_task_id cannot be looked up (only its callback can tell)', async () => {
    const lookup = await klingLegacyProvider.findCreate!(create({ model: 'kling-v1-6', video_url: 'https://example.com/a.mp4', lip_sync: { audio_url: 'https://example.com/voice.mp3' } }), context());
    expect(lookup).toMatchObject({ kind: 'unknown', why: expect.stringMatching(/documents no external_task_id for lip-sync/) });
  });
});
