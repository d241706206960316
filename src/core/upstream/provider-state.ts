/**
 * Where the standing of upstream accounts is kept: circuit, `Retry-After` cool-down and the
 * calls their rate windows allowed. With PostgreSQL every replica reads and writes the same rows
 * (`store/shared-state-store.ts` fits this interface), so the configured limits and the circuit
 * are the account's, whatever the replica count; with SQLite there is one process and
 * `InProcessProviderState` keeps it in memory. Keys are `provider:account`.
 *
 * A shared state can also be asked inside a transaction another part of the store opened
 * (`within`): a create's slot claim asks the rate windows and the circuit in the create's own
 * transaction, on its connection, instead of holding that connection while waiting for another.
 */
import type { Clock } from '../clock.js';
import { SlidingWindowRateLimiter, type RateWindow } from './rate-limiter.js';

/** How one upstream account stands, as every replica sharing the store sees it. */
export interface AccountStanding {
  /** Health failures in a row (reset by a success). */
  failures: number;
  /** When the circuit opened; null while closed. */
  openedAt: number | null;
  /** The replica holding the single call allowed while the account is in doubt. */
  trialOwner: string | null;
  /** Until when that call is held (after that another replica may take it). */
  trialUntil: number | null;
  /** No calls before this time (0: none). */
  cooldownUntil: number;
}

export const HEALTHY_STANDING: AccountStanding = Object.freeze({
  failures: 0,
  openedAt: null,
  trialOwner: null,
  trialUntil: null,
  cooldownUntil: 0,
});

/**
 * A transaction open on the store, handed from the part of the store that opened it to the state
 * kept in the same database (`ProviderStateStore.within`); opaque to everyone in between.
 */
export type OpenTransaction = object;

export interface ProviderStateStore {
  /** True when other replicas see the same state (the cached standing must then be re-read now and then). */
  readonly shared: boolean;
  /**
   * The same state, read and written inside `transaction`: what is taken there (a rate allowance,
   * the trial call) commits or rolls back with it. A state kept in this process has no connection
   * to hold and is itself.
   */
  within(transaction: OpenTransaction): ProviderStateStore;
  register(key: string, now: number): Promise<void>;
  read(key: string): Promise<AccountStanding>;
  /** Takes the single in-doubt call for `owner` until `until`; undefined when another holds it. */
  claimTrial(key: string, owner: string, now: number, until: number): Promise<AccountStanding | undefined>;
  recordSuccess(key: string, owner: string, now: number): Promise<AccountStanding>;
  recordFailure(key: string, input: { owner: string; threshold: number; reopen: boolean; now: number }): Promise<AccountStanding>;
  releaseTrial(key: string, owner: string, now: number): Promise<AccountStanding>;
  extendCooldown(key: string, until: number, now: number): Promise<AccountStanding>;
  /** Allows one call now if every window has room (0), else the milliseconds until one has. */
  takeRateAllowance(key: string, windows: readonly RateWindow[], now: number): Promise<number>;
  /** The milliseconds until every window has room for one more call (0: now), taking nothing. */
  rateWait(key: string, windows: readonly RateWindow[], now: number): Promise<number>;
  /** Gives back the allowance taken at `at` for a call that was never made: the windows count it no more. */
  returnRateAllowance(key: string, at: number): Promise<void>;
}

/** The standing of accounts used by this process only (SQLite: one replica). */
export class InProcessProviderState implements ProviderStateStore {
  readonly shared: boolean = false;
  private readonly standings = new Map<string, AccountStanding>();
  private readonly limiters = new Map<string, SlidingWindowRateLimiter>();

  constructor(private readonly clock: Clock) {}

  within(): ProviderStateStore {
    return this;
  }

  private current(key: string): AccountStanding {
    return this.standings.get(key) ?? HEALTHY_STANDING;
  }

  private write(key: string, change: Partial<AccountStanding>): AccountStanding {
    const next = { ...this.current(key), ...change };
    this.standings.set(key, next);
    return { ...next };
  }

  async register(key: string): Promise<void> {
    if (!this.standings.has(key)) this.standings.set(key, { ...HEALTHY_STANDING });
  }

  async read(key: string): Promise<AccountStanding> {
    return { ...this.current(key) };
  }

  async claimTrial(key: string, owner: string, now: number, until: number): Promise<AccountStanding | undefined> {
    const standing = this.current(key);
    if (standing.trialUntil !== null && standing.trialUntil > now) return undefined;
    return this.write(key, { trialOwner: owner, trialUntil: until });
  }

  private released(key: string, owner: string): Partial<AccountStanding> {
    return this.current(key).trialOwner === owner ? { trialOwner: null, trialUntil: null } : {};
  }

  async recordSuccess(key: string, owner: string): Promise<AccountStanding> {
    return this.write(key, { failures: 0, openedAt: null, ...this.released(key, owner) });
  }

  async recordFailure(key: string, input: { owner: string; threshold: number; reopen: boolean; now: number }): Promise<AccountStanding> {
    const standing = this.current(key);
    const failures = standing.failures + 1;
    const openedAt = input.reopen
      ? input.now
      : standing.openedAt === null && failures >= input.threshold
        ? input.now
        : standing.openedAt;
    return this.write(key, { failures, openedAt, ...this.released(key, input.owner) });
  }

  async releaseTrial(key: string, owner: string): Promise<AccountStanding> {
    return this.write(key, this.released(key, owner));
  }

  async extendCooldown(key: string, until: number): Promise<AccountStanding> {
    return this.write(key, { cooldownUntil: Math.max(this.current(key).cooldownUntil, until) });
  }

  async takeRateAllowance(key: string, windows: readonly RateWindow[]): Promise<number> {
    let limiter = this.limiters.get(key);
    if (!limiter) {
      limiter = new SlidingWindowRateLimiter(windows, this.clock);
      this.limiters.set(key, limiter);
    }
    return limiter.tryAcquire() ? 0 : Math.max(1, limiter.waitTime());
  }

  async rateWait(key: string): Promise<number> {
    return this.limiters.get(key)?.waitTime() ?? 0;
  }

  async returnRateAllowance(key: string, at: number): Promise<void> {
    this.limiters.get(key)?.giveBack(at);
  }
}
