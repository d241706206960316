/**
 * The seed's error table → canonical errors, across the body shapes the adapter accepts
 * (the seed shows none), and the HTTP-status fallback.
 */
import { describe, expect, it } from 'vitest';
import { classifyCreateFailure } from '../../../src/core/tasks/failover.js';
import { kling3apiProvider } from '../../../src/providers/kling3api/kling3api-provider.js';
import { served } from './kling3api-fixtures.js';
import { KLING3API_ERROR_CODES, kling3apiEnvelopeStatus, mapKling3apiHttpError, readKling3apiError } from '../../../src/providers/kling3api/kling3api-errors.js';
import type { Kling3apiErrorCode } from '../../../src/providers/kling3api/kling3api-schemas.js';

/** Seed 004 "Error Codes": status, code → the canonical code SPEC and the brief give it. */
const TABLE: [number, Kling3apiErrorCode, string][] = [
  [400, 'INVALID_PROMPT', 'invalid_request'],
  [400, 'INVALID_DURATION', 'invalid_request'],
  [400, 'INVALID_TYPE', 'invalid_request'],
  [400, 'MISSING_IMAGE', 'invalid_request'],
  [400, 'MISSING_VIDEO', 'invalid_request'],
  [401, 'INVALID_API_KEY', 'provider_error'],
  [402, 'INSUFFICIENT_CREDITS', 'insufficient_credits'],
  [429, 'RATE_LIMITED', 'provider_error'],
  [500, 'INTERNAL_ERROR', 'provider_error'],
];

describe('mapKling3apiHttpError', () => {
  it('has exactly the seed table, with its HTTP statuses', () => {
    expect(Object.keys(KLING3API_ERROR_CODES).sort()).toEqual(TABLE.map(([, code]) => code).sort());
    for (const [status, code] of TABLE) expect(KLING3API_ERROR_CODES[code].httpStatus).toBe(status);
  });

  for (const [status, providerCode, canonical] of TABLE) {
    it(`${status} ${providerCode} → ${canonical}, whichever field carries the code`, () => {
      const shapes = [
        { code: providerCode, message: 'upstream says no' },
        { code: status, error: providerCode, message: 'upstream says no' },
        { code: status, error_code: providerCode, message: 'upstream says no' },
        { error: { code: providerCode, message: 'upstream says no' } },
        JSON.stringify({ code: providerCode, message: 'upstream says no' }),
      ];
      for (const body of shapes) {
        expect(mapKling3apiHttpError(status, body)).toStrictEqual({ code: canonical, message: `kling3api (${providerCode}): upstream says no`, providerCode });
      }
    });
  }

  it('names kling3api and the code it gave in every message, since the message is the task error a caller reads', () => {
    expect(mapKling3apiHttpError(402, { code: 'INSUFFICIENT_CREDITS', message: 'Not enough credits for this operation' }).message).toBe(
      'kling3api (INSUFFICIENT_CREDITS): Not enough credits for this operation',
    );
    expect(mapKling3apiHttpError(422, { code: 422, message: 'bad field' }).message).toBe('kling3api (code 422): bad field');
    expect(mapKling3apiHttpError(503, '<html>Bad gateway</html>').message).toBe('kling3api (HTTP 503): an HTML page (Bad gateway)');
  });

  it("reads a seed code given as the envelope's message ({code: 400, message: 'INVALID_DURATION'}, the success envelope's shape), saying the seed's description", () => {
    expect(mapKling3apiHttpError(400, { code: 400, message: 'INVALID_DURATION', data: null })).toStrictEqual({
      code: 'invalid_request',
      message: 'kling3api (INVALID_DURATION): Duration out of supported range',
      providerCode: 'INVALID_DURATION',
    });
    // The code decides, as it does in `code`: credits run out, though the status says 400.
    expect(mapKling3apiHttpError(400, { code: 400, message: ' insufficient_credits ' })).toMatchObject({ code: 'insufficient_credits', providerCode: 'INSUFFICIENT_CREDITS' });
    expect(kling3apiEnvelopeStatus({ code: 500, message: 'RATE_LIMITED', data: null })).toBe(429);
    // A message that is not a seed code stays the message.
    expect(mapKling3apiHttpError(400, { code: 400, message: 'DURATION' })).toStrictEqual({ code: 'invalid_request', message: 'kling3api (code 400): DURATION' });
  });

  it('uses the seed description when the body has a code but no message', () => {
    expect(mapKling3apiHttpError(400, { code: 'MISSING_VIDEO' })).toStrictEqual({
      code: 'invalid_request',
      message: 'kling3api (MISSING_VIDEO): Video is required for video-edit tasks',
      providerCode: 'MISSING_VIDEO',
    });
  });

  it('trusts the code over the status when they disagree (a 200-envelope 402 read as 400)', () => {
    expect(mapKling3apiHttpError(400, { code: 'INSUFFICIENT_CREDITS' }).code).toBe('insufficient_credits');
    expect(mapKling3apiHttpError(500, { code: 'invalid_prompt', message: 'empty' }).code).toBe('invalid_request');
  });

  it('falls back on the HTTP status for unknown codes and unreadable bodies', () => {
    expect(mapKling3apiHttpError(404, { code: 'TASK_NOT_FOUND', message: 'Task not found' })).toStrictEqual({
      code: 'invalid_request',
      message: 'kling3api (TASK_NOT_FOUND): Task not found',
      providerCode: 'TASK_NOT_FOUND',
    });
    expect(mapKling3apiHttpError(402, {})).toStrictEqual({ code: 'insufficient_credits', message: 'kling3api answered HTTP 402' });
    expect(mapKling3apiHttpError(503, '<html>Bad gateway</html>')).toStrictEqual({
      code: 'provider_error',
      message: 'kling3api (HTTP 503): an HTML page (Bad gateway)',
    });
    expect(mapKling3apiHttpError(500, '')).toStrictEqual({ code: 'provider_error', message: 'kling3api answered HTTP 500' });
    expect(mapKling3apiHttpError(429, '   ')).toStrictEqual({ code: 'provider_error', message: 'kling3api answered HTTP 429' });
    expect(mapKling3apiHttpError(502, null).code).toBe('provider_error');
    expect(mapKling3apiHttpError(422, { code: 422, message: 'bad field' })).toStrictEqual({
      code: 'invalid_request',
      message: 'kling3api (code 422): bad field',
    });
  });

  it('reads an error body that is not JSON for its words, as the other adapters do: plain text as it came, an HTML page by its title', () => {
    expect(mapKling3apiHttpError(429, 'Too many requests, slow down')).toStrictEqual({
      code: 'provider_error',
      message: 'kling3api (HTTP 429): Too many requests, slow down',
    });
    expect(mapKling3apiHttpError(502, '<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>')).toStrictEqual({
      code: 'provider_error',
      message: 'kling3api (HTTP 502): an HTML page (502 Bad Gateway)',
    });
    // A refusal of the content said in plain text is that refusal, not a malformed request.
    expect(mapKling3apiHttpError(400, 'The prompt violates our content policy')).toStrictEqual({
      code: 'content_policy',
      message: 'kling3api (HTTP 400): The prompt violates our content policy',
    });
    // Still only a 4xx refusal of the request may be one of its content.
    expect(mapKling3apiHttpError(503, 'content moderation service unavailable').code).toBe('provider_error');
  });

  it('reads a request rejection worded as content policy / safety as content_policy', () => {
    expect(mapKling3apiHttpError(400, { code: 'INVALID_PROMPT', message: 'Prompt violates our content policy' })).toStrictEqual({
      code: 'content_policy',
      message: 'kling3api (INVALID_PROMPT): Prompt violates our content policy',
      providerCode: 'INVALID_PROMPT',
    });
    expect(mapKling3apiHttpError(400, { message: 'Image failed the safety check' }).code).toBe('content_policy');
    expect(mapKling3apiHttpError(400, { code: 'MODERATION_BLOCKED', message: 'Sensitive content' }).code).toBe('content_policy');
  });

  it('reads a rejection whose code (not its message) names content policy as content_policy, so it is never failed over', () => {
    expect(mapKling3apiHttpError(400, { code: 'CONTENT_POLICY_VIOLATION', message: 'Request rejected' })).toStrictEqual({
      code: 'content_policy',
      message: 'kling3api (CONTENT_POLICY_VIOLATION): Request rejected',
      providerCode: 'CONTENT_POLICY_VIOLATION',
    });
    expect(mapKling3apiHttpError(422, { code: 422, error: 'NSFW_CONTENT', message: 'Cannot process this request' }).code).toBe('content_policy');
    // A code the seed's table gives keeps its meaning.
    expect(mapKling3apiHttpError(400, { code: 'INVALID_PROMPT', message: 'Request rejected' }).code).toBe('invalid_request');
  });

  it('reads the code and message under `detail` (a framework\'s error body), so a policy refusal there is content_policy', () => {
    expect(mapKling3apiHttpError(400, { detail: 'Prompt violates the content policy' })).toStrictEqual({
      code: 'content_policy',
      message: 'kling3api (HTTP 400): Prompt violates the content policy',
    });
    expect(mapKling3apiHttpError(400, { detail: { code: 'INSUFFICIENT_CREDITS', message: 'Not enough credits' } })).toStrictEqual({
      code: 'insufficient_credits',
      message: 'kling3api (INSUFFICIENT_CREDITS): Not enough credits',
      providerCode: 'INSUFFICIENT_CREDITS',
    });
    expect(mapKling3apiHttpError(422, { detail: [{ loc: ['body', 'duration'], msg: 'must be at most 15' }] })).toStrictEqual({
      code: 'invalid_request',
      message: 'kling3api (HTTP 422): must be at most 15',
    });
  });

  it('never reads auth, credit or rate-limit answers as content policy, whatever they say', () => {
    expect(mapKling3apiHttpError(401, { code: 'INVALID_API_KEY', message: 'key violates policy' }).code).toBe('provider_error');
    expect(mapKling3apiHttpError(402, { message: 'prohibited: no credits' }).code).toBe('insufficient_credits');
    expect(mapKling3apiHttpError(429, { message: 'safety throttle' }).code).toBe('provider_error');
    expect(mapKling3apiHttpError(500, { code: 'INTERNAL_ERROR', message: 'safety service down' }).code).toBe('provider_error');
  });

  it('reads an outage (5xx) whose text speaks of moderation or safety as the outage it is, so the task is failed over, not failed as content_policy', async () => {
    // The document's Error body has no required field: a 500 or 503 may say only its message.
    expect(mapKling3apiHttpError(500, { message: 'Content moderation service unavailable' }).code).toBe('provider_error');
    expect(mapKling3apiHttpError(503, { message: 'safety check timed out' }).code).toBe('provider_error');
    // The same under HTTP 200, as the document allows (`code` other than 200 is an error): the create goes elsewhere.
    const { request, offering } = served({ model: 'kling-v3', prompt: 'a red fox in snow' });
    const http = { send: async () => ({ status: 200, headers: {}, data: { code: 500, message: 'Content moderation service unavailable' } }) };
    const error = await kling3apiProvider.submit(request, offering, { http, taskId: 't', attemptKey: 't-1' }).catch((caught: unknown) => caught);
    expect(classifyCreateFailure(error, false)).toMatchObject({ failover: true, reason: 'server_error', code: 'provider_error' });
    // A code that names no status is no outage: its wording still says the content was refused.
    const refusal = { send: async () => ({ status: 200, headers: {}, data: { code: 1, message: 'Prompt violates the content policy' } }) };
    const refused = await kling3apiProvider.submit(request, offering, { http: refusal, taskId: 't', attemptKey: 't-2' }).catch((caught: unknown) => caught);
    expect(classifyCreateFailure(refused, false)).toMatchObject({ failover: false, code: 'content_policy' });
  });
});

describe('readKling3apiError', () => {
  it('separates a numeric code from a string code', () => {
    expect(readKling3apiError({ code: 429, error: 'RATE_LIMITED', message: 'slow down' })).toStrictEqual({
      providerCode: 'RATE_LIMITED',
      numericCode: 429,
      message: 'slow down',
    });
    expect(readKling3apiError({ code: '402', message: 'no credits' })).toStrictEqual({ numericCode: 402, message: 'no credits' });
    expect(readKling3apiError('not json')).toStrictEqual({ message: 'not json' });
    expect(readKling3apiError('')).toStrictEqual({});
  });
});

describe('kling3apiEnvelopeStatus', () => {
  it('gives the seed status for a known code, the numeric code otherwise, else 502', () => {
    expect(kling3apiEnvelopeStatus({ code: 'INSUFFICIENT_CREDITS', message: 'x' })).toBe(402);
    expect(kling3apiEnvelopeStatus({ code: 401, error: 'INVALID_API_KEY' })).toBe(401);
    expect(kling3apiEnvelopeStatus({ code: 429, message: 'slow down' })).toBe(429);
    expect(kling3apiEnvelopeStatus({ code: 'SOMETHING_NEW', message: 'x' })).toBe(502);
    expect(kling3apiEnvelopeStatus({ code: 0, message: 'x' })).toBe(502);
  });
});
