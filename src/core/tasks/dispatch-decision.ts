/**
 * What to do with one queued task, as data (SPEC §3). For each provider of the task's plan, in
 * order: try it, wait until it can be used, or pass it over (writing an attempt when the caller
 * should see why). When the plan runs out with nobody accepting: wait in line until the
 * earliest provider is usable, or fail, with which error. No I/O here: `dispatcher.ts` carries
 * the decisions out.
 */
import type { TaskError } from '../model/canonical.js';
import { matchOffering, type ResolvedRequest } from '../model/capabilities.js';
import type { Offering } from '../model/offerings.js';
import { boundAccountGoneFailure, circuitOpenFailure, type CreateFailureDecision } from './failover.js';
import type { AttemptRecord, NewAttempt, PlanEntry } from './task-records.js';

/** How a provider stands when the dispatcher reaches it in a task's plan. */
export interface ProviderStanding {
  /** Configured and enabled. */
  usable: boolean;
  /** Why it is not usable (`disabled in configuration`, a missing key), when it is not. */
  disabledReason?: string;
  /** Calls are refused right now (recent failures). */
  circuitOpen: boolean;
  /** Until when it asked us to back off (a 429 with `Retry-After`); 0 when it did not. */
  coolingDownUntil: number;
  offerings: readonly Offering[];
  /** Found without a free slot earlier in this dispatch pass (not asked again). */
  knownFull: boolean;
  /** Its account ids. */
  accounts: readonly string[];
}

/** What a task's earlier attempts say about its providers. */
export interface AttemptHistory {
  /**
   * Providers not to send this task to again: those that said no to it (a 429 only meant "later",
   * so it is not a refusal, unless it said the credits are gone), and those that may hold it already (a create whose answer was lost,
   * failed over with `failover_on_timeout`): sending it there again could make and bill it twice.
   */
  refused: ReadonlySet<string>;
  /** What the last attempt that ruled each provider (or one of its accounts) out said, for the task's error. */
  ruledOutBy: ReadonlyMap<string, RuledOut>;
  /** Providers whose open circuit is already written on the task. */
  skipped: ReadonlySet<string>;
  /**
   * Accounts that turned the task down for a reason of their own (key refused, credits gone), by
   * provider: the provider's other accounts may still take it.
   */
  refusedAccounts: ReadonlyMap<string, ReadonlySet<string>>;
}

/** A provider an earlier attempt of the task ruled out, and what that attempt said. */
export interface RuledOut {
  provider: string;
  httpStatus: number | null;
  message: string;
}

/** A provider of the plan that could not be asked at all (switched off, gone, no longer serving the request), and why. */
export interface SwitchedOff {
  provider: string;
  why: string;
}

/** What one provider of the plan came to, once the dispatcher is done with it. */
export type CandidateOutcome =
  /**
   * Not for this task now (refused it before, switched off, cannot serve the request).
   * `ruledOut`: an earlier attempt of this task ruled it out (it refused the task, or may hold it).
   */
  | { kind: 'passed'; ruledOut?: RuledOut; off?: SwitchedOff }
  /**
   * Usable again from `until` (no free slot, cooling down, no rate allowance). `full`: no free
   * slot, which frees at no known time, or a provider only another replica may use (`until` is
   * only when to look again; the task is left due).
   */
  | { kind: 'wait'; until: number; full?: true }
  /** Certainly holds no task and will not take it now; counts towards the error if nobody does. */
  | { kind: 'refused'; failure: CreateFailureDecision };

/** The decision for one provider: try it, or what it comes to without trying (and what to write down). */
export type CandidateStep =
  | { kind: 'try'; offering: Offering; warnings: string[] }
  | (CandidateOutcome & { record?: NewAttempt });

/** What happens to the task when no provider of the plan accepted it. */
export type Conclusion = { kind: 'wait'; until: number } | { kind: 'fail'; error: TaskError };

export interface DecisionContext {
  /** The task's request, with the fields its caller wrote. */
  request: ResolvedRequest;
  history: AttemptHistory;
  now: number;
  /** How soon a provider found busy is looked at again. */
  retryMs: number;
  /**
   * Whether other replicas may share the task store (PostgreSQL): a provider this replica cannot
   * use (switched off, without a key, not configured here), or the account a task is bound to
   * (not configured here), may be usable on one of them — a task accepted there waits for it
   * (until its deadline) rather than fail here.
   */
  replicas?: boolean;
}

/** A failed create that says the account cannot take tasks now (its key refused, its credits gone), not that the request is wrong. */
export function isAccountRefusal(attempt: Pick<AttemptRecord, 'outcome' | 'httpStatus' | 'errorCode'>): boolean {
  return (
    attempt.outcome === 'failed' &&
    (attempt.httpStatus === 401 || attempt.httpStatus === 402 || attempt.httpStatus === 403 || attempt.errorCode === 'insufficient_credits')
  );
}

/** What the message of an attempt recovery proved the provider never took says (`provedAbsentMessage`). */
const PROVED_ABSENT = '; not accepted upstream: ';

/**
 * The message of an attempt in doubt that recovery proved the provider never took
 * (`Recovery.provedAbsent`), at most 500 characters. What it said first is cut short when long,
 * so that the words saying it was proved absent are always kept (`isAddressRefusal` reads them).
 */
export function provedAbsentMessage(message: string, why: string): string {
  return `${message.slice(0, 300)}${PROVED_ABSENT}${why}`.slice(0, 500);
}

/**
 * Whether a recorded refusal said the address the account is reached at is down (`isAddressTrouble`
 * as written down: a `5xx`, or a connection that failed before the request was written, which has
 * no HTTP status). A create in doubt (no answer after it was written, an answer that could not be
 * read, a gateway stop) that recovery proved never taken looks alike, but says nothing about the
 * address: it rules its provider out, as it always did.
 */
export function isAddressRefusal(attempt: Pick<AttemptRecord, 'outcome' | 'httpStatus' | 'errorCode' | 'message'>): boolean {
  if (attempt.outcome !== 'failed' || attempt.message?.includes(PROVED_ABSENT)) return false;
  // Credits gone are the account's own, whatever status said so (`classifyCreateFailure` reads them first).
  if (attempt.errorCode === 'insufficient_credits') return false;
  return attempt.httpStatus === null ? attempt.errorCode === 'provider_error' || attempt.errorCode === 'timeout' : attempt.httpStatus >= 500;
}

/**
 * The accounts of `provider` reached at the same address as `account` (itself included), when
 * some other account of it is reached elsewhere; undefined when all share one address (or it is
 * not configured).
 */
export type SameAddressAccounts = (provider: string, account: string) => readonly string[] | undefined;

export function attemptHistory(attempts: readonly AttemptRecord[], sameAddress?: SameAddressAccounts): AttemptHistory {
  const refused = new Set<string>();
  const refusedAccounts = new Map<string, Set<string>>();
  const ruledOutBy = new Map<string, RuledOut>();
  const said = (attempt: AttemptRecord): void => {
    const message = attempt.message ?? attempt.errorCode ?? attempt.outcome;
    ruledOutBy.set(attempt.provider, { provider: attempt.provider, httpStatus: attempt.httpStatus, message });
  };
  for (const attempt of attempts) {
    if (attempt.outcome === 'ambiguous' || attempt.outcome === 'interrupted') {
      refused.add(attempt.provider);
      said(attempt);
    }
    // A 429 only meant "later", unless it said the credits are gone (the legacy API's 1100-1102 come as 429).
    if (attempt.outcome !== 'failed' || (attempt.httpStatus === 429 && attempt.errorCode !== 'insufficient_credits')) continue;
    said(attempt);
    // Refused for its address: the provider's accounts reached elsewhere may still take the task.
    const down = attempt.account !== null && isAddressRefusal(attempt) ? sameAddress?.(attempt.provider, attempt.account) : undefined;
    if (attempt.account !== null && (down || isAccountRefusal(attempt))) {
      refusedAccounts.set(attempt.provider, new Set([...(refusedAccounts.get(attempt.provider) ?? []), ...(down ?? [attempt.account])]));
    } else {
      refused.add(attempt.provider);
    }
  }
  return {
    refused,
    skipped: new Set(attempts.filter((a) => a.outcome === 'skipped').map((a) => a.provider)),
    refusedAccounts,
    ruledOutBy,
  };
}

const PASSED: CandidateOutcome = { kind: 'passed' };

/** Passed over for what an earlier attempt of the task said. */
function ruledOut(provider: string, history: AttemptHistory): CandidateOutcome {
  const by = history.ruledOutBy.get(provider);
  return by ? { kind: 'passed', ruledOut: by } : PASSED;
}

/** The attempt that tells the caller a provider was passed over because its circuit is open. */
export function circuitOpenAttempt(provider: string, at: number): NewAttempt {
  return { provider, outcome: 'skipped', errorCode: 'circuit_open', message: 'circuit open: recent calls to this provider failed', at };
}

/** The decision for one provider of the plan; `standing` is undefined when it is not configured. */
export function decideCandidate(entry: PlanEntry, standing: ProviderStanding | undefined, context: DecisionContext): CandidateStep {
  const { provider } = entry;
  if (context.history.refused.has(provider)) return ruledOut(provider, context.history);
  if (!standing || !standing.usable) {
    // In a rolling deploy a replica still on the old configuration must not fail a task another
    // replica accepted for a provider it has: the task stays in line for that one, due, and
    // untouched here (postponed, it would keep that replica from it as long).
    if (context.replicas) return { kind: 'wait', until: context.now + context.retryMs, full: true };
    return { kind: 'passed', off: { provider, why: standing ? (standing.disabledReason ?? 'disabled in configuration') : 'not configured' } };
  }
  // A task bound to the account that made its source video may go through that one alone.
  const accounts = entry.account === undefined ? standing.accounts : standing.accounts.filter((account) => account === entry.account);
  if (entry.account !== undefined && accounts.length === 0) {
    // Another replica may have that account (a rolling deploy adding it): the task waits in line
    // for it, as for a provider unusable here, and ends at its deadline if none ever sends it.
    if (context.replicas) return { kind: 'wait', until: context.now + context.retryMs, full: true };
    return { kind: 'refused', failure: boundAccountGoneFailure(provider, entry.account) };
  }
  const refusedAccounts = context.history.refusedAccounts.get(provider);
  if (refusedAccounts && accounts.every((account) => refusedAccounts.has(account))) return ruledOut(provider, context.history);
  if (standing.circuitOpen) {
    const skip: CandidateStep = { kind: 'refused', failure: circuitOpenFailure(provider) };
    if (context.history.skipped.has(provider)) return skip;
    return { ...skip, record: circuitOpenAttempt(provider, context.now) };
  }
  if (standing.coolingDownUntil) return { kind: 'wait', until: standing.coolingDownUntil };
  const match = matchOffering(standing.offerings, context.request);
  if (!match.offering) return { kind: 'passed', off: { provider, why: 'does not serve this request any more' } };
  if (standing.knownFull) return { kind: 'wait', until: context.now + context.retryMs, full: true };
  return { kind: 'try', offering: match.offering, warnings: match.warnings };
}

/**
 * What a failed create comes to: the task fails here when the provider may hold it (failing
 * over could make and bill it twice); a 429 waits for the provider's cool-down; any other
 * certain refusal moves on to the next provider.
 */
export function afterCreateFailure(
  failure: CreateFailureDecision,
  context: { now: number; retryMs: number; coolingDownUntil: number },
): CandidateOutcome | Extract<Conclusion, { kind: 'fail' }> {
  if (!failure.failover) {
    return { kind: 'fail', error: { code: failure.code, message: failure.message, provider_code: failure.providerCode } };
  }
  if (failure.reason === 'rate_limited') {
    return { kind: 'wait', until: context.coolingDownUntil || context.now + context.retryMs };
  }
  return { kind: 'refused', failure };
}

/**
 * The plan ran out. While a provider will be usable later, the task waits in line for the
 * earliest one, unless its deadline has passed; otherwise it fails with what the providers said.
 */
export function conclude(
  outcomes: readonly CandidateOutcome[],
  task: { now: number; deadlineAt: number; deadlineMs: number },
): Conclusion {
  const waits = outcomes.flatMap((outcome) => (outcome.kind === 'wait' ? [outcome.until] : []));
  if (waits.length > 0) {
    if (task.now >= task.deadlineAt) return { kind: 'fail', error: deadlineError(task.deadlineMs) };
    return { kind: 'wait', until: Math.max(Math.min(...waits), task.now) };
  }
  const failures = outcomes.flatMap((outcome) => (outcome.kind === 'refused' ? [outcome.failure] : []));
  if (failures.length > 0) return { kind: 'fail', error: summarize(failures) };
  const passed = outcomes.flatMap((outcome) => (outcome.kind === 'passed' ? [outcome] : []));
  return {
    kind: 'fail',
    error: noneLeft(
      passed.flatMap((outcome) => (outcome.ruledOut ? [outcome.ruledOut] : [])),
      passed.flatMap((outcome) => (outcome.off ? [outcome.off] : [])),
    ),
  };
}

/** The error of a task no provider took before its deadline (`deadlineMs`: the task's own). */
export function deadlineError(deadlineMs: number): TaskError {
  return { code: 'timeout', message: `no provider took the task within the ${deadlineLength(deadlineMs)} deadline`, provider_code: null };
}

/** A task's own deadline: from its creation to its `deadlineAt`, whatever the configuration says now. */
export function taskDeadlineMs(task: { createdAt: number; deadlineAt: number }): number {
  return task.deadlineAt - task.createdAt;
}

/** A deadline's length as its error names it: `30-minute`, or in seconds when not whole minutes (`90-second`). */
export function deadlineLength(deadlineMs: number): string {
  if (deadlineMs >= 60_000 && deadlineMs % 60_000 === 0) return `${deadlineMs / 60_000}-minute`;
  return `${Math.round(deadlineMs / 1000)}-second`;
}

/** A provider and what it said, as a task's error names it: `freepik (HTTP 503): …`. */
function named(said: { provider: string | null; httpStatus: number | null; message: string }): string {
  return `${said.provider ?? 'a provider'}${said.httpStatus !== null ? ` (HTTP ${said.httpStatus})` : ''}: ${said.message}`;
}

/**
 * The error of a task whose plan was all passed over: the providers earlier attempts of the task
 * ruled out (a refusal, a create that may hold the task or that recovery proved never accepted)
 * by what they said; with none, no provider could be asked at all (switched off since: each
 * named with why, `off`).
 */
function noneLeft(ruledOut: readonly RuledOut[], off: readonly SwitchedOff[] = []): TaskError {
  if (ruledOut.length === 0) {
    const named = off.map((entry) => `${entry.provider} (${entry.why})`).join('; ');
    return { code: 'no_provider_available', message: `no eligible provider is enabled${named ? `: ${named}` : ''}`.slice(0, 1000), provider_code: null };
  }
  return {
    code: 'no_provider_available',
    message: `every eligible provider was tried or ruled out for this task: ${ruledOut.map(named).join('; ')}`.slice(0, 1000),
    provider_code: null,
  };
}

/**
 * One error for a task no provider took: their shared code, else `no_provider_available`. With
 * more than one provider, the message names each and what it said.
 */
function summarize(failures: readonly CreateFailureDecision[]): TaskError {
  const codes = new Set(failures.map((failure) => failure.code));
  const last = failures[failures.length - 1]!;
  const shared = codes.size === 1 && last.code !== 'no_provider_available';
  if (shared && failures.length === 1) return { code: last.code, message: last.message, provider_code: last.providerCode };
  const each = failures.length === 1 ? last.message : failures.map(named).join('; ');
  return {
    code: shared ? last.code : 'no_provider_available',
    message: `no provider accepted the task: ${each}`.slice(0, 1000),
    provider_code: shared ? last.providerCode : null,
  };
}
