/**
 * The dispatch decision on its own (SPEC §3), from fixtures: per provider of a task's plan try
 * it, wait until it is usable, or pass it over (writing an attempt for an open circuit once);
 * after a failed create end, wait or move on; and when the plan runs out wait in line or fail
 * with the right error.
 */
import { describe, expect, it } from 'vitest';
import { resolveRequest } from '../../../src/core/model/capabilities.js';
import type { Offering } from '../../../src/core/model/offerings.js';
import {
  afterCreateFailure,
  attemptHistory,
  provedAbsentMessage,
  conclude,
  deadlineLength,
  decideCandidate,
  type CandidateOutcome,
  type DecisionContext,
  type ProviderStanding,
} from '../../../src/core/tasks/dispatch-decision.js';
import { circuitOpenFailure, classifyCreateFailure, type CreateFailureDecision } from '../../../src/core/tasks/failover.js';
import type { AttemptRecord } from '../../../src/core/tasks/task-records.js';
import { UpstreamError } from '../../../src/core/upstream/upstream-error.js';

const NOW = Date.UTC(2026, 10, 22, 12);

const textToVideo: Offering = {
  model: 'kling-v3',
  qualities: ['pro', 'std'],
  operation: 'text-to-video',
  upstream: 'POST /v1/ai/video/kling-v3',
  fields: { prompt: { required: true, maxLength: 2500 }, duration: { values: [5, 10] }, aspect_ratio: { values: ['16:9'] } },
};
const imageOnly: Offering = { ...textToVideo, operation: 'image-to-video', fields: { start_image_url: { required: true } } };

function standing(overrides: Partial<ProviderStanding> = {}): ProviderStanding {
  return { usable: true, circuitOpen: false, coolingDownUntil: 0, offerings: [textToVideo], knownFull: false, accounts: ['default'], ...overrides };
}

function attempt(provider: string, outcome: AttemptRecord['outcome'], httpStatus: number | null = null): AttemptRecord {
  return {
    seq: 1,
    provider,
    account: outcome === 'skipped' ? null : 'default',
    outcome,
    errorCode: null,
    providerCode: null,
    httpStatus,
    latencyMs: null,
    message: null,
    at: NOW - 1_000,
    providerTaskId: null,
    tracking: null,
    recoveredBy: null,
    timeoutMs: null,
    namedTaskId: null,
  };
}

/** What a passed-over provider's earlier attempt said, as the task's error quotes it. */
function ruledOut(provider: string, httpStatus: number | null, message: string) {
  return { kind: 'passed', ruledOut: { provider, httpStatus, message } };
}

function context(attempts: AttemptRecord[] = []): DecisionContext {
  return {
    request: resolveRequest({ model: 'kling-v3', prompt: 'a fox in the snow' }),
    history: attemptHistory(attempts),
    now: NOW,
    retryMs: 500,
  };
}

const entry = (provider: string) => ({ provider, warnings: [] });

function failure(statusCode: number, init: { transport?: 'timeout' } = {}): CreateFailureDecision {
  return classifyCreateFailure(
    new UpstreamError({
      provider: 'freepik',
      operation: 'submit',
      url: '/v1/ai/video/kling-v3-pro',
      message: `answered ${statusCode}`,
      code: statusCode === 402 ? 'insufficient_credits' : 'provider_error',
      statusCode,
      ...init,
    }),
    false,
  );
}

describe('decideCandidate', () => {
  it('tries a usable provider that serves the request, with the offering and its warnings', () => {
    expect(decideCandidate(entry('freepik'), standing(), context())).toEqual({
      kind: 'try',
      offering: textToVideo,
      warnings: ['audio defaults to true but kling-v3 text-to-video here cannot generate it'],
    });
  });

  it('passes over a provider that is not configured, is switched off, or cannot serve the request', () => {
    expect(decideCandidate(entry('gone'), undefined, context())).toEqual({ kind: 'passed', off: { provider: 'gone', why: 'not configured' } });
    expect(decideCandidate(entry('freepik'), standing({ usable: false }), context())).toEqual({ kind: 'passed', off: { provider: 'freepik', why: 'disabled in configuration' } });
    expect(decideCandidate(entry('freepik'), standing({ usable: false, disabledReason: 'no api_key configured' }), context())).toEqual({
      kind: 'passed',
      off: { provider: 'freepik', why: 'no api_key configured' },
    });
    expect(decideCandidate(entry('freepik'), standing({ offerings: [imageOnly] }), context())).toEqual({
      kind: 'passed',
      off: { provider: 'freepik', why: 'does not serve this request any more' },
    });
  });

  it('passes over a provider only once every one of its accounts refused the task for a reason of its own (key, credits)', () => {
    const refusedBy = (account: string, httpStatus: number) => ({ ...attempt('freepik', 'failed', httpStatus), account });
    const twoAccounts = standing({ accounts: ['main', 'spare'] });
    expect(decideCandidate(entry('freepik'), twoAccounts, context([refusedBy('main', 402)]))).toMatchObject({ kind: 'try' });
    expect(decideCandidate(entry('freepik'), twoAccounts, context([refusedBy('main', 402), refusedBy('spare', 401)]))).toEqual(
      ruledOut('freepik', 401, 'failed'),
    );
    // A refusal of the request itself is the provider's, whichever account said it.
    expect(decideCandidate(entry('freepik'), twoAccounts, context([refusedBy('main', 400)]))).toEqual(ruledOut('freepik', 400, 'failed'));
    expect(attemptHistory([refusedBy('main', 402), refusedBy('spare', 429)]).refusedAccounts).toEqual(new Map([['freepik', new Set(['main'])]]));
    // The legacy API says "credits gone" (1100-1102) with a 429: that account refused, it did not ask for a pause.
    const creditsGone = { ...refusedBy('spare', 429), errorCode: 'insufficient_credits' };
    expect(decideCandidate(entry('freepik'), twoAccounts, context([refusedBy('main', 402), creditsGone]))).toEqual(
      ruledOut('freepik', 429, 'insufficient_credits'),
    );
  });

  it('counts an address that was down (a 5xx, or no connection) against the accounts reached there only, when others are reached elsewhere', () => {
    const downAt = (account: string, httpStatus: number | null) => ({ ...attempt('kling-legacy', 'failed', httpStatus), account, errorCode: 'provider_error' });
    // east and east-2 in Singapore, west in Beijing.
    const sameAddress = (provider: string, account: string) => (provider === 'kling-legacy' && account.startsWith('east') ? ['east', 'east-2'] : undefined);
    for (const said of [503, null]) {
      const history = attemptHistory([downAt('east', said)], sameAddress);
      expect(history.refusedAccounts).toEqual(new Map([['kling-legacy', new Set(['east', 'east-2'])]]));
      expect(history.refused.has('kling-legacy')).toBe(false);
      // All accounts at one address (or no way to tell): the provider is down.
      expect(attemptHistory([downAt('east', said)]).refused.has('kling-legacy')).toBe(true);
      expect(attemptHistory([downAt('east', said)], () => undefined).refused.has('kling-legacy')).toBe(true);
    }
    // A refusal of the request itself stays the provider's, wherever it was said.
    expect(attemptHistory([{ ...downAt('east', 400), errorCode: 'invalid_request' }], sameAddress).refused.has('kling-legacy')).toBe(true);
    const threeAccounts = standing({ accounts: ['east', 'east-2', 'west'] });
    const context503 = { ...context(), history: attemptHistory([downAt('east', 503)], sameAddress) };
    expect(decideCandidate(entry('kling-legacy'), threeAccounts, context503)).toMatchObject({ kind: 'try' });
    const bothDown = { ...context(), history: attemptHistory([downAt('east', 503), downAt('west', null)], (provider, account) => (account === 'west' ? ['west'] : sameAddress(provider, account))) };
    expect(decideCandidate(entry('kling-legacy'), threeAccounts, bothDown)).toEqual(ruledOut('kling-legacy', null, 'provider_error'));
  });

  it("counts an account's credits gone against that account only, even when said with a 5xx: its neighbours at the same address may take the task", () => {
    // east and east-2 in Singapore, west in Beijing; a live create reads it the same way (`classifyCreateFailure`: credits first).
    const sameAddress = (provider: string, account: string) => (provider === 'kling-legacy' && account.startsWith('east') ? ['east', 'east-2'] : undefined);
    const spent = { ...attempt('kling-legacy', 'failed', 500), account: 'east', errorCode: 'insufficient_credits', providerCode: '1102' };
    expect(attemptHistory([spent], sameAddress).refusedAccounts).toEqual(new Map([['kling-legacy', new Set(['east'])]]));
  });

  it('passes over a provider whose lost create recovery proved never taken, though its other accounts are reached at another address', () => {
    // east in Singapore, west in Beijing. A timeout after the request was written, a gateway stop
    // or an unreadable answer says nothing about Singapore being down: once proved absent, the
    // task goes on to the next provider, as a lost create always did.
    const sameAddress = (provider: string, account: string) => (provider === 'kling-legacy' && account === 'east' ? ['east'] : undefined);
    const twoAccounts = standing({ accounts: ['east', 'west'] });
    const long = `kling-legacy answered but the answer could not be read: ${'x'.repeat(480)}`;
    for (const [errorCode, httpStatus, said] of [
      ['timeout', null, 'kling-legacy did not answer within 300 ms'],
      ['provider_error', null, 'the gateway stopped while this request was in flight'],
      ['provider_error', null, long],
      ['provider_error', 502, long],
    ] as const) {
      const proved = { ...attempt('kling-legacy', 'failed', httpStatus), account: 'east', errorCode, message: provedAbsentMessage(said, 'no task with external_task_id t-1') };
      const history = attemptHistory([proved], sameAddress);
      expect(history.refused.has('kling-legacy')).toBe(true);
      expect(decideCandidate(entry('kling-legacy'), twoAccounts, { ...context(), history })).toEqual(ruledOut('kling-legacy', httpStatus, proved.message));
    }
    // A connection refused before anything was sent is the address's: west may take the task.
    const refused = { ...attempt('kling-legacy', 'failed'), account: 'east', errorCode: 'provider_error', message: 'kling-legacy refused the connection' };
    expect(decideCandidate(entry('kling-legacy'), twoAccounts, { ...context(), history: attemptHistory([refused], sameAddress) })).toMatchObject({ kind: 'try' });
  });

  it("keeps a task bound to one account (its source video's) to that account: passed over once it refused, refused when it is gone", () => {
    const refusedBy = (account: string, httpStatus: number) => ({ ...attempt('kling-legacy', 'failed', httpStatus), account });
    const bound = { ...entry('kling-legacy'), account: 'east' };
    const twoAccounts = standing({ accounts: ['east', 'west'] });
    expect(decideCandidate(bound, twoAccounts, context())).toMatchObject({ kind: 'try' });
    // West could still take a task of no source video; this one only east holds the video for.
    expect(decideCandidate(bound, twoAccounts, context([refusedBy('east', 401)]))).toEqual(ruledOut('kling-legacy', 401, 'failed'));
    expect(decideCandidate({ ...bound, account: undefined }, twoAccounts, context([refusedBy('east', 401)]))).toMatchObject({ kind: 'try' });
    expect(decideCandidate(bound, standing({ accounts: ['west'] }), context())).toMatchObject({
      kind: 'refused',
      failure: { provider: 'kling-legacy', failover: true, message: expect.stringContaining('account east of kling-legacy') },
    });
  });

  it('passes over a provider whose create may hold the task, or that recovery proved never took it, saying what its attempt said', () => {
    const proved = { ...attempt('freepik', 'failed'), errorCode: 'provider_error', message: 'the gateway stopped; not accepted upstream: none listed' };
    expect(decideCandidate(entry('freepik'), standing(), context([proved]))).toEqual(ruledOut('freepik', null, proved.message));
    const lost = { ...attempt('freepik', 'ambiguous'), message: 'no answer within 300 ms' };
    expect(decideCandidate(entry('freepik'), standing(), context([lost]))).toEqual(ruledOut('freepik', null, 'no answer within 300 ms'));
  });

  it('passes over a provider that refused this task before, but asks again one that only said 429', () => {
    expect(decideCandidate(entry('freepik'), standing(), context([attempt('freepik', 'failed', 400)]))).toEqual(ruledOut('freepik', 400, 'failed'));
    expect(decideCandidate(entry('freepik'), standing(), context([attempt('freepik', 'failed', 429)]))).toMatchObject({ kind: 'try' });
    expect(decideCandidate(entry('freepik'), standing(), context([attempt('kling3api', 'failed', 400)]))).toMatchObject({ kind: 'try' });
  });

  it('counts an open circuit as a refusal and writes it on the task once', () => {
    const first = decideCandidate(entry('freepik'), standing({ circuitOpen: true }), context());
    expect(first).toEqual({
      kind: 'refused',
      failure: circuitOpenFailure('freepik'),
      record: {
        provider: 'freepik',
        outcome: 'skipped',
        errorCode: 'circuit_open',
        message: 'circuit open: recent calls to this provider failed',
        at: NOW,
      },
    });
    const again = decideCandidate(entry('freepik'), standing({ circuitOpen: true }), context([attempt('freepik', 'skipped')]));
    expect(again).toEqual({ kind: 'refused', failure: circuitOpenFailure('freepik') });
  });

  it('waits for a provider cooling down after a 429 until its Retry-After, whatever the request', () => {
    expect(decideCandidate(entry('freepik'), standing({ coolingDownUntil: NOW + 7_000 }), context())).toEqual({
      kind: 'wait',
      until: NOW + 7_000,
    });
  });

  it('waits one retry interval for a provider found full earlier in the pass, without asking it again', () => {
    // Marked full: the task stays due rather than postponed, so it keeps its place in the queue.
    expect(decideCandidate(entry('freepik'), standing({ knownFull: true }), context())).toEqual({ kind: 'wait', until: NOW + 500, full: true });
    // Full matters only for a provider that could take the task at all.
    expect(decideCandidate(entry('freepik'), standing({ knownFull: true, offerings: [imageOnly] }), context())).toMatchObject({
      kind: 'passed',
    });
  });

  it('checks in the order: refused before, switched off, circuit, cool-down, offering, slots', () => {
    const everything = standing({ circuitOpen: true, coolingDownUntil: NOW + 1, knownFull: true });
    expect(decideCandidate(entry('freepik'), everything, context([attempt('freepik', 'failed', 503)]))).toEqual(ruledOut('freepik', 503, 'failed'));
    expect(decideCandidate(entry('freepik'), { ...everything, usable: false }, context())).toMatchObject({ kind: 'passed', off: { provider: 'freepik' } });
    expect(decideCandidate(entry('freepik'), everything, context())).toMatchObject({ kind: 'refused' });
    expect(decideCandidate(entry('freepik'), { ...everything, circuitOpen: false }, context())).toEqual({ kind: 'wait', until: NOW + 1 });
  });
});

describe('afterCreateFailure', () => {
  const at = { now: NOW, retryMs: 500, coolingDownUntil: 0 };

  it('ends the task when the provider may hold it, with the error the caller sees', () => {
    const timeout = failure(0, { transport: 'timeout' });
    expect(afterCreateFailure(timeout, at)).toEqual({
      kind: 'fail',
      error: { code: 'timeout', message: timeout.message, provider_code: null },
    });
  });

  it('waits for the cool-down after a 429, or one retry interval when none was set', () => {
    expect(afterCreateFailure(failure(429), { ...at, coolingDownUntil: NOW + 3_000 })).toEqual({ kind: 'wait', until: NOW + 3_000 });
    expect(afterCreateFailure(failure(429), at)).toEqual({ kind: 'wait', until: NOW + 500 });
  });

  it('moves on after a certain refusal, keeping it for the error', () => {
    const refusal = failure(503);
    expect(afterCreateFailure(refusal, at)).toEqual({ kind: 'refused', failure: refusal });
  });
});

describe('conclude', () => {
  const task = { now: NOW, deadlineAt: NOW + 60_000, deadlineMs: 30 * 60_000 };

  it('waits in line until the earliest provider is usable, never in the past', () => {
    const outcomes: CandidateOutcome[] = [
      { kind: 'wait', until: NOW + 9_000 },
      { kind: 'refused', failure: failure(503) },
      { kind: 'wait', until: NOW + 2_000 },
      { kind: 'passed' },
    ];
    expect(conclude(outcomes, task)).toEqual({ kind: 'wait', until: NOW + 2_000 });
    expect(conclude([{ kind: 'wait', until: NOW - 5 }], task)).toEqual({ kind: 'wait', until: NOW });
  });

  it('fails with timeout instead of waiting once the deadline has passed', () => {
    expect(conclude([{ kind: 'wait', until: NOW + 500 }], { ...task, deadlineAt: NOW })).toEqual({
      kind: 'fail',
      error: { code: 'timeout', message: 'no provider took the task within the 30-minute deadline', provider_code: null },
    });
  });

  it('names a deadline in whole minutes, else in seconds: never a 0-minute or rounded one', () => {
    expect([30 * 60_000, 60_000, 120 * 60_000, 90_000, 20_000, 1_000, 59_999, 1_500].map(deadlineLength)).toEqual([
      '30-minute',
      '1-minute',
      '120-minute',
      '90-second',
      '20-second',
      '1-second',
      '60-second',
      '2-second',
    ]);
  });

  it('with nobody to wait for, fails with the code every provider gave, naming each', () => {
    const credits = failure(402);
    expect(conclude([{ kind: 'refused', failure: credits }], task)).toEqual({
      kind: 'fail',
      error: { code: 'insufficient_credits', message: credits.message, provider_code: null },
    });
    expect(conclude([{ kind: 'refused', failure: failure(402) }, { kind: 'refused', failure: { ...credits, provider: 'kling3api' } }], task)).toEqual({
      kind: 'fail',
      error: {
        code: 'insufficient_credits',
        message: 'no provider accepted the task: freepik (HTTP 402): answered 402; kling3api (HTTP 402): answered 402',
        provider_code: null,
      },
    });
  });

  it('with different answers, fails as no_provider_available naming each', () => {
    const conclusion = conclude(
      [
        { kind: 'refused', failure: failure(503) },
        { kind: 'refused', failure: circuitOpenFailure('kling3api') },
      ],
      task,
    );
    expect(conclusion).toEqual({
      kind: 'fail',
      error: {
        code: 'no_provider_available',
        message: `no provider accepted the task: freepik (HTTP 503): answered 503; kling3api: ${circuitOpenFailure('kling3api').message}`,
        provider_code: null,
      },
    });
  });

  it('an open circuit alone is no_provider_available with its reason', () => {
    expect(conclude([{ kind: 'refused', failure: circuitOpenFailure('freepik') }], task)).toEqual({
      kind: 'fail',
      error: {
        code: 'no_provider_available',
        message: `no provider accepted the task: ${circuitOpenFailure('freepik').message}`,
        provider_code: null,
      },
    });
  });

  it('with every provider ruled out by its earlier attempts, says so and names each, not that none is enabled', () => {
    const outcomes: CandidateOutcome[] = [
      { kind: 'passed', ruledOut: { provider: 'freepik', httpStatus: null, message: 'the gateway stopped; not accepted upstream: none listed' } },
      { kind: 'passed' },
      { kind: 'passed', ruledOut: { provider: 'kling3api', httpStatus: 503, message: 'busy' } },
    ];
    expect(conclude(outcomes, task)).toEqual({
      kind: 'fail',
      error: {
        code: 'no_provider_available',
        message: 'every eligible provider was tried or ruled out for this task: freepik: the gateway stopped; not accepted upstream: none listed; kling3api (HTTP 503): busy',
        provider_code: null,
      },
    });
  });

  it('with no provider tried at all because each was switched off, names each and why', () => {
    const outcomes: CandidateOutcome[] = [
      { kind: 'passed', off: { provider: 'freepik', why: 'disabled in configuration' } },
      { kind: 'passed', off: { provider: 'kling3api', why: 'does not serve this request any more' } },
    ];
    expect(conclude(outcomes, task).kind === 'fail' && conclude(outcomes, task)).toMatchObject({
      error: { code: 'no_provider_available', message: 'no eligible provider is enabled: freepik (disabled in configuration); kling3api (does not serve this request any more)' },
    });
  });

  it('with no provider tried at all, says none is enabled', () => {
    expect(conclude([{ kind: 'passed' }], task)).toEqual({
      kind: 'fail',
      error: { code: 'no_provider_available', message: 'no eligible provider is enabled', provider_code: null },
    });
  });
});
