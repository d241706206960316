import { describe, expect, it } from 'vitest';
import { circuitAdmission, circuitStateOf, healthOf, TRIAL_RECHECK_MS } from '../../../src/core/upstream/circuit-breaker.js';
import { HEALTHY_STANDING } from '../../../src/core/upstream/provider-state.js';
import { UpstreamError } from '../../../src/core/upstream/upstream-error.js';

const failure = (init: { statusCode?: number; transport?: 'refused'; code?: 'invalid_request' | 'insufficient_credits'; providerCode?: string }) =>
  new UpstreamError({ provider: 'p', operation: 'submit', url: '/x', code: init.code ?? 'provider_error', message: 'failed', ...init });

const SETTINGS = { consecutive_failures: 3, half_open_after_ms: 30_000 };
const NOW = Date.UTC(2026, 0, 1);

describe('circuit admission', () => {
  it('lets calls go freely while the account is healthy', () => {
    expect(circuitAdmission(HEALTHY_STANDING, NOW, SETTINGS)).toEqual({ kind: 'free' });
    expect(circuitStateOf(HEALTHY_STANDING, NOW, SETTINGS)).toBe('closed');
  });

  it('allows one call at a time once a failure is recorded', () => {
    const doubtful = { ...HEALTHY_STANDING, failures: 1 };
    expect(circuitAdmission(doubtful, NOW, SETTINGS)).toEqual({ kind: 'trial' });
    const held = { ...doubtful, trialOwner: 'other', trialUntil: NOW + 10_000 };
    expect(circuitAdmission(held, NOW, SETTINGS)).toEqual({ kind: 'busy', until: NOW + TRIAL_RECHECK_MS });
    // A holder that died: its trial runs out.
    expect(circuitAdmission(held, NOW + 10_000, SETTINGS)).toEqual({ kind: 'trial' });
    expect(circuitStateOf(doubtful, NOW, SETTINGS)).toBe('closed');
  });

  it('refuses calls while open, then allows one probe', () => {
    const open = { ...HEALTHY_STANDING, failures: 3, openedAt: NOW };
    expect(circuitAdmission(open, NOW + 1_000, SETTINGS)).toEqual({ kind: 'open', until: NOW + 30_000 });
    expect(circuitStateOf(open, NOW + 1_000, SETTINGS)).toBe('open');
    expect(circuitAdmission(open, NOW + 30_000, SETTINGS)).toEqual({ kind: 'trial' });
    expect(circuitStateOf(open, NOW + 30_000, SETTINGS)).toBe('half_open');
    const probing = { ...open, trialOwner: 'other', trialUntil: NOW + 60_000 };
    expect(circuitAdmission(probing, NOW + 30_000, SETTINGS)).toMatchObject({ kind: 'busy' });
  });

  it('counts health failures, not refusals of the request', () => {
    expect(healthOf(undefined)).toBe('healthy');
    expect(healthOf(failure({ statusCode: 503 }))).toBe('unhealthy');
    expect(healthOf(failure({ transport: 'refused' }))).toBe('unhealthy');
    expect(healthOf(failure({ statusCode: 400, code: 'invalid_request' }))).toBe('unknown');
    expect(healthOf(failure({ statusCode: 429 }))).toBe('unknown');
    expect(healthOf(new Error('aborted'))).toBe('unknown');
  });

  it('counts a refused key, exhausted credits said under any status, and a 2xx it cannot read as failures of the provider', () => {
    expect(healthOf(failure({ statusCode: 401 }))).toBe('unhealthy');
    expect(healthOf(failure({ statusCode: 403 }))).toBe('unhealthy');
    expect(healthOf(failure({ statusCode: 402 }))).toBe('unhealthy');
    // kling3api and the legacy API say "no credits" in a coded answer, not always with a 402.
    expect(healthOf(failure({ statusCode: 400, code: 'insufficient_credits' }))).toBe('unhealthy');
    expect(healthOf(failure({ statusCode: 200, providerCode: 'unreadable_answer' }))).toBe('unhealthy');
  });
});
