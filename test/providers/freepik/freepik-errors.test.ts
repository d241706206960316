/**
 * `mapFreepikHttpError` on its own: the bodies of seed 001 and the edge cases of the
 * content-policy and credits heuristics. The same mapping over real HTTP is in
 * freepik-provider.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { describeFreepikError, mapFreepikHttpError } from '../../../src/providers/freepik/freepik-errors.js';

describe('mapFreepikHttpError', () => {
  it('reads the plain 400 body', () => {
    expect(mapFreepikHttpError(400, { message: "Parameter ':attribute' is not valid" })).toEqual({
      code: 'invalid_request',
      message: "Freepik answered 400: Parameter ':attribute' is not valid",
      providerCode: 'bad_request',
    });
  });

  it('names the invalid params of the problem form as the seed example has it (top level)', () => {
    const mapped = mapFreepikHttpError(400, {
      message: "Your request parameters didn't validate.",
      invalid_params: [
        { name: 'page', reason: "Parameter 'page' must be greater than 0" },
        { name: 'per_page', reason: "Parameter 'per_page' must be greater than 0" },
      ],
    });
    expect(mapped.code).toBe('invalid_request');
    expect(mapped.message).toBe(
      "Freepik answered 400: Your request parameters didn't validate. (page: Parameter 'page' must be greater than 0; per_page: Parameter 'per_page' must be greater than 0)",
    );
  });

  it('names the invalid params of the problem form as the seed schema has it (under problem)', () => {
    const mapped = mapFreepikHttpError(400, {
      problem: { message: "Your request parameters didn't validate.", invalid_params: [{ name: 'duration', reason: 'must be one of 3-15' }] },
    });
    expect(mapped).toEqual({
      code: 'invalid_request',
      message: "Freepik answered 400: Your request parameters didn't validate. (duration: must be one of 3-15)",
      providerCode: 'bad_request',
    });
  });

  it.each([
    [401, { message: 'Invalid API key' }, 'provider_error', 'unauthorized'],
    [401, { message: 'Missing API key' }, 'provider_error', 'unauthorized'],
    [402, { message: 'Payment required' }, 'insufficient_credits', 'insufficient_credits'],
    [403, { message: 'Insufficient credits' }, 'insufficient_credits', 'insufficient_credits'],
    // The seed documents no credits answer: a 400, one of the statuses it does document, that
    // says so is one too (the problem form's reason included).
    [400, { message: 'Insufficient credits to run this generation.' }, 'insufficient_credits', 'insufficient_credits'],
    [400, { message: 'Not enough credits' }, 'insufficient_credits', 'insufficient_credits'],
    [400, { message: "Your request parameters didn't validate.", invalid_params: [{ name: 'credits', reason: 'Insufficient balance' }] }, 'insufficient_credits', 'insufficient_credits'],
    [403, { message: 'Forbidden' }, 'provider_error', 'forbidden'],
    [404, { message: 'Not found' }, 'invalid_request', 'not_found'],
    [429, { message: 'Too many requests' }, 'provider_error', 'rate_limited'],
    [500, { message: 'Internal Server Error' }, 'provider_error', 'server_error'],
    [502, '<html>Bad gateway</html>', 'provider_error', 'server_error'],
    [503, { message: 'Service Unavailable. Please try again later.' }, 'provider_error', 'unavailable'],
    [422, { message: 'Unprocessable' }, 'invalid_request', 'http_422'],
  ] as const)('%i %o → %s (%s)', (status, body, code, providerCode) => {
    const mapped = mapFreepikHttpError(status, body);
    expect(mapped.code).toBe(code);
    expect(mapped.providerCode).toBe(providerCode);
  });

  it.each([
    { message: 'Your prompt violates our content policy' },
    { message: 'NSFW content is not allowed' },
    { problem: { message: 'Rejected', invalid_params: [{ name: 'prompt', reason: 'flagged by the safety filter' }] } },
  ])('reads a 4xx about content as content_policy: %o', (body) => {
    expect(mapFreepikHttpError(400, body).code).toBe('content_policy');
  });

  it('says an HTML error page (a proxy in front of Freepik) by its title, not its markup', () => {
    const page = '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
    expect(mapFreepikHttpError(502, page).message).toBe('Freepik answered 502: an HTML page (502 Bad Gateway)');
    expect(mapFreepikHttpError(503, '<!DOCTYPE html><html><body><p>Service   Unavailable</p></body></html>').message).toBe(
      'Freepik answered 503: an HTML page (Service Unavailable)',
    );
    // Plain text stays as it came.
    expect(mapFreepikHttpError(500, 'upstream connect error').message).toBe('Freepik answered 500: upstream connect error');
  });

  it('keeps a 5xx that mentions safety an outage (it must stay eligible for failover)', () => {
    expect(mapFreepikHttpError(503, { message: 'Safety service unavailable' }).code).toBe('provider_error');
  });

  it('keeps the message when the body is not JSON or empty', () => {
    expect(mapFreepikHttpError(500, 'upstream exploded').message).toBe('Freepik answered 500: upstream exploded');
    expect(mapFreepikHttpError(500, undefined).message).toBe('Freepik answered 500: server error');
  });
});

describe('describeFreepikError', () => {
  it('survives an invalid_params that is not a list', () => {
    expect(describeFreepikError({ message: 'Bad', invalid_params: 'prompt' })).toBe('Bad');
  });
});
