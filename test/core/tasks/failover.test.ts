/**
 * `classifyCreateFailure` for every case of SPEC §3: fail over only when the upstream certainly
 * did not accept the task, never on a content-policy rejection, and treat anything that may
 * have created a task upstream as ambiguous (not failed over, unless configured for timeouts).
 */
import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../../src/core/model/canonical.js';
import { classifyCreateFailure } from '../../../src/core/tasks/failover.js';
import { CircuitBreakerOpenError, isProviderHealthFailure } from '../../../src/core/upstream/provider-runtime.js';
import { unreadableAnswer, UpstreamError, type UpstreamErrorInit } from '../../../src/core/upstream/upstream-error.js';

function upstream(init: Partial<UpstreamErrorInit> & { code: ErrorCode }): UpstreamError {
  return new UpstreamError({
    provider: 'freepik',
    operation: 'submit',
    url: '/v1/ai/video/kling-v3-pro',
    message: 'upstream said no',
    ...init,
  });
}

function answered(statusCode: number, code: ErrorCode, providerCode?: string): UpstreamError {
  return upstream({
    statusCode,
    code,
    message: `Freepik answered ${statusCode}`,
    ...(providerCode ? { providerCode } : {}),
  });
}

describe('classifyCreateFailure: certainly not accepted, so fail over', () => {
  it.each([
    ['connection refused', 'connection_refused', upstream({ code: 'provider_error', transport: 'refused' })],
    ['no connection within the connect limit', 'connect_timeout', upstream({ code: 'provider_error', transport: 'connect_timeout' })],
    ['connection broken before the request was fully written', 'not_sent', upstream({ code: 'provider_error', transport: 'not_sent' })],
    ['429', 'rate_limited', answered(429, 'provider_error', 'rate_limited')],
    ['500', 'server_error', answered(500, 'provider_error', 'server_error')],
    ['502', 'server_error', answered(502, 'provider_error')],
    ['503', 'server_error', answered(503, 'provider_error', 'unavailable')],
    ['401', 'unauthorized', answered(401, 'provider_error', 'unauthorized')],
    ['403', 'unauthorized', answered(403, 'provider_error', 'forbidden')],
    ['402', 'insufficient_credits', answered(402, 'insufficient_credits')],
    ['402 mapped to a plain provider_error', 'insufficient_credits', answered(402, 'provider_error')],
    ['403 saying insufficient credits', 'insufficient_credits', answered(403, 'insufficient_credits', 'insufficient_credits')],
    ['a 400 whose body says insufficient credits', 'insufficient_credits', answered(400, 'insufficient_credits', '1102')],
    ['400 invalid_request', 'invalid_request', answered(400, 'invalid_request', 'bad_request')],
    ['422 invalid_request', 'invalid_request', answered(422, 'invalid_request')],
    ['any other error answer', 'rejected', answered(404, 'provider_error')],
  ] as const)('%s → failover (%s)', (_label, reason, error) => {
    const decision = classifyCreateFailure(error, false);
    expect(decision).toMatchObject({ failover: true, outcome: 'failed', reason });
  });

  it('keeps the canonical code, HTTP status, provider code and message for the attempt record', () => {
    const decision = classifyCreateFailure(answered(402, 'insufficient_credits', 'INSUFFICIENT_CREDITS'), false);
    expect(decision).toEqual({
      failover: true,
      outcome: 'failed',
      reason: 'insufficient_credits',
      code: 'insufficient_credits',
      message: 'Freepik answered 402',
      httpStatus: 402,
      providerCode: 'INSUFFICIENT_CREDITS',
      provider: 'freepik',
    });
  });

  it('has no HTTP status for a refused connection', () => {
    const decision = classifyCreateFailure(upstream({ code: 'provider_error', transport: 'refused' }), false);
    expect(decision.httpStatus).toBeNull();
    expect(decision.providerCode).toBeNull();
    expect(decision.code).toBe('provider_error');
  });

  it('does not need failover_on_timeout to fail over a certain failure', () => {
    expect(classifyCreateFailure(answered(503, 'provider_error'), true).failover).toBe(true);
  });
});

describe('classifyCreateFailure: content policy is never failed over', () => {
  it('a 400 content-policy rejection ends the task with content_policy', () => {
    const decision = classifyCreateFailure(answered(400, 'content_policy', 'content_policy'), true);
    expect(decision).toMatchObject({
      failover: false,
      outcome: 'failed',
      reason: 'content_policy',
      code: 'content_policy',
      httpStatus: 400,
      providerCode: 'content_policy',
    });
  });

  it('a content-policy code wins over a status that would otherwise fail over', () => {
    expect(classifyCreateFailure(answered(500, 'content_policy'), true).failover).toBe(false);
    expect(classifyCreateFailure(answered(403, 'content_policy'), true).failover).toBe(false);
  });
});

describe('classifyCreateFailure: ambiguous (the task may exist upstream)', () => {
  const timeout = upstream({ code: 'timeout', transport: 'timeout', message: 'freepik did not answer within 30000 ms' });

  it('a timeout after the request was sent is not failed over by default, and says why', () => {
    const decision = classifyCreateFailure(timeout, false);
    expect(decision).toMatchObject({ failover: false, outcome: 'ambiguous', reason: 'timeout', code: 'timeout' });
    expect(decision.message).toBe(
      'freepik did not answer within 30000 ms; the task may have been created (and billed) upstream, so it was not sent to another provider',
    );
  });

  it('a connection dropped after the request was written is ambiguous like a timeout, never failed over by default', () => {
    const dropped = upstream({ code: 'provider_error', transport: 'reset', message: 'freepik closed the connection without an answer after the request was sent' });
    expect(classifyCreateFailure(dropped, false)).toMatchObject({ failover: false, outcome: 'ambiguous', reason: 'connection_reset' });
    expect(classifyCreateFailure(dropped, true)).toMatchObject({ failover: true, outcome: 'ambiguous', reason: 'connection_reset' });
  });

  it('a timeout is failed over with failover_on_timeout, still recorded as ambiguous', () => {
    const decision = classifyCreateFailure(timeout, true);
    expect(decision).toMatchObject({ failover: true, outcome: 'ambiguous', reason: 'timeout', code: 'timeout' });
    expect(decision.message).toContain('failover_on_timeout');
  });

  it('a 2xx answer that could not be read (mayHaveCreated) is never failed over, even with failover_on_timeout', () => {
    const unreadable = upstream({
      code: 'provider_error',
      statusCode: 200,
      mayHaveCreated: true,
      message: 'freepik answered 200 without a task id',
    });
    for (const failoverOnTimeout of [false, true]) {
      const decision = classifyCreateFailure(unreadable, failoverOnTimeout);
      expect(decision).toMatchObject({
        failover: false,
        outcome: 'ambiguous',
        reason: 'unexpected_reply',
        code: 'provider_error',
        httpStatus: 200,
      });
      expect(decision.message).toBe(
        'freepik answered 200 without a task id; the provider may have created the task, so it was not sent to another provider',
      );
    }
  });

  it('a 2xx status on an UpstreamError is ambiguous even without mayHaveCreated', () => {
    const decision = classifyCreateFailure(upstream({ code: 'provider_error', statusCode: 201 }), true);
    expect(decision).toMatchObject({ failover: false, outcome: 'ambiguous', reason: 'unexpected_reply' });
  });

  it('mayHaveCreated wins over a status that would otherwise fail over', () => {
    const decision = classifyCreateFailure(
      upstream({ code: 'provider_error', statusCode: 502, mayHaveCreated: true }),
      true,
    );
    expect(decision.failover).toBe(false);
    expect(decision.outcome).toBe('ambiguous');
  });

  it.each([
    ['an Error the adapter threw', new TypeError("Cannot read properties of undefined (reading 'task_id')"), "unreadable answer: Cannot read properties of undefined (reading 'task_id')"],
    ['a thrown string', 'boom', 'unreadable answer: boom'],
  ])('%s is ambiguous: no failover, provider_error', (_label, error, message) => {
    for (const failoverOnTimeout of [false, true]) {
      expect(classifyCreateFailure(error, failoverOnTimeout)).toEqual({
        failover: false,
        outcome: 'ambiguous',
        reason: 'unexpected_reply',
        code: 'provider_error',
        message,
        httpStatus: null,
        providerCode: null,
        provider: null,
      });
    }
  });
});

describe('classifyCreateFailure: open circuit', () => {
  it('skips the provider without calling it, and moves on', () => {
    const decision = classifyCreateFailure(new CircuitBreakerOpenError('kling3api'), false);
    expect(decision).toEqual({
      failover: true,
      outcome: 'skipped',
      reason: 'circuit_open',
      code: 'no_provider_available',
      message: 'circuit open for kling3api: recent calls failed; not calling it until a probe succeeds',
      httpStatus: null,
      providerCode: null,
      provider: 'kling3api',
    });
  });
});

describe('isProviderHealthFailure: what counts towards opening a circuit', () => {
  it('counts outages, bad credentials, no credits and unreadable 2xx answers', () => {
    expect(isProviderHealthFailure(answered(503, 'provider_error'))).toBe(true);
    expect(isProviderHealthFailure(answered(401, 'provider_error'))).toBe(true);
    expect(isProviderHealthFailure(answered(402, 'insufficient_credits'))).toBe(true);
    expect(isProviderHealthFailure(upstream({ code: 'timeout', transport: 'timeout' }))).toBe(true);
    const call = { provider: 'kling3api', operation: 'status' as const, url: '/api/status' };
    expect(isProviderHealthFailure(unreadableAnswer(call, 200, {}, 'no data'))).toBe(true);
  });

  it('does not count rejections of the request, rate limits or unknown task ids', () => {
    expect(isProviderHealthFailure(answered(400, 'invalid_request'))).toBe(false);
    expect(isProviderHealthFailure(answered(422, 'content_policy'))).toBe(false);
    expect(isProviderHealthFailure(answered(429, 'provider_error'))).toBe(false);
    expect(isProviderHealthFailure(answered(404, 'invalid_request'))).toBe(false);
    expect(isProviderHealthFailure(new Error('not an upstream error'))).toBe(false);
  });
});
