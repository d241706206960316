/**
 * What replicas on one database share about each upstream account besides tasks: its circuit
 * and cool-down (`provider_state`), the calls its rate windows allowed (`rate_grants`, a sliding
 * log) and samples of recent calls (`upstream_calls`). Rows keyed by `key`: `provider:account`
 * (samples also by provider id, for the provider's own figures). Each state change is one conditional statement, so two replicas
 * racing for the same step never both win; the policy (thresholds, windows) is the caller's.
 * `within` gives the same operations inside a transaction another part of the store opened.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Store } from './database.js';
import type { Database, ProviderStateTable } from './schema.js';

/** A `provider_state` row as the caller reads it. */
export interface AccountStateRecord {
  failures: number;
  openedAt: number | null;
  trialOwner: string | null;
  trialUntil: number | null;
  cooldownUntil: number;
}

/** One sliding window: at most `limit` calls in any `windowMs`. */
export interface RateWindowLimit {
  limit: number;
  windowMs: number;
}

export interface UpstreamCallSample {
  key: string;
  at: number;
  ok: boolean;
  latencyMs: number;
}

const EMPTY_STATE: AccountStateRecord = { failures: 0, openedAt: null, trialOwner: null, trialUntil: null, cooldownUntil: 0 };

function recordOf(row: Pick<ProviderStateTable, 'failures' | 'opened_at' | 'trial_owner' | 'trial_until' | 'cooldown_until'> | undefined): AccountStateRecord {
  if (!row) return { ...EMPTY_STATE };
  return {
    failures: Number(row.failures),
    openedAt: row.opened_at === null ? null : Number(row.opened_at),
    trialOwner: row.trial_owner,
    trialUntil: row.trial_until === null ? null : Number(row.trial_until),
    cooldownUntil: Number(row.cooldown_until),
  };
}

const STATE_COLUMNS = ['failures', 'opened_at', 'trial_owner', 'trial_until', 'cooldown_until'] as const;

/** A transaction open on `store`, handed on by the part of the store that opened it (a create's: `TaskStore.createTask`). */
export interface StoreTransaction {
  store: Store;
  db: Transaction<Database>;
}

export class SharedStateStore {
  /** True: every replica on this database sees the same state. */
  readonly shared = true;

  constructor(
    readonly store: Store,
    /** Where the statements run: the store's pool, or one open transaction (`within`). */
    private readonly db: Kysely<Database> = store.db,
  ) {}

  /**
   * The same operations inside `transaction`, on its connection: nothing here then waits for a
   * second connection while the caller holds one, and what is taken (a rate allowance, the trial
   * call) commits or rolls back with the caller's writes.
   */
  within(transaction: StoreTransaction): SharedStateStore {
    if (transaction.store !== this.store) throw new Error('a transaction of another store');
    return new SharedStateStore(this.store, transaction.db);
  }

  /** Makes sure `key` has a row (to lock, and to update conditionally). */
  async register(key: string, now: number): Promise<void> {
    await this.db
      .insertInto('provider_state')
      .values({ key, failures: 0, cooldown_until: 0, updated_at: now })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
  }

  async read(key: string): Promise<AccountStateRecord> {
    return recordOf(await this.db.selectFrom('provider_state').select(STATE_COLUMNS).where('key', '=', key).executeTakeFirst());
  }

  /**
   * Takes the single call allowed while the account is in doubt, for `owner` until `until`, if
   * nobody holds it (or the holder's time ran out). Undefined when someone else holds it.
   */
  async claimTrial(key: string, owner: string, now: number, until: number): Promise<AccountStateRecord | undefined> {
    const row = await this.db
      .updateTable('provider_state')
      .set({ trial_owner: owner, trial_until: until, updated_at: now })
      .where('key', '=', key)
      .where((eb) => eb.or([eb('trial_until', 'is', null), eb('trial_until', '<=', now)]))
      .returning(STATE_COLUMNS)
      .executeTakeFirst();
    return row && recordOf(row);
  }

  /** A healthy answer: no failures in a row, circuit closed, and `owner`'s trial (if any) given back. */
  async recordSuccess(key: string, owner: string, now: number): Promise<AccountStateRecord> {
    const row = await this.db
      .updateTable('provider_state')
      .set({
        failures: 0,
        opened_at: null,
        trial_owner: sql<string | null>`CASE WHEN trial_owner = ${owner} THEN NULL ELSE trial_owner END`,
        trial_until: sql<number | null>`CASE WHEN trial_owner = ${owner} THEN NULL ELSE trial_until END`,
        updated_at: now,
      })
      .where('key', '=', key)
      .returning(STATE_COLUMNS)
      .executeTakeFirst();
    return recordOf(row);
  }

  /**
   * A health failure: one more in a row. The circuit opens (at `now`) when they reach
   * `threshold`, or opens again when `reopen` (a failed probe of an open circuit); a failure of
   * a call sent before the circuit opened does not move the opening. `owner`'s trial is given back.
   */
  async recordFailure(
    key: string,
    input: { owner: string; threshold: number; reopen: boolean; now: number },
  ): Promise<AccountStateRecord> {
    const { owner, threshold, reopen, now } = input;
    const row = await this.db
      .updateTable('provider_state')
      .set({
        failures: sql<number>`failures + 1`,
        opened_at: reopen
          ? now
          : sql<number | null>`CASE WHEN opened_at IS NULL AND failures + 1 >= ${threshold} THEN ${now} ELSE opened_at END`,
        trial_owner: sql<string | null>`CASE WHEN trial_owner = ${owner} THEN NULL ELSE trial_owner END`,
        trial_until: sql<number | null>`CASE WHEN trial_owner = ${owner} THEN NULL ELSE trial_until END`,
        updated_at: now,
      })
      .where('key', '=', key)
      .returning(STATE_COLUMNS)
      .executeTakeFirst();
    return recordOf(row);
  }

  /** Gives `owner`'s trial back without news about health (the call proved nothing). */
  async releaseTrial(key: string, owner: string, now: number): Promise<AccountStateRecord> {
    await this.db
      .updateTable('provider_state')
      .set({ trial_owner: null, trial_until: null, updated_at: now })
      .where('key', '=', key)
      .where('trial_owner', '=', owner)
      .execute();
    return this.read(key);
  }

  /**
   * Gives back every trial `owner` holds, on any account: `owner` is gone (a worker of `WORKERS`
   * that died), so its trial calls will never end, and others may probe at once instead of when
   * the trials run out.
   */
  async releaseTrialsOf(owner: string, now: number): Promise<void> {
    await this.db
      .updateTable('provider_state')
      .set({ trial_owner: null, trial_until: null, updated_at: now })
      .where('trial_owner', '=', owner)
      .execute();
  }

  /** No calls before `until` (kept when a later one was already asked). */
  async extendCooldown(key: string, until: number, now: number): Promise<AccountStateRecord> {
    const greatest = this.store.dialect === 'postgres' ? sql<number>`GREATEST(cooldown_until, ${until})` : sql<number>`MAX(cooldown_until, ${until})`;
    const row = await this.db
      .updateTable('provider_state')
      .set({ cooldown_until: greatest, updated_at: now })
      .where('key', '=', key)
      .returning(STATE_COLUMNS)
      .executeTakeFirst();
    return recordOf(row);
  }

  /**
   * Allows one call of `key` at `now` if every window has room (fewer than `limit` calls in the
   * last `windowMs`), and logs it. Returns 0 when allowed, else how long until the window that
   * is furthest from room has some. Serialized per key (a row lock in PostgreSQL, held until the
   * transaction ends; SQLite serializes writers), so replicas together never pass a window.
   */
  async takeRateAllowance(key: string, windows: readonly RateWindowLimit[], now: number): Promise<number> {
    if (windows.length === 0) return 0;
    const longest = Math.max(...windows.map((window) => window.windowMs));
    const take = async (trx: Kysely<Database>): Promise<number> => {
      await this.lockKey(trx, key);
      const wait = await this.waitIn(trx, key, windows, now);
      if (wait > 0) return wait;
      await trx.insertInto('rate_grants').values({ key, at: now }).execute();
      await trx.deleteFrom('rate_grants').where('key', '=', key).where('at', '<=', now - longest).execute();
      return 0;
    };
    // Inside a transaction already open (`within`), the allowance is part of it.
    return this.db.isTransaction ? take(this.db) : this.db.transaction().execute(take);
  }

  /** Gives back one allowance of `key` taken at `at` (its call was never made). */
  async returnRateAllowance(key: string, at: number): Promise<void> {
    const granted = this.db.selectFrom('rate_grants').select('id').where('key', '=', key).where('at', '=', at).orderBy('id', 'desc').limit(1);
    await this.db.deleteFrom('rate_grants').where('id', 'in', granted).execute();
  }

  /** The milliseconds until every window has room for one more call (0: now), taking nothing. */
  rateWait(key: string, windows: readonly RateWindowLimit[], now: number): Promise<number> {
    return this.waitIn(this.db, key, windows, now);
  }

  private async waitIn(db: Kysely<Database>, key: string, windows: readonly RateWindowLimit[], now: number): Promise<number> {
    let wait = 0;
    for (const window of windows) {
      // The call that has to leave this window before another fits: the `limit`-th newest in it.
      const blocking = await db
        .selectFrom('rate_grants')
        .select('at')
        .where('key', '=', key)
        .where('at', '>', now - window.windowMs)
        .orderBy('at', 'desc')
        .offset(window.limit - 1)
        .limit(1)
        .executeTakeFirst();
      if (blocking) wait = Math.max(wait, Number(blocking.at) + window.windowMs - now, 1);
    }
    return wait;
  }

  private async lockKey(trx: Kysely<Database>, key: string): Promise<void> {
    if (this.store.dialect !== 'postgres') return;
    await trx.selectFrom('provider_state').select('key').where('key', '=', key).forUpdate().execute();
  }

  /** Appends samples of upstream calls. */
  async recordCalls(samples: readonly UpstreamCallSample[]): Promise<void> {
    if (samples.length === 0) return;
    await this.db
      .insertInto('upstream_calls')
      .values(samples.map((sample) => ({ key: sample.key, at: sample.at, ok: sample.ok ? 1 : 0, latency_ms: Math.round(sample.latencyMs) })))
      .execute();
  }

  /** The newest call samples of `key` since `since`, newest first. */
  async recentCalls(key: string, since: number, limit: number): Promise<{ at: number; ok: boolean; latencyMs: number }[]> {
    const rows = await this.db
      .selectFrom('upstream_calls')
      .select(['at', 'ok', 'latency_ms'])
      .where('key', '=', key)
      .where('at', '>=', since)
      .orderBy('at', 'desc')
      .limit(limit)
      .execute();
    return rows.map((row) => ({ at: Number(row.at), ok: Number(row.ok) === 1, latencyMs: Number(row.latency_ms) }));
  }

  /**
   * How long the newest finished tasks of `provider` (since `since`) took from creation to success,
   * newest first; a failure that counts against the provider (`failureCounts`) is +Infinity.
   */
  async recentCompletionTimes(provider: string, since: number, limit: number): Promise<number[]> {
    return (await this.recentCompletions(provider, since, limit)).map((completion) => completion.durationMs);
  }

  /**
   * The newest finished tasks of `provider` (since `since`) that say how soon it delivers, newest
   * first: when each finished, and how long it took from creation to success (+Infinity for a
   * failure of a task the provider accepted, unless the failure is the caller's: the rule of
   * `failureCounts` in `core/upstream/provider-stats.ts`, its `CALLER_FAULT_CODES` named here).
   */
  async recentCompletions(provider: string, since: number, limit: number): Promise<{ at: number; durationMs: number }[]> {
    const code = this.store.dialect === 'postgres' ? sql<string | null>`(error_json::json ->> 'code')` : sql<string | null>`json_extract(error_json, '$.code')`;
    const rows = await this.db
      .selectFrom('tasks')
      .select(['created_at', 'completed_at', 'status'])
      .where('provider', '=', provider)
      // As the partial index `tasks_finished` says it (migration 0022), so it is used.
      .where(sql<boolean>`status in ('succeeded', 'failed')`)
      .where('completed_at', '>=', since)
      .where(sql<boolean>`(status = 'succeeded' or (provider_task_id is not null and coalesce(${code}, '') not in ('content_policy', 'invalid_request')))`)
      .orderBy('completed_at', 'desc')
      .limit(limit)
      .execute();
    return rows.map((row) => ({
      at: Number(row.completed_at),
      durationMs: row.status === 'succeeded' ? Number(row.completed_at) - Number(row.created_at) : Number.POSITIVE_INFINITY,
    }));
  }

  /**
   * Forgets call samples older than `before`. (Rate grants are forgotten by each allowance as
   * they leave the longest window of their key, which may be longer than any sample is kept.)
   */
  async purgeBefore(before: number): Promise<void> {
    await this.db.deleteFrom('upstream_calls').where('at', '<', before).execute();
  }
}
