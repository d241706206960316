/**
 * Replicas sharing one account's standing (issue 13): two runtimes over one state store stand
 * for two replicas. A dead provider costs `consecutive_failures` calls plus one probe per
 * half-open period in total, a `Retry-After` one replica was given holds for the other, and the
 * rate windows are the account's.
 */
import { describe, expect, it } from 'vitest';
import { ProviderConfig } from '../../../src/config/config.js';
import { ManualClock } from '../../../src/core/clock.js';
import { ProviderRuntime, RATE_WINDOW_MARGIN_MS, pickAccounts } from '../../../src/core/upstream/provider-runtime.js';
import { InProcessProviderState, type ProviderStateStore } from '../../../src/core/upstream/provider-state.js';
import { UpstreamError } from '../../../src/core/upstream/upstream-error.js';
import { createLogger } from '../../../src/observability/logger.js';
import { GatewayMetrics } from '../../../src/observability/metrics.js';
import { PROVIDERS } from '../../../src/providers/registry.js';

const provider = PROVIDERS.find((candidate) => candidate.id === 'kling3api')!;

/** One state both runtimes read and write, as replicas do the PostgreSQL rows. */
class SharedInMemory extends InProcessProviderState {
  override readonly shared = true;
}

function replicas(settings: Record<string, unknown> = {}, logLines?: string[]) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const state: ProviderStateStore = new SharedInMemory(clock);
  const config = ProviderConfig.parse({ circuit_breaker: { consecutive_failures: 3, half_open_after_ms: 30_000 }, ...settings });
  const replica = (owner: string) =>
    new ProviderRuntime({
      provider,
      config,
      baseUrl: 'http://127.0.0.1:1',
      apiKey: 'k',
      simulated: true,
      clock,
      metrics: new GatewayMetrics(),
      logger: logLines ? createLogger('info', { destination: { write: (line: string) => void logLines.push(line) } }) : createLogger('silent'),
      state,
      owner,
    }).accounts[0]!;
  return { clock, a: replica('replica-a'), b: replica('replica-b') };
}

const down = () => new UpstreamError({ provider: 'kling3api', operation: 'status', url: '/x', code: 'provider_error', message: 'down', statusCode: 503 });

describe('one account shared by replicas', () => {
  it('spends consecutive_failures calls on a dead provider, then one probe per half-open period, in total', async () => {
    const { clock, a, b } = replicas();
    let calls = 0;
    const dead = async () => {
      calls += 1;
      throw down();
    };
    const tryBoth = async () => {
      for (const account of [a, b, a, b]) {
        const admission = await account.admit(0);
        if (admission.granted) await account.call(dead, admission.permit).catch(() => undefined);
      }
    };
    for (let round = 0; round < 5; round++) await tryBoth();
    expect(calls).toBe(3);
    expect([a.circuit, b.circuit]).toEqual(['open', 'open']);
    await clock.advance(30_000);
    for (let round = 0; round < 5; round++) await tryBoth();
    expect(calls).toBe(4);
    // The probe failed: open for another period.
    expect(b.circuit).toBe('open');
  });

  it('logs a circuit that opens as a warning, and one that closes again as news (info)', async () => {
    const lines: string[] = [];
    const { clock, a } = replicas({}, lines);
    for (let call = 0; call < 3; call++) {
      const admission = await a.admit(0);
      if (admission.granted) await a.call(async () => Promise.reject(down()), admission.permit).catch(() => undefined);
    }
    await clock.advance(30_000);
    const probe = await a.admit(0);
    expect(probe.granted).toBe(true);
    await a.call(async () => 'ok', probe.granted ? probe.permit : undefined);
    const circuit = lines.map((line) => JSON.parse(line) as { level: string; msg: string }).filter((line) => line.msg.startsWith('circuit '));
    expect(circuit.map((line) => [line.msg, line.level])).toEqual([
      ['circuit open', 'warn'],
      ['circuit half_open', 'warn'],
      ['circuit closed', 'info'],
    ]);
  });

  it('lets one call through at a time once the account is in doubt', async () => {
    const { a, b } = replicas();
    const admission = await a.admit(0);
    await a.call(async () => Promise.reject(down()), admission.granted ? admission.permit : undefined).catch(() => undefined);
    const asks = await Promise.all([a, b, a, b, a, b].map((account) => account.admit(0)));
    expect(asks.filter((ask) => ask.granted)).toHaveLength(1);
    expect(asks.filter((ask) => !ask.granted).every((ask) => !ask.granted && ask.reason === 'circuit_busy')).toBe(true);
    // The trial answers: the account is healthy again and calls flow.
    const trial = asks.find((ask) => ask.granted)!;
    const holder = asks.indexOf(trial) % 2 === 0 ? a : b;
    await holder.call(async () => 'ok', trial.granted ? trial.permit : undefined);
    expect((await b.admit(0)).granted).toBe(true);
    expect((await a.admit(0)).granted).toBe(true);
  });

  it('honours on every replica a Retry-After one of them was given', async () => {
    const { clock, a, b } = replicas();
    a.coolDown(10_000);
    await clock.advance(0);
    await b.refreshStanding();
    expect(await b.admit(0)).toEqual({ granted: false, reason: 'cooling_down', retryAt: clock.now() + 10_000 });
    await clock.advance(10_000);
    expect((await b.admit(0)).granted).toBe(true);
  });

  it('cools the account down for a 429 rate limit, for its Retry-After, but not for a 429 that says the credits are gone', async () => {
    const { clock, a } = replicas();
    const answered = (code: 'provider_error' | 'insufficient_credits') => async () => {
      throw new UpstreamError({ provider: 'kling-legacy', operation: 'submit', url: '/x', code, message: code, statusCode: 429, retryAfterMs: 7_000 });
    };
    await a.call(answered('insufficient_credits')).catch(() => undefined);
    expect(a.coolingDownUntil).toBe(0);
    await a.call(answered('provider_error')).catch(() => undefined);
    expect(a.coolingDownUntil).toBe(clock.now() + 7_000);
    // Once the Retry-After has passed the account is no longer shown cooling down, and is picked again.
    await clock.advance(7_000);
    expect(a.coolingDownUntil).toBe(0);
    expect(pickAccounts([{ account: a, inFlight: 0 }], clock.now())).toEqual([a]);
  });

  it('keeps the longer of two Retry-After waits: a later, shorter one does not cut the cool-down short', async () => {
    const { clock, a, b } = replicas();
    a.coolDown(60_000);
    await clock.advance(0);
    a.coolDown(5_000);
    await clock.advance(0);
    await b.refreshStanding();
    expect([a.coolingDownUntil, b.coolingDownUntil]).toEqual([clock.now() + 60_000, clock.now() + 60_000]);
    await clock.advance(10_000);
    expect(await b.admit(0)).toMatchObject({ granted: false, reason: 'cooling_down' });
  });

  it('waits out a cool-down that ends exactly when the caller stops waiting, and calls', async () => {
    const { clock, a } = replicas();
    a.coolDown(10_000);
    await clock.advance(0);
    const admission = a.admit(10_000);
    await clock.advance(10_000);
    expect(await admission).toMatchObject({ granted: true });
    expect(clock.now()).toBe(Date.UTC(2026, 0, 1) + 10_000);
  });

  it('counts every replica against the configured rate window', async () => {
    const { clock, a, b } = replicas({ rate_limits: [{ limit: 3, window_ms: 1_000 }] });
    const asks = await Promise.all([a, b, a, b, a].map((account) => account.admit(0)));
    expect(asks.filter((ask) => ask.granted)).toHaveLength(3);
    expect(asks.at(-1)).toEqual({ granted: false, reason: 'rate_limited', retryAt: clock.now() + 1_000 + RATE_WINDOW_MARGIN_MS });
  });

  it('does not keep the single call of an account in doubt while its rate window is full: the next call goes once the window has room', async () => {
    const { clock, a, b } = replicas({ rate_limits: [{ limit: 1, window_ms: 1_000 }] });
    const first = await a.admit(0);
    if (!first.granted) throw new Error('the first call is allowed');
    await a.call(async () => Promise.reject(down()), first.permit).catch(() => undefined);
    // In doubt now; the window is full, so the trial is taken and handed back.
    expect(await b.admit(0)).toMatchObject({ granted: false, reason: 'rate_limited' });
    await clock.advance(1_000 + RATE_WINDOW_MARGIN_MS);
    expect(await a.admit(0)).toMatchObject({ granted: true, permit: { trial: true } });
  });

  it('takes back the leave of a call that was never made: its rate allowance, and the trial call of an account in doubt', async () => {
    const limited = replicas({ rate_limits: [{ limit: 1, window_ms: 1_000 }] });
    const taken = await limited.a.admit(0);
    expect(await limited.b.admit(0)).toMatchObject({ granted: false, reason: 'rate_limited' });
    if (taken.granted) await limited.a.giveBack(taken.permit);
    expect((await limited.b.admit(0)).granted).toBe(true);

    // In doubt after a failure, one call goes at a time: one given back lets the next through.
    const { a, b } = replicas();
    await a.call(async () => Promise.reject(down())).catch(() => undefined);
    const trial = await a.admit(0);
    expect(trial).toMatchObject({ granted: true, permit: { trial: true } });
    expect(await b.admit(0)).toMatchObject({ granted: false, reason: 'circuit_busy' });
    if (trial.granted) await a.giveBack(trial.permit);
    expect(await b.admit(0)).toMatchObject({ granted: true, permit: { trial: true } });
  });
});

/** kling3api with two accounts, `main` and `spare`; `settings` replaces the provider's config (caps 3 and 6, a circuit of 2 by default). */
function twoAccounts(
  settings: Record<string, unknown> = {
    circuit_breaker: { consecutive_failures: 2, half_open_after_ms: 30_000 },
    max_in_flight: 3,
    accounts: [{ id: 'main', api_key: 'key-main' }, { id: 'spare', api_key: 'key-spare', max_in_flight: 6 }],
  },
) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const config = ProviderConfig.parse(settings);
  const runtime = new ProviderRuntime({
    provider,
    config,
    baseUrl: 'http://127.0.0.1:1',
    accounts: [
      { id: 'main', apiKey: 'key-main' },
      { id: 'spare', apiKey: 'key-spare' },
    ],
    simulated: false,
    clock,
    metrics: new GatewayMetrics(),
    logger: createLogger('silent'),
  });
  const [main, spare] = runtime.accounts as [NonNullable<(typeof runtime.accounts)[0]>, NonNullable<(typeof runtime.accounts)[1]>];
  return { clock, runtime, main, spare };
}

describe('several accounts of one provider', () => {
  it('gives each account its own cap (the provider default where it names none) and state key', () => {
    const { runtime, main, spare } = twoAccounts();
    expect([main.maxInFlight, spare.maxInFlight, runtime.maxInFlight]).toEqual([3, 6, 9]);
    expect([main.stateKey, spare.stateKey]).toEqual(['kling3api:main', 'kling3api:spare']);
  });

  it('tries the least loaded account relative to its cap first, and never a full one', () => {
    const { clock, main, spare } = twoAccounts();
    const now = clock.now();
    // 1 of 3 is a third; 3 of 6 is a half.
    expect(pickAccounts([{ account: main, inFlight: 1 }, { account: spare, inFlight: 3 }], now).map((a) => a.id)).toEqual(['main', 'spare']);
    expect(pickAccounts([{ account: main, inFlight: 2 }, { account: spare, inFlight: 3 }], now).map((a) => a.id)).toEqual(['spare', 'main']);
    expect(pickAccounts([{ account: main, inFlight: 3 }, { account: spare, inFlight: 5 }], now).map((a) => a.id)).toEqual(['spare']);
    expect(pickAccounts([{ account: main, inFlight: 3 }, { account: spare, inFlight: 6 }], now)).toEqual([]);
  });

  it("opens one account's circuit without touching the other's; the provider is open only when every account is", async () => {
    const { runtime, main, spare } = twoAccounts();
    for (let i = 0; i < 2; i++) await main.call(async () => Promise.reject(down())).catch(() => undefined);
    expect([main.circuit, spare.circuit, runtime.circuit]).toEqual(['open', 'closed', 'closed']);
    expect(pickAccounts([{ account: main, inFlight: 0 }, { account: spare, inFlight: 5 }], 0).map((a) => a.id)).toEqual(['spare']);
    expect((await spare.admit(0)).granted).toBe(true);
    for (let i = 0; i < 2; i++) await spare.call(async () => Promise.reject(down())).catch(() => undefined);
    expect(runtime.circuit).toBe('open');
  });

  it("holds an account's own rate window for that account, not for its sibling", async () => {
    const { main, spare } = twoAccounts({
      rate_limits: [{ limit: 5, window_ms: 1_000 }],
      accounts: [{ id: 'main', api_key: 'key-main', rate_limits: [{ limit: 1, window_ms: 1_000 }] }, { id: 'spare', api_key: 'key-spare' }],
    });
    expect((await main.admit(0)).granted).toBe(true);
    expect(await main.admit(0)).toMatchObject({ granted: false, reason: 'rate_limited' });
    const spareAsks = await Promise.all([1, 2, 3, 4, 5, 6].map(() => spare.admit(0)));
    expect(spareAsks.map((ask) => ask.granted)).toEqual([true, true, true, true, true, false]);
  });

  it("counts every account's upstream calls in the provider's figures, and each in its own account's", async () => {
    const { clock, runtime, main, spare } = twoAccounts();
    // Nothing listens on port 1: the call is refused, and counted as a failed call.
    await main
      .clientFor({})
      .send({ method: 'GET', path: '/x', operation: 'status' })
      .catch(() => undefined);
    const now = clock.now();
    expect(runtime.stats.snapshot(now)).toMatchObject({ calls: 1, successRate: 0 });
    expect(main.stats.snapshot(now)).toMatchObject({ calls: 1, successRate: 0 });
    expect(spare.stats.snapshot(now)).toMatchObject({ calls: 0, successRate: null });
  });

  it('shows the provider closed while one account is closed, even when another is half-open', async () => {
    const { clock, runtime, main, spare } = twoAccounts();
    for (let i = 0; i < 2; i++) await main.call(async () => Promise.reject(down())).catch(() => undefined);
    await clock.advance(30_000);
    expect([main.circuit, spare.circuit, runtime.circuit]).toEqual(['half_open', 'closed', 'closed']);
    for (let i = 0; i < 2; i++) await spare.call(async () => Promise.reject(down())).catch(() => undefined);
    expect([main.circuit, spare.circuit, runtime.circuit]).toEqual(['half_open', 'open', 'half_open']);
  });

  it('holds a Retry-After for the account that was told, not its sibling', async () => {
    const { clock, runtime, main, spare } = twoAccounts();
    main.coolDown(10_000);
    await clock.advance(0);
    expect(main.coolingDownUntil).toBe(clock.now() + 10_000);
    expect(runtime.coolingDownUntil).toBe(0);
    expect((await spare.admit(0)).granted).toBe(true);
    spare.coolDown(4_000);
    await clock.advance(0);
    expect(runtime.coolingDownUntil).toBe(clock.now() + 4_000);
  });
});
