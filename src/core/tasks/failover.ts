/**
 * Whether a failed create may move on to the next provider (SPEC §3). The rule that matters:
 * fail over only when the upstream certainly did not accept the task, because a second
 * provider accepting it too means a video generated — and paid for — twice.
 */
import type { AttemptOutcome, ErrorCode } from '../model/canonical.js';
import { CircuitBreakerOpenError } from '../upstream/provider-runtime.js';
import { UpstreamError } from '../upstream/upstream-error.js';
import { errorText } from './error-text.js';

export const FAILOVER_REASONS = [
  'circuit_open',
  'connection_refused',
  'connect_timeout',
  'not_sent',
  'connection_reset',
  'timeout',
  'rate_limited',
  'server_error',
  'unauthorized',
  'insufficient_credits',
  'invalid_request',
  'rejected',
  'content_policy',
  'unexpected_reply',
] as const;
export type FailoverReason = (typeof FAILOVER_REASONS)[number];
/** The reasons that send a task on to another provider (content_policy and unexpected_reply never do). */
export const REASONS_TO_FAIL_OVER: readonly FailoverReason[] = FAILOVER_REASONS.filter(
  (reason) => reason !== 'content_policy' && reason !== 'unexpected_reply',
);

export interface CreateFailureDecision {
  /** Try the next provider. */
  failover: boolean;
  /** How the attempt is recorded. */
  outcome: AttemptOutcome;
  reason: FailoverReason;
  /** Canonical error, if the task ends here. */
  code: ErrorCode;
  message: string;
  httpStatus: number | null;
  providerCode: string | null;
  /** Who said it (null for an error that names none). */
  provider: string | null;
  /** The upstream task the create's server-error answer named: asked about before the create is given up on. */
  namedTaskId?: string;
  /**
   * What the upstream's failure said, without the words on whether the task went on (a create in
   * doubt that `failover_on_timeout` moves on from): what is kept when a lookup proves it absent.
   */
  said?: string;
}

export function classifyCreateFailure(error: unknown, failoverOnTimeout: boolean): CreateFailureDecision {
  if (error instanceof CircuitBreakerOpenError) {
    return decision(error.provider, true, 'skipped', 'circuit_open', 'no_provider_available', error.message);
  }
  if (!(error instanceof UpstreamError)) {
    // The upstream may have answered 2xx with something we could not read: it may have created
    // the task, so sending it elsewhere could duplicate it.
    return decision(null, false, 'ambiguous', 'unexpected_reply', 'provider_error', `unreadable answer: ${errorText(error)}`);
  }
  const status = error.statusCode ?? null;
  const base = { httpStatus: status, providerCode: error.providerCode ?? null, message: error.message, provider: error.provider };
  if (error.code === 'content_policy') {
    return { ...base, failover: false, outcome: 'failed', reason: 'content_policy', code: 'content_policy' };
  }
  if (error.mayHaveCreated || (status !== null && status >= 200 && status < 300)) {
    return {
      ...base,
      failover: false,
      outcome: 'ambiguous',
      reason: 'unexpected_reply',
      code: 'provider_error',
      message: `${error.message}; the provider may have created the task, so it was not sent to another provider`,
      ...(error.namedTaskId !== undefined ? { namedTaskId: error.namedTaskId } : {}),
    };
  }
  if (error.transport === 'timeout' || error.transport === 'reset') {
    // The whole request was written before the failure: the upstream may have acted on it.
    const reason: FailoverReason = error.transport === 'timeout' ? 'timeout' : 'connection_reset';
    return {
      ...base,
      failover: failoverOnTimeout,
      outcome: 'ambiguous',
      reason,
      code: reason === 'timeout' ? 'timeout' : error.code,
      said: error.message,
      message: failoverOnTimeout
        ? `${error.message}; failed over (failover_on_timeout) although the task may exist upstream`
        : `${error.message}; the task may have been created (and billed) upstream, so it was not sent to another provider`,
    };
  }
  const certainly = (reason: FailoverReason) => ({
    ...base,
    failover: true,
    outcome: 'failed' as const,
    reason,
    code: error.code,
  });
  if (error.transport === 'refused') return certainly('connection_refused');
  if (error.transport === 'connect_timeout') return certainly('connect_timeout');
  if (error.transport === 'not_sent') return certainly('not_sent');
  if (error.code === 'insufficient_credits' || status === 402) return certainly('insufficient_credits');
  if (status === 429) return certainly('rate_limited');
  if (status !== null && status >= 500) return certainly('server_error');
  if (status === 401 || status === 403) return certainly('unauthorized');
  if (error.code === 'invalid_request') return certainly('invalid_request');
  // Any other error answer: the upstream said no, so it holds no task.
  return certainly('rejected');
}

/**
 * Whether a refused create says something about the account it went through rather than the
 * request or the provider: too many requests, a key refused, credits gone. Another account of
 * the same provider may then take the task at once.
 */
export function isAccountTrouble(failure: CreateFailureDecision): boolean {
  return failure.failover && ['rate_limited', 'unauthorized', 'insufficient_credits'].includes(failure.reason);
}

/**
 * Whether a refused create says the address its account is reached at is down — no connection
 * (refused, timed out while connecting, broken before the request was written) or a `5xx` — and
 * nothing about the request or the key: an account of the same provider reached at another
 * address (its own region) may then take the task at once.
 */
export function isAddressTrouble(failure: CreateFailureDecision): boolean {
  return failure.failover && ['connection_refused', 'connect_timeout', 'not_sent', 'server_error'].includes(failure.reason);
}

/** A provider passed over because its circuit is open: it holds no task, so the next one may go. */
export function circuitOpenFailure(provider: string): CreateFailureDecision {
  return classifyCreateFailure(new CircuitBreakerOpenError(provider), false);
}

/**
 * A task bound to the account that made its source video (`video_id`), which is no longer
 * configured: no other account holds that video, so the provider cannot take the task.
 */
export function boundAccountGoneFailure(provider: string, account: string): CreateFailureDecision {
  return decision(
    provider,
    true,
    'skipped',
    'rejected',
    'no_provider_available',
    `account ${account} of ${provider}, which made the video video_id names and alone holds it, is no longer configured`,
  );
}

/**
 * The message of an account's own trouble (a 429, its key refused, its credits gone) for a task
 * bound to that account: it is not moved to another account, which would not hold its source video.
 */
export function boundAccountMessage(message: string, account: string): string {
  return `${message}; not sent through another account: account ${account} made the video video_id names and alone holds it`;
}

function decision(
  provider: string | null,
  failover: boolean,
  outcome: AttemptOutcome,
  reason: FailoverReason,
  code: ErrorCode,
  message: string,
): CreateFailureDecision {
  return { failover, outcome, reason, code, message, httpStatus: null, providerCode: null, provider };
}
