/**
 * A validation problem lists at most 50 fields at fault in `errors[]`, the first ones in order,
 * and says in `detail` how many more there were. A create with thousands of unknown fields (or
 * thousands of invalid items) used to answer one entry per field: a problem of half a megabyte
 * that clients echo into their logs. (An array's items are not the way: each array has a
 * `max` that refuses a long one with one error before its items are read.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/harness.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw.close();
});

const base = { model: 'kling-v3', prompt: 'a lighthouse in a storm', duration: 5 };
const key = (index: number) => `x${String(index).padStart(5, '0')}`;

/** A POST whose answer is read as the bytes that came back. */
async function post(path: string, body: unknown): Promise<{ status: number; bytes: number; problem: any }> {
  const answer = await gw.request('POST', path, body);
  return { status: answer.status, bytes: Buffer.byteLength(JSON.stringify(answer.body)), problem: answer.body };
}

describe('errors[] of a validation problem', () => {
  it.each(['/v1/videos', '/v1/videos/quote'])('POST %s with 10,000 unknown fields lists the first 50 and counts the rest in detail', async (path) => {
    const body: Record<string, unknown> = { ...base };
    for (let index = 0; index < 10_000; index += 1) body[key(index)] = index;
    const answer = await post(path, body);
    expect(answer.status).toBe(400);
    expect(answer.problem.type).toMatch(/\/validation$/);
    expect(answer.problem.errors).toEqual(Array.from({ length: 50 }, (_, index) => ({ path: key(index), message: 'unknown field' })));
    expect(answer.problem.detail).toBe('10,000 fields are not valid. x00000: unknown field; and 9,999 more. Only the first 50 errors are listed … and 9,950 more.');
    expect(answer.bytes).toBeLessThan(5_000);
  });

  it('unknown fields in a nested object are listed by their paths, the first 50 of them', async () => {
    const routing: Record<string, unknown> = { strategy: 'priority' };
    for (let index = 0; index < 2_000; index += 1) routing[key(index)] = true;
    const answer = await post('/v1/videos', { ...base, routing });
    expect(answer.status).toBe(400);
    expect(answer.problem.errors).toEqual(Array.from({ length: 50 }, (_, index) => ({ path: `routing.${key(index)}`, message: 'unknown field' })));
    expect(answer.problem.detail).toBe('2,000 fields are not valid. routing.x00000: unknown field; and 1,999 more. Only the first 50 errors are listed … and 1,950 more.');
  });

  it('a field name of 10 kB is named by its first 200 characters, so twenty of them (a 200 kB body) answer a few kB, not 200 kB', async () => {
    const body: Record<string, unknown> = { ...base };
    const long = (index: number) => `${key(index)}${'y'.repeat(10_000)}`;
    for (let index = 0; index < 20; index += 1) body[long(index)] = index;
    const answer = await post('/v1/videos', body);
    expect(answer.status).toBe(400);
    expect(answer.problem.errors).toHaveLength(20);
    expect(answer.problem.errors[0]).toEqual({ path: `${long(0).slice(0, 200)}…`, message: 'unknown field' });
    expect(answer.bytes).toBeLessThan(10_000);
  });

  it('50 errors or fewer are all listed, and detail only counts them', async () => {
    const body: Record<string, unknown> = { ...base };
    for (let index = 0; index < 50; index += 1) body[key(index)] = index;
    const answer = await post('/v1/videos', body);
    expect(answer.problem.errors).toHaveLength(50);
    expect(answer.problem.detail).toBe('50 fields are not valid. x00000: unknown field; and 49 more.');
  });

  it('the API document says errors[] holds at most 50', async () => {
    const document = await gw.request('GET', '/openapi.json', undefined, {}, null);
    const errors = document.body.components.schemas.ProblemDetails.properties.errors;
    expect(errors.maxItems).toBe(50);
    expect(errors.description).toContain('first 50');
  });
});
