/** Envelope readers: `{data: {...}}` or bare objects, and `{code, message, data}` answers under HTTP 200. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { readCodedEnvelope, unwrapDataEnvelope, type CodedEnvelope } from '../../../src/core/upstream/answer-envelope.js';
import type { UpstreamResponse } from '../../../src/core/upstream/provider.js';
import { UpstreamError } from '../../../src/core/upstream/upstream-error.js';

describe('unwrapDataEnvelope', () => {
  it('takes the object under data, or the body when it is the object itself', () => {
    expect(unwrapDataEnvelope({ data: { task_id: 'a' } }, 'task_id')).toEqual({ task_id: 'a' });
    expect(unwrapDataEnvelope({ task_id: 'a', status: 'x' }, 'task_id')).toEqual({ task_id: 'a', status: 'x' });
    expect(unwrapDataEnvelope({ task_id: 'a', data: { task_id: 'b' } }, 'task_id')).toEqual({ task_id: 'a', data: { task_id: 'b' } });
    expect(unwrapDataEnvelope('{"data":{"task_id":"a"}}', 'task_id')).toEqual({ task_id: 'a' });
  });

  it.each([null, undefined, 'not json', 42, [], [{ task_id: 'a' }]])('gives nothing for %o', (body) => {
    expect(unwrapDataEnvelope(body, 'task_id')).toBeUndefined();
  });
});

const Envelope = z.object({ code: z.number().nullish(), message: z.string().nullish(), data: z.unknown().optional() }).loose();
type Envelope = z.infer<typeof Envelope>;
const ENVELOPE: CodedEnvelope<Envelope> = {
  schema: Envelope,
  errorOf: (envelope) =>
    envelope.code === 0 || envelope.code === undefined || envelope.code === null
      ? undefined
      : { error: { code: 'insufficient_credits', message: envelope.message ?? 'failed', providerCode: String(envelope.code) }, httpStatus: 402 },
};
const Data = z.object({ task_id: z.string() });
const call = { provider: 'demo', operation: 'submit', url: '/create' };

function answer(data: unknown): UpstreamResponse {
  return { status: 200, headers: { 'retry-after': '3' }, data };
}

describe('readCodedEnvelope', () => {
  it('gives the data of a success', () => {
    expect(readCodedEnvelope(call, answer({ code: 0, data: { task_id: 't1' } }), ENVELOPE, Data, 'no task_id')).toEqual({ task_id: 't1' });
  });

  it('turns an error under HTTP 200 into an UpstreamError with the status the provider documents for it', () => {
    const error = (() => {
      try {
        readCodedEnvelope(call, answer({ code: 1102, message: 'pack exhausted' }), ENVELOPE, Data, 'no task_id');
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ code: 'insufficient_credits', statusCode: 402, providerCode: '1102', retryAfterMs: 3000, mayHaveCreated: false });
  });

  it('reports an answer that is no envelope, or has no usable data, as unreadable (maybe created, on a submit)', () => {
    for (const [body, why] of [
      ['<html>', 'not a {code, message, data} envelope'],
      [{ code: 0, data: {} }, 'no task_id'],
    ] as const) {
      expect(() => readCodedEnvelope(call, answer(body), ENVELOPE, Data, 'no task_id')).toThrow(
        expect.objectContaining({ providerCode: 'unreadable_answer', statusCode: 200, mayHaveCreated: true, message: expect.stringContaining(why) }),
      );
    }
  });
});
