/**
 * A 400's `errors[].message` reads as the API's own words, whatever check refused the field
 * ("must be at most 15", "is required", "must be one of 16:9, 9:16, 1:1, auto"), not zod's
 * ("Too big: expected number to be <=15"); messages a schema writes itself stay as written, and
 * `detail` names the field at fault (or how many there are, and the first).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { issueMessage } from '../../src/core/model/issue-messages.js';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw.close();
});

const base = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };

/** The one error a create with `change` answers, and its detail. */
async function refusal(change: Record<string, unknown>, path = '/v1/videos'): Promise<{ errors: unknown; detail: unknown }> {
  const answer = await gw.request('POST', path, { ...base, ...change });
  expect(answer.status).toBe(400);
  return { errors: answer.body.errors, detail: answer.body.detail };
}

describe('the messages of a refused create', () => {
  it.each([
    ['too_small string', 'prompt', 'must not be empty', { prompt: '' }],
    ['too_small number', 'duration', 'must be at least 3', { duration: 2 }],
    ['too_small array', 'multi_shot', 'must have at least 1 item', { multi_shot: [] }],
    ['too_big number', 'duration', 'must be at most 15', { duration: 16 }],
    ['too_big string', 'prompt', 'must be at most 2500 characters', { prompt: 'x'.repeat(2501) }],
    ['too_big array', 'voice_ids', 'must have at most 2 items', { voice_ids: ['a', 'b', 'c'] }],
    ['invalid_value (enum)', 'aspect_ratio', 'must be one of 16:9, 9:16, 1:1, auto', { aspect_ratio: '4:3' }],
    ['invalid_type', 'cfg_scale', 'must be a number (got a string)', { cfg_scale: '1' }],
    ['invalid_type (boolean)', 'audio', 'must be true or false (got a string)', { audio: 'yes' }],
    ['invalid_type (integer)', 'duration', 'must be an integer', { duration: 5.5 }],
    ['invalid_type (missing)', 'multi_shot.0.prompt', 'is required', { multi_shot: [{ duration: 5 }] }],
    ['invalid_key (too long)', 'metadata.' + 'k'.repeat(65), 'invalid key: must be at most 64 characters', { metadata: { ['k'.repeat(65)]: 'v' } }],
    ['unrecognized key', 'bogus', 'unknown field', { bogus: 1 }],
    ['custom (URL check)', 'start_image_url', 'must be an http(s) URL', { start_image_url: 'ftp://example.com/a.png' }],
    ['custom (refine)', 'start_image_url', 'must not contain a control character', { start_image_url: 'https://example.com/\u0001' }],
    ['custom (refine, ends)', 'start_image_url', 'must not begin or end with white space', { start_image_url: 'https://example.com/a.png ' }],
    ['custom (refine, start)', 'webhook_url', 'must not begin or end with white space', { webhook_url: ' https://example.com/hook' }],
    ['custom (addIssue)', 'end_image_url', 'needs start_image_url', { end_image_url: 'https://example.com/b.png' }],
  ])('%s: %s %s', async (_kind, path, message, change) => {
    const { errors, detail } = await refusal(change);
    expect(errors).toEqual([{ path, message }]);
    expect(detail).toBe(`${path}: ${message}.`);
  });

  it('a required field left out (the model) is "is required", with its choices', async () => {
    const answer = await gw.request('POST', '/v1/videos', { prompt: 'a lighthouse' });
    expect(answer.body.errors).toEqual([{ path: 'model', message: expect.stringMatching(/^is required \(one of kling-v3, kling-v3-omni, .*\)$/) }]);
  });

  it('a lip_sync of neither form names what its closest form lacks', async () => {
    const { errors } = await refusal({ lip_sync: { text: 'hello' } });
    expect(errors).toEqual([{ path: 'lip_sync.voice_id', message: 'is required' }]);
  });

  it.each([
    ['duration', '1e309'],
    ['cfg_scale', '-1e400'],
  ])('a number too large for a double (%s: %s, which JSON.parse reads as infinity) is named as such, not "must be a number (got a number)"', async (field, written) => {
    const answer = await gw.request('POST', '/v1/videos', `{"model":"kling-v3","prompt":"a lighthouse","${field}":${written}}`);
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ path: field, message: 'must be a finite number (got one too large to read)' }]);
  });

  it('shots adding up to more than 15 s are refused before any provider is asked; 15 s is not', async () => {
    const shots = (first: number, second: number) => ({ prompt: undefined, duration: undefined, multi_shot: [{ prompt: 'dawn', duration: first }, { prompt: 'dusk', duration: second }] });
    const { errors, detail } = await refusal(shots(8, 8));
    expect(errors).toEqual([{ path: 'multi_shot', message: 'shots add up to 16 s; at most 15 s' }]);
    expect(detail).toBe('multi_shot: shots add up to 16 s; at most 15 s.');
    expect((await refusal(shots(10, 6), '/v1/videos/quote')).errors).toEqual([{ path: 'multi_shot', message: 'shots add up to 16 s; at most 15 s' }]);
    const fifteen = await gw.request('POST', '/v1/videos/quote', { model: 'kling-v3', ...shots(8, 7) });
    expect(fifteen.status).toBe(200);
  });

  it('a quote is refused in the same words', async () => {
    expect((await refusal({ duration: 16 }, '/v1/videos/quote')).errors).toEqual([{ path: 'duration', message: 'must be at most 15' }]);
  });

  it('detail counts the fields at fault and names the first', async () => {
    const { errors, detail } = await refusal({ prompt: '', duration: 16, bogus: true });
    expect(errors).toEqual([
      { path: 'prompt', message: 'must not be empty' },
      { path: 'duration', message: 'must be at most 15' },
      { path: 'bogus', message: 'unknown field' },
    ]);
    expect(detail).toBe('3 fields are not valid. prompt: must not be empty; and 2 more.');
  });
});

describe('the messages of a refused query', () => {
  it.each([
    ['/v1/videos?limit=0', 'limit', 'must be at least 1'],
    ['/v1/videos?limit=101', 'limit', 'must be at most 100'],
    ['/v1/videos/vid_unknown?wait=1.5', 'wait', 'must be an integer'],
    ['/v1/videos?status=done', 'status', expect.stringMatching(/^must be one of queued, .*succeeded/)],
  ])('%s answers %s %s', async (url, path, message) => {
    const answer = await gw.request('GET', url);
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ path, message }]);
    expect(answer.body.detail).toEqual(typeof message === 'string' ? `${path}: ${message}.` : expect.stringMatching(new RegExp(`^${path}: must be one of`)));
  });

  it('detail counts the parameters at fault', async () => {
    const answer = await gw.request('GET', '/v1/videos?limit=0&status=done');
    expect(answer.body.detail).toBe('2 query parameters are not valid. status: ' + answer.body.errors[0].message + '; and 1 more.');
  });
});

describe('issueMessage, for checks the API schemas do not use today', () => {
  const messageOf = (schema: z.ZodType, value: unknown) => schema.safeParse(value, { error: issueMessage }).error?.issues.map((issue) => issue.message);
  it.each([
    ['not_multiple_of', z.number().multipleOf(5), 7, 'must be a multiple of 5'],
    ['invalid_value (literal)', z.literal('video'), 'image', 'must be video'],
    ['invalid_format (regex)', z.string().regex(/^[a-z]+$/), 'A', 'must match the pattern /^[a-z]+$/'],
    ['invalid_format (uuid)', z.uuid(), 'x', 'must be a UUID'],
    ['too_small exclusive', z.number().gt(0), 0, 'must be greater than 0'],
    ['exact length', z.string().length(2), 'abc', 'must be exactly 2 characters'],
    ['custom without a message', z.string().refine(() => false), 'a', 'is not valid'],
    ['custom with its message', z.string().refine(() => false, 'must be odd'), 'a', 'must be odd'],
    ['invalid_type (null)', z.string(), null, 'must be a string (got null)'],
    ['invalid_type (array)', z.object({}), [], 'must be an object (got an array)'],
  ])('%s', (_kind, schema, value, message) => {
    expect(messageOf(schema, value)).toEqual([message]);
  });
});
