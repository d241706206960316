/**
 * `video_id` (video-extend, lip-sync) names a video on the provider's account, which every
 * tenant's tasks share: a tenant must not be able to extend or lip-sync a video another tenant
 * made (its frames come back in the result), by an id read from that tenant's task or webhook.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OTHER_TENANT_KEY, startTestGateway, type TestGateway } from '../support/harness.js';

describe("a video_id of another tenant's video", () => {
  let gw: TestGateway;
  let videoId: string;
  beforeAll(async () => {
    gw = await startTestGateway({ config: { tasks: { deadline_ms: 3_600_000 } } });
    const created = await gw.create({ model: 'kling-v1-6', prompt: 'a lighthouse at dusk', routing: { providers: ['kling-legacy'] } });
    const done = await gw.finish(created.body.id);
    expect(done.status).toBe('succeeded');
    videoId = done.outputs[0].upstream_id;
    expect(videoId).toEqual(expect.any(String));
  });
  afterAll(async () => {
    await gw.close();
  });

  const upstreamCreates = () => gw.simulator('kling-legacy').tasks.length;

  it.each([
    ['video-extend', (id: string) => ({ model: 'kling-v1-6', operation: 'video-extend', video_id: id, prompt: 'keep going' })],
    ['lip-sync', (id: string) => ({ model: 'kling-v1-6', video_id: id, lip_sync: { text: 'hello there', voice_id: 'genshin_vindi2' } })],
  ])('is refused for %s (422 naming video_id), and nothing is sent or created', async (_operation, body) => {
    const before = upstreamCreates();
    const refused = await gw.request('POST', '/v1/videos', body(videoId), {}, OTHER_TENANT_KEY);
    expect(refused.status, JSON.stringify(refused.body)).toBe(422);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.body.errors).toEqual([expect.objectContaining({ path: 'video_id' })]);
    expect(upstreamCreates()).toBe(before);
    const list = await gw.request('GET', '/v1/videos', undefined, {}, OTHER_TENANT_KEY);
    expect(list.body.data).toEqual([]);

    const quote = await gw.request('POST', '/v1/videos/quote', body(videoId), {}, OTHER_TENANT_KEY);
    expect(quote.status, JSON.stringify(quote.body)).toBe(422);
    expect(quote.body.errors).toEqual([expect.objectContaining({ path: 'video_id' })]);
  });

  it('with a NUL in it is a 400 naming video_id, as for every id and URL field (PostgreSQL cannot store one)', async () => {
    const before = upstreamCreates();
    const refused = await gw.create({ model: 'kling-v1-6', operation: 'video-extend', video_id: 'vid\u0000123', prompt: 'keep going' });
    expect(refused.status, JSON.stringify(refused.body)).toBe(400);
    expect(refused.body.errors).toEqual([expect.objectContaining({ path: 'video_id' })]);
    expect(upstreamCreates()).toBe(before);
  });

  it.each([
    ['a leading space', (id: string) => ` ${id}`],
    ['a trailing line break', (id: string) => `${id}\n`],
    ['a tab inside', (id: string) => `${id.slice(0, 3)}\t${id.slice(3)}`],
    ['a no-break space', (id: string) => `${id}\u00a0`],
  ])("written with %s is a 400 naming video_id (an upstream that trims ids would serve the other tenant's video), and nothing is sent", async (_kind, spell) => {
    const before = upstreamCreates();
    const body = { model: 'kling-v1-6', operation: 'video-extend', video_id: spell(videoId), prompt: 'keep going' };
    const refused = await gw.request('POST', '/v1/videos', body, {}, OTHER_TENANT_KEY);
    expect(refused.status, JSON.stringify(refused.body)).toBe(400);
    expect(refused.body.errors).toEqual([{ path: 'video_id', message: 'must not contain whitespace or control characters' }]);
    expect(upstreamCreates()).toBe(before);
    const quote = await gw.request('POST', '/v1/videos/quote', body, {}, OTHER_TENANT_KEY);
    expect(quote.status, JSON.stringify(quote.body)).toBe(400);
  });

  it("any spelling of the id with a space, control or format character anywhere is a 400 on video_id, never the other tenant's video", { timeout: 60_000 }, async () => {
    // Every space (\s), control (Cc) and format (Cf) character of the BMP but NUL (its own message).
    const odd = [...Array(0x10000).keys()].map((code) => String.fromCharCode(code)).filter((char) => char !== '\u0000' && /[\s\p{Cc}\p{Cf}]/u.test(char));
    const before = upstreamCreates();
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: videoId.length }), fc.array(fc.constantFrom(...odd), { minLength: 1, maxLength: 3 }), async (at, inserted) => {
        const spelled = videoId.slice(0, at) + inserted.join('') + videoId.slice(at);
        const answer = await gw.request('POST', '/v1/videos', { model: 'kling-v1-6', operation: 'video-extend', video_id: spelled, prompt: 'keep going' }, {}, OTHER_TENANT_KEY);
        expect(answer.status, JSON.stringify(answer.body)).toBe(400);
        expect(answer.body.errors).toEqual([{ path: 'video_id', message: 'must not contain whitespace or control characters' }]);
      }),
      { numRuns: 60 },
    );
    expect(upstreamCreates()).toBe(before);
  });

  it('is still taken from the tenant that made the video, and for ids no tenant made here', async () => {
    const own = await gw.create({ model: 'kling-v1-6', operation: 'video-extend', video_id: videoId, prompt: 'keep going' });
    expect(own.status, JSON.stringify(own.body)).toBe(202);
    const elsewhere = await gw.request('POST', '/v1/videos', { model: 'kling-v1-6', operation: 'video-extend', video_id: 'vid-123', prompt: 'go on' }, {}, OTHER_TENANT_KEY);
    expect(elsewhere.status, JSON.stringify(elsewhere.body)).toBe(202);
  });
});
