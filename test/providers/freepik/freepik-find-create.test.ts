/**
 * Freepik's answer to "did this create whose answer was lost make a task?" (issue 11): its task
 * list per model family (seed 000, seed 001 "List tasks"). The Kling 3 and Kling 3 Omni lists take
 * no parameters and answer every task at once; only the reference-to-video list has pages, read to
 * its empty end page. Only a whole list of tasks the gateway knows proves nothing was accepted.
 */
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CreateVideoRequest } from '../../../src/core/model/canonical.js';
import { matchOffering, resolveRequest } from '../../../src/core/model/capabilities.js';
import type { LookupContext, UnansweredCreate } from '../../../src/core/upstream/provider.js';
import { HttpUpstreamClient } from '../../../src/core/upstream/upstream-client.js';
import { freepikProvider } from '../../../src/providers/freepik/index.js';

const BASE = 'https://api.freepik.test';

const KLING_V3 = { model: 'kling-v3', prompt: 'x', duration: 5 };
const OMNI = { model: 'kling-v3-omni', prompt: 'x', duration: 5 };
const OMNI_REFERENCE = { model: 'kling-v3-omni', prompt: 'x @Video1', reference_video_url: 'https://cdn.example.com/ref.mp4' };

function create(input: object = KLING_V3): UnansweredCreate {
  const resolved = resolveRequest(CreateVideoRequest.parse(input));
  const { offering } = matchOffering(freepikProvider.offerings, resolved);
  return { request: resolved.request, offering: offering!, attemptKey: 'vid_1-1' };
}

/**
 * The gateway's side of a lookup: it knows `known`, and recorded `recorded` tasks on this key
 * in the family asked about (all of `known`, unless told).
 */
function context(known: readonly string[], recorded: number = known.length): LookupContext & { asked: Record<string, string>[] } {
  const asked: Record<string, string>[] = [];
  return {
    http: new HttpUpstreamClient({ provider: freepikProvider, baseUrl: BASE, apiKey: 'fpk_key_123456', timeoutMs: 2_000 }),
    knownTaskIds: async (ids) => new Set(ids.filter((id) => known.includes(id))),
    recordedTaskCount: async (tracking) => {
      asked.push({ ...tracking });
      return recorded;
    },
    asked,
  };
}

const taskList = (ids: string[]) => ({ data: ids.map((task_id) => ({ task_id, status: 'IN_PROGRESS' })) });

/** A page of the reference-to-video list, the one list that documents `page` and `page_size`. */
function page(n: number, ids: string[]) {
  return nock(BASE)
    .get('/v1/ai/reference-to-video/kling-v3-omni')
    .query({ page: String(n), page_size: '100' })
    .reply(200, taskList(ids));
}

/** An unpaged list, answered only when asked as documented: no query parameters at all. */
function wholeList(path: string, ids: string[]) {
  return nock(BASE)
    .get(path)
    .query((query) => Object.keys(query).length === 0)
    .reply(200, taskList(ids));
}

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('freepikProvider.findCreate', () => {
  it('the Kling 3 list takes no parameters: one call, every task in it known, proves the create was not accepted', async () => {
    const scope = wholeList('/v1/ai/video/kling-v3', ['a', 'b', 'c']);
    const lookup = await freepikProvider.findCreate!(create(), context(['a', 'b', 'c']));
    expect(lookup).toEqual({ kind: 'absent', why: 'every one of the 3 task(s) in the /v1/ai/video/kling-v3 list is known to the gateway' });
    expect(scope.isDone()).toBe(true);
  });

  it('the Kling 3 Omni list is read the same way, and an empty one proves it too', async () => {
    const scope = wholeList('/v1/ai/video/kling-v3-omni', []);
    const lookup = await freepikProvider.findCreate!(create(OMNI), context([]));
    expect(lookup).toEqual({ kind: 'absent', why: 'every one of the 0 task(s) in the /v1/ai/video/kling-v3-omni list is known to the gateway' });
    expect(scope.isDone()).toBe(true);
  });

  it("a task the gateway does not know proves nothing: it may be ours or another client's", async () => {
    wholeList('/v1/ai/video/kling-v3', ['a', 'stranger']);
    const lookup = await freepikProvider.findCreate!(create(), context(['a']));
    expect(lookup).toMatchObject({ kind: 'unknown', why: expect.stringMatching(/1 task\(s\) the gateway does not know/) });
  });

  it('the reference-to-video list is read page by page to its empty end', async () => {
    const scopes = [page(1, ['a', 'b']), page(2, ['c']), page(3, [])];
    const lookup = await freepikProvider.findCreate!(create(OMNI_REFERENCE), context(['a', 'b', 'c']));
    expect(lookup).toEqual({
      kind: 'absent',
      why: 'every one of the 3 task(s) in the /v1/ai/reference-to-video/kling-v3-omni list is known to the gateway',
    });
    expect(scopes.every((scope) => scope.isDone())).toBe(true);
  });

  it('a list holding fewer tasks than the gateway recorded on this key in its family was cut short: it proves nothing', async () => {
    // Not documented: a list that answers only its newest tasks, as a paged list does with its
    // default page size. The task of the create may be one left out.
    wholeList('/v1/ai/video/kling-v3', ['c', 'd']);
    const lookup = context(['a', 'b', 'c', 'd'], 4);
    expect(await freepikProvider.findCreate!(create(), lookup)).toEqual({
      kind: 'unknown',
      why: 'the /v1/ai/video/kling-v3 list holds 2 task(s), fewer than the 4 the gateway recorded in it on this key: cut short, it proves nothing',
    });
    expect(lookup.asked).toEqual([{ family: '/v1/ai/video/kling-v3' }]);
    // The same count for the paged list, read to its end.
    page(1, ['c']);
    page(2, []);
    const paged = context(['c', 'd'], 2);
    expect(await freepikProvider.findCreate!(create(OMNI_REFERENCE), paged)).toMatchObject({ kind: 'unknown', why: expect.stringMatching(/holds 1 task\(s\), fewer than the 2/) });
    expect(paged.asked).toEqual([{ family: '/v1/ai/reference-to-video/kling-v3-omni' }]);
  });

  it('a paged list that ignores paging (the same tasks again) proves nothing', async () => {
    page(1, ['a']);
    page(2, ['a']);
    const lookup = await freepikProvider.findCreate!(create(OMNI_REFERENCE), context(['a']));
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
