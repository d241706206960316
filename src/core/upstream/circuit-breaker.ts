/**
 * The circuit breaker of an upstream account, as pure decisions over its shared standing
 * (`provider-state.ts`), so that every replica applies the same rule to the same row:
 *
 * - closed, no failures: calls go freely;
 * - in doubt (a failure in a row, or open past `half_open_after_ms`): one call at a time across
 *   all replicas, the *trial*, taken by a conditional update. A healthy answer closes it; a
 *   health failure counts one more;
 * - open (`consecutive_failures` in a row): no calls until `half_open_after_ms` has passed.
 *
 * So a dead provider costs at most `consecutive_failures` calls to open plus one probe per
 * half-open period in total, not per replica: after the first failure, calls are one at a time.
 * Only calls already on the wire when the first failure lands can add to that.
 */
import { UpstreamError } from './upstream-error.js';
import type { AccountStanding } from './provider-state.js';

export interface CircuitSettings {
  consecutive_failures: number;
  half_open_after_ms: number;
}

/** What the circuit allows a replica to do now. */
export type CircuitAdmission =
  /** Closed and healthy: call. */
  | { kind: 'free' }
  /** In doubt: call only after taking the trial. */
  | { kind: 'trial' }
  /** In doubt and another replica holds the trial: try again from `until`. */
  | { kind: 'busy'; until: number }
  /** Open: no calls until `until`. */
  | { kind: 'open'; until: number };

/** How often a replica looks again while another holds the trial. */
export const TRIAL_RECHECK_MS = 250;

export function circuitAdmission(standing: AccountStanding, now: number, settings: CircuitSettings): CircuitAdmission {
  if (standing.openedAt !== null) {
    const halfOpenAt = standing.openedAt + settings.half_open_after_ms;
    if (now < halfOpenAt) return { kind: 'open', until: halfOpenAt };
  } else if (standing.failures === 0) {
    return { kind: 'free' };
  }
  if (standing.trialUntil !== null && standing.trialUntil > now) {
    return { kind: 'busy', until: Math.min(standing.trialUntil, now + TRIAL_RECHECK_MS) };
  }
  return { kind: 'trial' };
}

/** The circuit as `/v1/providers` and the router show it. */
export function circuitStateOf(standing: AccountStanding, now: number, settings: CircuitSettings): 'closed' | 'open' | 'half_open' {
  if (standing.openedAt === null) return 'closed';
  return now < standing.openedAt + settings.half_open_after_ms ? 'open' : 'half_open';
}

/** What a finished call says about the account's health. */
export type CallHealth = 'healthy' | 'unhealthy' | 'unknown';

/**
 * Failures that say the provider itself is unwell or unusable (and so count towards opening
 * its circuit): no connection, no answer, 5xx, bad credentials, no credits. A rejected request
 * (400, content policy) or a 429 (handled by the cool-down) says nothing about its health.
 */
export function isProviderHealthFailure(error: unknown): boolean {
  if (!(error instanceof UpstreamError)) return false;
  if (error.transport) return true;
  if (error.code === 'insufficient_credits') return true;
  // A 2xx the adapter cannot read is a broken upstream too, whatever its status says.
  if (error.providerCode === 'unreadable_answer') return true;
  const status = error.statusCode ?? 0;
  return status >= 500 || status === 401 || status === 403 || status === 402;
}

/**
 * A success shows the account is up; a health failure that it is not. A refusal of the request
 * (a 400, a 429, a content-policy answer) or our own abort neither resets nor adds to the
 * failures in a row: a provider that fails every create it does not refuse must still open.
 */
export function healthOf(error: unknown): CallHealth {
  if (error === undefined) return 'healthy';
  if (isProviderHealthFailure(error)) return 'unhealthy';
  return 'unknown';
}
