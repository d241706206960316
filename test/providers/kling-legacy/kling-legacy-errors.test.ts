import { describe, expect, it } from 'vitest';
import {
  KLING_LEGACY_ERROR_CODES,
  klingLegacyEnvelopeError,
  klingLegacyErrorRow,
  mapKlingLegacyHttpError,
} from '../../../src/providers/kling-legacy/kling-legacy-errors.js';

const envelope = (code: number, message = 'upstream says no') => ({ code, message, request_id: 'req-1' });

describe('KLING_LEGACY_ERROR_CODES (official "Error Code" table)', () => {
  it.each([
    [[1000, 1001, 1002, 1003, 1004], 401, 'provider_error'],
    [[1100, 1101, 1102], 429, 'insufficient_credits'],
    [[1103], 403, 'provider_error'],
    [[1200, 1201], 400, 'invalid_request'],
    [[1202, 1203], 404, 'invalid_request'],
    [[1300, 1301], 400, 'content_policy'],
    [[1302, 1303, 1304], 429, 'provider_error'],
    [[5000], 500, 'provider_error'],
    [[5001], 503, 'provider_error'],
    [[5002], 504, 'provider_error'],
  ] as const)('codes %j answer HTTP %i and map to %s', (codes, httpStatus, code) => {
    for (const serviceCode of codes) {
      expect(KLING_LEGACY_ERROR_CODES[serviceCode]).toMatchObject({ httpStatus, code });
    }
  });

  it('places unknown codes by family', () => {
    expect(klingLegacyErrorRow(1099)).toMatchObject({ httpStatus: 401, code: 'provider_error' });
    expect(klingLegacyErrorRow(1250)).toMatchObject({ httpStatus: 400, code: 'invalid_request' });
    expect(klingLegacyErrorRow(1399)).toMatchObject({ httpStatus: 429, code: 'provider_error' });
    expect(klingLegacyErrorRow(9999)).toMatchObject({ httpStatus: 500, code: 'provider_error' });
  });
});

describe('mapKlingLegacyHttpError', () => {
  it.each([
    [401, 1000, 'provider_error'],
    [401, 1004, 'provider_error'],
    [429, 1102, 'insufficient_credits'],
    [429, 1101, 'insufficient_credits'],
    [403, 1103, 'provider_error'],
    [400, 1201, 'invalid_request'],
    [404, 1203, 'invalid_request'],
    [400, 1301, 'content_policy'],
    [400, 1300, 'content_policy'],
    [429, 1302, 'provider_error'],
    [429, 1303, 'provider_error'],
    [500, 5000, 'provider_error'],
    [503, 5001, 'provider_error'],
    [504, 5002, 'provider_error'],
  ] as const)('HTTP %i with code %i → %s, keeping the code', (status, serviceCode, code) => {
    const mapped = mapKlingLegacyHttpError(status, envelope(serviceCode));
    expect(mapped.code).toBe(code);
    expect(mapped.providerCode).toBe(String(serviceCode));
    expect(mapped.message).toContain(String(serviceCode));
    expect(mapped.message).toContain('upstream says no');
  });

  it('trusts the service code over the status (a 429 with 1102 is credits, not a rate limit)', () => {
    expect(mapKlingLegacyHttpError(429, envelope(1102)).code).toBe('insufficient_credits');
    expect(mapKlingLegacyHttpError(500, { code: '1301', message: 'risk' }).code).toBe('content_policy');
  });

  it('falls back to the HTTP status without an envelope', () => {
    expect(mapKlingLegacyHttpError(502, '<html>Bad Gateway</html>')).toEqual({
      code: 'provider_error',
      message: 'kling-legacy answered HTTP 502: an HTML page (Bad Gateway)',
    });
    expect(mapKlingLegacyHttpError(503, '<html><head><title>503 Service Temporarily Unavailable</title></head><body><h1>503</h1></body></html>').message).toBe(
      'kling-legacy answered HTTP 503: an HTML page (503 Service Temporarily Unavailable)',
    );
    expect(mapKlingLegacyHttpError(404, undefined).code).toBe('invalid_request');
    expect(mapKlingLegacyHttpError(402, {}).code).toBe('insufficient_credits');
    expect(mapKlingLegacyHttpError(401, { message: 'Unauthorized' })).toEqual({
      code: 'provider_error',
      message: 'kling-legacy answered HTTP 401: Unauthorized',
    });
  });
});

describe('an error in the OpenAI form an aggregator answers with (`{error: {message, code}}`)', () => {
  const quota = { error: { message: 'insufficient user quota: 0.12 left, 0.50 needed', type: 'new_api_error', param: '', code: 'insufficient_user_quota' } };

  it('says what the aggregator said, and an exhausted quota is insufficient_credits under 401, 402, 403 or 429', () => {
    for (const status of [401, 403, 429]) {
      expect(mapKlingLegacyHttpError(status, quota)).toEqual({
        code: 'insufficient_credits',
        message: `kling-legacy answered HTTP ${status} (code insufficient_user_quota): insufficient user quota: 0.12 left, 0.50 needed`,
        providerCode: 'insufficient_user_quota',
      });
    }
  });

  it('reads an exhausted quota from the code alone when the message does not say it', () => {
    const preConsume = { error: { message: 'pre-consume quota failed, user quota: 0.12, need quota: 0.50', type: 'new_api_error', code: 'insufficient_user_quota' } };
    expect(mapKlingLegacyHttpError(403, preConsume)).toEqual({
      code: 'insufficient_credits',
      message: 'kling-legacy answered HTTP 403 (code insufficient_user_quota): pre-consume quota failed, user quota: 0.12, need quota: 0.50',
      providerCode: 'insufficient_user_quota',
    });
  });

  it('keeps any other error by its status, with its message', () => {
    expect(mapKlingLegacyHttpError(401, { error: { message: 'invalid token', type: 'new_api_error', code: 'invalid_api_key' } })).toEqual({
      code: 'provider_error',
      message: 'kling-legacy answered HTTP 401 (code invalid_api_key): invalid token',
      providerCode: 'invalid_api_key',
    });
    expect(mapKlingLegacyHttpError(429, { error: { message: 'too many requests', code: 'rate_limit_exceeded' } }).code).toBe('provider_error');
  });
});

describe('a refusal of the content worded in a request-class answer (the core\'s one rule)', () => {
  const refusal = 'Prompt contains sensitive content, failure to pass the risk control system';

  it('is content_policy under a 1200-1203 code, with or without HTTP 200, so it is never failed over', () => {
    for (const serviceCode of [1200, 1201]) {
      expect(mapKlingLegacyHttpError(400, envelope(serviceCode, refusal))).toMatchObject({ code: 'content_policy', providerCode: String(serviceCode) });
      expect(klingLegacyEnvelopeError({}, envelope(serviceCode, refusal))).toMatchObject({
        error: { code: 'content_policy', providerCode: String(serviceCode) },
        httpStatus: 400,
      });
    }
  });

  it('is content_policy in a 4xx answer without a service code', () => {
    expect(mapKlingLegacyHttpError(400, { message: refusal }).code).toBe('content_policy');
    expect(mapKlingLegacyHttpError(400, `<html>${refusal}</html>`).code).toBe('content_policy');
  });

  it('changes nothing where the status or code is about the account, throttling or an outage', () => {
    expect(mapKlingLegacyHttpError(401, envelope(1000, refusal)).code).toBe('provider_error');
    expect(mapKlingLegacyHttpError(429, envelope(1102, refusal)).code).toBe('insufficient_credits');
    expect(mapKlingLegacyHttpError(429, envelope(1303, refusal)).code).toBe('provider_error');
    expect(mapKlingLegacyHttpError(403, { message: refusal }).code).toBe('provider_error');
    expect(mapKlingLegacyHttpError(429, { message: refusal }).code).toBe('provider_error');
    expect(mapKlingLegacyHttpError(502, { message: refusal }).code).toBe('provider_error');
    expect(mapKlingLegacyHttpError(500, envelope(5000, refusal)).code).toBe('provider_error');
    expect(mapKlingLegacyHttpError(400, envelope(1201, 'duration must be 5 or 10')).code).toBe('invalid_request');
  });
});

describe('a code outside the official scheme in a non-2xx answer', () => {
  it('is read by the HTTP status, keeping the code', () => {
    expect(mapKlingLegacyHttpError(400, { code: 400, message: 'prompt is required' })).toEqual({
      code: 'invalid_request',
      message: 'kling-legacy answered HTTP 400 (code 400): prompt is required',
      providerCode: '400',
    });
    expect(mapKlingLegacyHttpError(402, { code: -1, message: 'quota exhausted' })).toMatchObject({ code: 'insufficient_credits', providerCode: '-1' });
    expect(mapKlingLegacyHttpError(400, { code: 400, message: 'risk control: sensitive prompt' }).code).toBe('content_policy');
    expect(mapKlingLegacyHttpError(500, { code: 'internal', message: 'boom' }).code).toBe('provider_error');
  });

  it('keeps the official families and codes as they are', () => {
    expect(mapKlingLegacyHttpError(400, envelope(1250)).code).toBe('invalid_request');
    expect(mapKlingLegacyHttpError(429, envelope(1102)).code).toBe('insufficient_credits');
    expect(mapKlingLegacyHttpError(500, envelope(5003)).code).toBe('provider_error');
    // A server-family code outside the table is the server's error, whatever status carried it.
    expect(mapKlingLegacyHttpError(400, envelope(5003))).toMatchObject({ code: 'provider_error', providerCode: '5003' });
  });
});
