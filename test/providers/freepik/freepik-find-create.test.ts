/**
 * Freepik's answer to "did this create whose answer was lost make a task?" (issue 11): its task
 * list per model family (seed 000, seed 001 "List tasks") read to its empty end page. Only a
 * whole list of tasks the gateway knows proves nothing was accepted.
 */
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CreateVideoRequest } from '../../../src/core/model/canonical.js';
import { matchOffering, resolveRequest } from '../../../src/core/model/capabilities.js';
import type { LookupContext, UnansweredCreate } from '../../../src/core/upstream/provider.js';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import { freepikProvider } from '../../../src/providers/freepik/index.js';

const BASE = 'https://api.freepik.test';

function create(): UnansweredCreate {
  const resolved = resolveRequest(CreateVideoRequest.parse({ model: 'kling-v3', prompt: 'x', duration: 5 }));
  const { offering } = matchOffering(freepikProvider.offerings, resolved);
  return { request: resolved.request, offering: offering!, attemptKey: 'vid_1-1' };
}

function context(known: readonly string[]): LookupContext {
  return {
    http: new HttpUpstreamClient({ provider: freepikProvider, baseUrl: BASE, apiKey: 'fpk_key_123456', timeoutMs: 2_000 }),
    knownTaskIds: async (ids) => new Set(ids.filter((id) => known.includes(id))),
  };
}

function page(n: number, ids: string[]) {
  return nock(BASE)
    .get('/v1/ai/video/kling-v3')
    .query({ page: String(n), page_size: '100' })
    .reply(200, { data: ids.map((task_id) => ({ task_id, status: 'IN_PROGRESS' })) });
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('freepikProvider.findCreate', () => {
  it('a list of known tasks read to its empty end proves the create was not accepted', async () => {
    const scopes = [page(1, ['a', 'b']), page(2, ['c']), page(3, [])];
    const lookup = await freepikProvider.findCreate!(create(), context(['a', 'b', 'c']));
    expect(lookup).toEqual({ kind: 'absent', why: 'every one of the 3 task(s) in the /v1/ai/video/kling-v3 list is known to the gateway' });
    expect(scopes.every((scope) => scope.isDone())).toBe(true);
  });

  it('a task the gateway does not know proves nothing: it may be ours or another client\'s', async () => {
    page(1, ['a', 'stranger']);
    const lookup = await freepikProvider.findCreate!(create(), context(['a']));
    expect(lookup).toMatchObject({ kind: 'unknown', why: expect.stringMatching(/1 task\(s\) the gateway does not know/) });
  });

  it('a list that ignores paging (the same tasks again) proves nothing', async () => {
    page(1, ['a']);
    page(2, ['a']);
    const lookup = await freepikProvider.findCreate!(create(), context(['a']));
    expect(lookup).toMatchObject({ kind: 'unknown', why: expect.stringMatching(/repeats tasks/) });
  });

  it('a failed list call is an error for the caller (the create stays in doubt)', async () => {
    nock(BASE).get('/v1/ai/video/kling-v3').query(true).reply(503, { message: 'Service Unavailable. Please try again later.' });
    await expect(freepikProvider.findCreate!(create(), context([]))).rejects.toMatchObject({ statusCode: 503 });
  });

  it('names the task a verified webhook reported, in the family the create went to', () => {
    expect(freepikProvider.refOfCreate!(create(), 'up-1')).toEqual({ providerTaskId: 'up-1', tracking: { family: '/v1/ai/video/kling-v3' } });
  });
});
