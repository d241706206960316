/**
 * A provider as the gateway runs it: the adapter plus its configuration, prices, recent figures
 * and its upstream accounts (`provider-account.ts`), each with its own credentials, in-flight
 * cap, rate windows, circuit and cool-down. The router picks a provider, then one of its accounts
 * (`pickAccounts`); a task keeps the account that accepted it, and every later call about it
 * goes through that account. The provider's own circuit and cool-down, as the router and
 * `/v1/providers` show them, sum its accounts up: open only when every account is open.
 */
import type { CircuitStateName, GatewayMetrics } from '../../observability/metrics.js';
import type { Logger } from '../../observability/logger.js';
import type { Clock } from '../clock.js';
import { mergePricing, type PricingConfig } from '../model/pricing.js';
import { LOCAL_ONLY_FEED, type ReplicaFeed } from '../replica-feed.js';
import { DEFAULT_ACCOUNT_ID, ProviderAccount, type AccountCredentials } from './provider-account.js';
import type { VideoProvider } from './provider.js';
import type { ProviderSettings } from './provider-settings.js';
import { InProcessProviderState, type ProviderStateStore } from './provider-state.js';
import { ProviderStats, type ProviderFigures } from './provider-stats.js';

export { isProviderHealthFailure } from './circuit-breaker.js';
export { CircuitBreakerOpenError, RATE_WINDOW_MARGIN_MS, type CallPermit, type ProviderAccount } from './provider-account.js';

/** How busy an account is, for picking one: its tasks in flight (all replicas) against its cap. */
export interface AccountLoad {
  account: ProviderAccount;
  inFlight: number;
}

/**
 * The order a provider's accounts are tried in for a new task: only accounts with a free slot
 * whose circuit is not open and that are not cooling down; the least loaded relative to its cap
 * first, then the healthiest (closed before half-open, then the higher recent success rate),
 * then the order of the configuration.
 */
export function pickAccounts(loads: readonly AccountLoad[], now: number): ProviderAccount[] {
  const healthRank = (account: ProviderAccount) => (account.circuit === 'closed' ? 0 : 1);
  return loads
    .map((load, index) => ({ ...load, index }))
    .filter(({ account, inFlight }) => inFlight < account.maxInFlight && account.circuit !== 'open' && account.coolingDownUntil === 0)
    .sort((a, b) => {
      const share = a.inFlight / a.account.maxInFlight - b.inFlight / b.account.maxInFlight;
      if (share !== 0) return share;
      const health = healthRank(a.account) - healthRank(b.account);
      if (health !== 0) return health;
      const success = (b.account.stats.snapshot(now).successRate ?? 1) - (a.account.stats.snapshot(now).successRate ?? 1);
      if (success !== 0) return success;
      return a.index - b.index;
    })
    .map(({ account }) => account);
}

export interface ProviderRuntimeOptions {
  provider: VideoProvider;
  config: ProviderSettings;
  /** Where requests go (the simulator's URL in the sandbox). */
  baseUrl: string;
  /** The provider's accounts, in configured order; `default` with `apiKey` … when absent (the one-account shorthand). */
  accounts?: readonly AccountCredentials[] | undefined;
  apiKey?: string | undefined;
  /** Access key + secret key (signed tokens), for providers that take them instead of `apiKey`. */
  accessKey?: string | undefined;
  secretKey?: string | undefined;
  /** Which of the provider's API shapes the endpoint speaks (its default when absent). */
  apiShape?: string | undefined;
  /** What the one account's webhooks may be signed with (several while one is rotated). */
  webhookSecrets?: readonly string[] | undefined;
  /** True when this runtime talks to the built-in simulator. */
  simulated: boolean;
  /** Set when the provider must not be used, with the reason shown to callers. */
  disabledReason?: string;
  /** Polling-floor scale: simulators finish in seconds, not minutes. */
  simulatedRunTimeMs?: number;
  clock: Clock;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Where circuit, cool-down and rate windows are kept (default: in this process). */
  state?: ProviderStateStore;
  /** The provider's recent figures (default: in this process). */
  stats?: ProviderFigures;
  /** An account's own figures, when the provider has several (default: in this process). */
  accountStats?: (accountId: string) => ProviderFigures;
  /** This replica's id (who holds a trial). */
  owner?: string;
  /** Tells other replicas when the circuit or cool-down changes. */
  feed?: ReplicaFeed;
}

/** The longest upstream time limit (`timeout_ms`) of `runtimes`: how long an answer may still come. 0 with none. */
export function longestTimeoutMs(runtimes: Iterable<ProviderRuntime>): number {
  let longest = 0;
  for (const runtime of runtimes) longest = Math.max(longest, runtime.config.timeout_ms);
  return longest;
}

export class ProviderRuntime {
  readonly id: string;
  readonly provider: VideoProvider;
  readonly config: ProviderSettings;
  readonly simulated: boolean;
  readonly disabledReason: string | undefined;
  readonly baseUrl: string;
  readonly pricing: PricingConfig | undefined;
  /** The provider's figures: every account's calls, and its tasks' completions. */
  readonly stats: ProviderFigures;
  /** In configured order. */
  readonly accounts: readonly ProviderAccount[];
  /**
   * True when no account has credentials: the stand-in a live start gives a provider left without
   * a key. Nothing can ask it about anything, so it has no account to ask with (`account`).
   */
  readonly keyless: boolean;
  private readonly metrics: GatewayMetrics;
  private readonly simulatedRunTimeMs: number | undefined;
  private shownCircuit: CircuitStateName = 'closed';

  constructor(options: ProviderRuntimeOptions) {
    this.id = options.provider.id;
    this.provider = options.provider;
    this.config = options.config;
    this.simulated = options.simulated;
    this.disabledReason = options.config.enabled ? options.disabledReason : 'disabled in configuration';
    this.baseUrl = options.baseUrl;
    try {
      this.pricing = mergePricing(options.provider.defaultPricing, options.config.pricing);
    } catch (error) {
      throw new Error(`providers.${options.provider.id}.${(error as Error).message}`);
    }
    this.metrics = options.metrics;
    this.simulatedRunTimeMs = options.simulatedRunTimeMs;
    this.stats = options.stats ?? new ProviderStats();
    this.metrics.setCircuitState(this.id, 'closed');
    const credentials: readonly AccountCredentials[] = options.accounts ?? [
      {
        id: DEFAULT_ACCOUNT_ID,
        apiKey: options.apiKey,
        accessKey: options.accessKey,
        secretKey: options.secretKey,
        webhookSecrets: options.webhookSecrets,
      },
    ];
    if (credentials.length === 0) throw new Error(`providers.${this.id}: no account`);
    this.keyless = credentials.every((account) => !account.apiKey && !(account.accessKey && account.secretKey));
    const state = options.state ?? new InProcessProviderState(options.clock);
    const alone = credentials.length === 1;
    this.accounts = credentials.map(
      (account) =>
        new ProviderAccount({
          provider: options.provider,
          config: options.config,
          credentials: account,
          baseUrl: options.baseUrl,
          apiShape: options.apiShape,
          clock: options.clock,
          metrics: options.metrics,
          logger: options.logger,
          state,
          // A lone account's figures are the provider's.
          stats: alone ? this.stats : (options.accountStats?.(account.id) ?? new ProviderStats()),
          providerStats: this.stats,
          owner: options.owner ?? 'this-process',
          feed: options.feed ?? LOCAL_ONLY_FEED,
          onCircuitChange: () => this.showCircuit(),
        }),
    );
  }

  get enabled(): boolean {
    return this.disabledReason === undefined;
  }

  /** Makes sure every account has its shared row, and reads how each stands. */
  async start(): Promise<void> {
    for (const account of this.accounts) await account.start();
    this.showCircuit();
  }

  /**
   * The account of this id (a task's), if it is still configured with a key: a call about the task
   * without one could only fail (a provider left without a key has none).
   */
  account(id: string | null | undefined): ProviderAccount | undefined {
    if (this.keyless) return undefined;
    return this.accounts.find((account) => account.id === (id ?? DEFAULT_ACCOUNT_ID));
  }

  /** Tasks in flight at once over all accounts. */
  get maxInFlight(): number {
    return this.accounts.reduce((sum, account) => sum + account.maxInFlight, 0);
  }

  /**
   * The provider's circuit as the router sees it: closed while any account is closed, open only
   * when every account's is.
   */
  get circuit(): CircuitStateName {
    const states = this.accounts.map((account) => account.circuit);
    if (states.includes('closed')) return 'closed';
    if (states.includes('half_open')) return 'half_open';
    return 'open';
  }

  /** While every account's circuit is open, when the first of them may take a probe (clock ms); else undefined. */
  get probeAt(): number | undefined {
    const at = this.accounts.map((account) => account.probeAt);
    return at.includes(undefined) ? undefined : Math.min(...(at as number[]));
  }

  /** Until when every account is cooling down (the earliest of them), or 0 while one is not. */
  get coolingDownUntil(): number {
    const until = this.accounts.map((account) => account.coolingDownUntil);
    return until.includes(0) ? 0 : Math.min(...until);
  }

  /** Shares this replica's figures and reads every replica's: the provider's, and each account's own. */
  async refreshFigures(now: number): Promise<void> {
    const figures = new Set<ProviderFigures>([this.stats, ...this.accounts.map((account) => account.stats)]);
    await Promise.all([...figures].map((stats) => stats.refresh(now)));
  }

  /** Re-reads every account's standing. */
  async refreshStanding(): Promise<void> {
    await Promise.all(this.accounts.map((account) => account.refreshStanding()));
  }

  private showCircuit(): void {
    const shown = this.circuit;
    if (shown === this.shownCircuit) return;
    this.shownCircuit = shown;
    this.metrics.setCircuitState(this.id, shown);
  }

  /** Earliest a first status poll makes sense for a request (simulators are faster). */
  minimumRunTimeMs(request: Parameters<VideoProvider['minimumRunTimeMs']>[0]): number {
    const real = this.provider.minimumRunTimeMs(request);
    return this.simulatedRunTimeMs !== undefined ? Math.min(real, this.simulatedRunTimeMs) : real;
  }
}
