/**
 * Routing policy (SPEC §3) as data and pure functions: which providers may serve a request,
 * with every reason the others may not, and the order to try them in. `quote`, `create` and
 * `/v1/models` all read this, so the order a quote shows is the order a create tries.
 */
import type { RoutingOverride, RoutingStrategy } from './canonical.js';
import { matchOffering, requestAsServed, type ResolvedRequest } from './capabilities.js';
import type { CostEstimate, PricingConfig } from './pricing.js';
import { priceRequest } from './pricing.js';
import type { Offering } from './offerings.js';

/** What routing needs to know about a provider (a plain view of its runtime). */
export interface RoutingProvider {
  id: string;
  provider: { readonly offerings: readonly Offering[] };
  enabled: boolean;
  /** Why it is not enabled (shown as the reason). */
  disabledReason?: string;
  priority: number;
  weight: number;
  pricing: PricingConfig | undefined;
  /**
   * Recent median time to deliver, for `fastest`: a failure the provider is answerable for counts
   * as a delivery that never came (Infinity); null without recent finished tasks.
   */
  medianDeliveryMs: number | null;
}

export interface RoutingPolicy {
  strategy: RoutingStrategy;
  allowFallbacks: boolean;
  /** When the request is priced (its creation time); prices in effect then apply. Default: now. */
  at?: number;
  /** The caller's spending rules, when its tenant has a budget. */
  spendLimit?: SpendLimit;
  /**
   * Where the video the request names by `video_id` was made, when a task here made it: it
   * exists only in that provider account, so no other provider can serve the request.
   */
  source?: VideoSource;
}

/** The provider account that made a video a request names by `video_id`. */
export interface VideoSource {
  provider: string;
  account: string;
}

/** Why a provider other than the one that made the `video_id` cannot serve the request. */
export function sourceVideoReason(source: VideoSource): string {
  return `video_id names a video ${source.provider} made (account ${source.account}); only that account holds it`;
}

/**
 * What a budgeted tenant's tasks must satisfy to go to a provider: a price for the request (an
 * unpriced task cannot be reserved), in the budget's currency, within the per-task limit.
 */
export interface SpendLimit {
  /** Whose budget it is (named in reasons). */
  tenant: string;
  currency: string;
  /** Largest estimated currency amount one task may have. */
  perTask?: number;
}

/** One provider's standing for one request. */
export interface ProviderEvaluation {
  provider: string;
  eligible: boolean;
  /** Why not (empty when eligible). */
  reasons: string[];
  warnings: string[];
  offering?: Offering;
  estimate?: CostEstimate;
  /** What one credit is worth under the rule that gave the estimate. */
  creditValue?: number;
  priority: number;
  weight: number;
  medianDeliveryMs: number | null;
}

export interface RoutePlan {
  strategy: RoutingStrategy;
  /** Eligible providers in the order they will be tried. */
  order: ProviderEvaluation[];
  /** Every provider, eligible or not. */
  evaluations: ProviderEvaluation[];
}

/** Evaluates every provider for a request: capabilities, configuration, per-request routing. */
export function evaluateProviders(
  providers: readonly RoutingProvider[],
  resolved: ResolvedRequest,
  override: RoutingOverride | undefined,
  context: Pick<RoutingPolicy, 'at' | 'spendLimit' | 'source'> = {},
): ProviderEvaluation[] {
  return providers.map((candidate) => {
    const reasons: string[] = [];
    if (!candidate.enabled) reasons.push(candidate.disabledReason ?? 'disabled in configuration');
    if (override?.exclude?.includes(candidate.id)) reasons.push('excluded by routing.exclude');
    if (override?.providers && !override.providers.includes(candidate.id)) {
      reasons.push('not listed in routing.providers');
    }
    if (context.source && context.source.provider !== candidate.id) reasons.push(sourceVideoReason(context.source));
    const match = matchOffering(candidate.provider.offerings, resolved);
    reasons.push(...match.reasons);
    const priced = match.offering ? priceRequest(candidate.pricing, requestAsServed(match.offering, resolved.request), context.at) : undefined;
    const estimate = priced?.estimate;
    if (override?.max_credits !== undefined && match.offering) {
      if (!estimate) reasons.push('no price configured for this request, so max_credits cannot be checked');
      else if (estimate.credits > override.max_credits) {
        reasons.push(`estimated ${estimate.credits} credits exceeds max_credits ${override.max_credits}`);
      }
    }
    const limit = context.spendLimit;
    if (limit && match.offering) reasons.push(...spendLimitReasons(limit, estimate));
    return {
      provider: candidate.id,
      eligible: reasons.length === 0,
      reasons,
      warnings: match.warnings,
      ...(match.offering ? { offering: match.offering } : {}),
      ...(priced ? { estimate: priced.estimate, creditValue: priced.creditValue } : {}),
      priority: candidate.priority,
      weight: candidate.weight,
      medianDeliveryMs: candidate.medianDeliveryMs,
    };
  });
}

/** Why a budgeted tenant's task may not go to a provider with this estimate. */
function spendLimitReasons(limit: SpendLimit, estimate: CostEstimate | undefined): string[] {
  if (!estimate) return [`no price configured for this request, and tenant ${limit.tenant} has a budget (every task must be priced)`];
  if (estimate.currency !== limit.currency) {
    return [`priced in ${estimate.currency}, but tenant ${limit.tenant}'s budget is in ${limit.currency}`];
  }
  if (limit.perTask !== undefined && estimate.currencyAmount > limit.perTask) {
    return [`estimated ${estimate.currencyAmount} ${estimate.currency} exceeds tenant ${limit.tenant}'s per-task limit of ${limit.perTask} ${limit.currency}`];
  }
  return [];
}

/**
 * The currencies that priced these evaluations, with the providers in each (unpriced ones left
 * out: `cheapest` puts them last without comparing them).
 */
function pricingCurrencies(evaluations: readonly { provider: string; currency: string | undefined }[]): Map<string, string[]> {
  const currencies = new Map<string, string[]>();
  for (const { provider, currency } of evaluations) {
    if (currency === undefined) continue;
    currencies.set(currency, [...(currencies.get(currency) ?? []), provider]);
  }
  return currencies;
}

const listCurrencies = (currencies: Map<string, string[]>) =>
  [...currencies].map(([currency, providers]) => `${providers.join(', ')}: ${currency}`).join('; ');

/**
 * Why `cheapest` cannot be the configured strategy (`routing.strategy`) over these providers:
 * it orders by estimated amount, and the gateway converts no currency, so 0.40 USD against
 * 0.45 EUR is no comparison (the same rule as budgets). Disabled providers never compete.
 * One line naming the fields, or none.
 */
export function cheapestCurrencyProblems(
  strategy: RoutingStrategy,
  providers: readonly { id: string; enabled: boolean; currency: string | undefined }[],
): string[] {
  if (strategy !== 'cheapest') return [];
  const currencies = pricingCurrencies(providers.filter((p) => p.enabled).map((p) => ({ provider: p.id, currency: p.currency })));
  if (currencies.size <= 1) return [];
  return [
    `routing.strategy: cheapest compares estimated amounts, but enabled providers price in different currencies ` +
      `(providers.<id>.pricing.currency — ${listCurrencies(currencies)}); amounts are not converted between currencies ` +
      `(give them the same currency, or choose another strategy)`,
  ];
}

/**
 * Why a plan ordered by `cheapest` would be no comparison: its eligible providers price this
 * request in different currencies (possible when a request asks for `cheapest` itself and the
 * configured strategy is another). Undefined when the order stands.
 */
export function incomparableCheapest(plan: RoutePlan): string | undefined {
  if (plan.strategy !== 'cheapest') return undefined;
  // The eligible ones, not `order`: `allow_fallbacks: false` keeps only the winner of the comparison.
  const eligible = plan.evaluations.filter((e) => e.eligible);
  const currencies = pricingCurrencies(eligible.map((e) => ({ provider: e.provider, currency: e.estimate?.currency })));
  if (currencies.size <= 1) return undefined;
  return (
    `cheapest cannot order providers that price in different currencies (${listCurrencies(currencies)}); amounts are not ` +
    `converted between currencies: limit routing.providers to one currency, or choose another strategy`
  );
}

const byPriority = (a: ProviderEvaluation, b: ProviderEvaluation) =>
  a.priority - b.priority || a.provider.localeCompare(b.provider);

/** Sorts with `undefined` keys last, ties broken by priority. */
function byKey(key: (e: ProviderEvaluation) => number | null | undefined) {
  return (a: ProviderEvaluation, b: ProviderEvaluation) => {
    const ka = key(a);
    const kb = key(b);
    if (ka == null && kb == null) return byPriority(a, b);
    if (ka == null) return 1;
    if (kb == null) return -1;
    return ka - kb || byPriority(a, b);
  };
}

/** `fastest`'s tiers: a median time to deliver, then no history, then mostly failures. */
function deliveryRank(ms: number | null): number {
  if (ms === null) return 1;
  return Number.isFinite(ms) ? 0 : 2;
}

/**
 * Orders eligible providers by a strategy.
 * - `priority`: configured rank.
 * - `cheapest`: lowest estimated currency amount for this request; unpriced last.
 * - `weighted`: random order where each provider's chance to lead is its share of the weights
 *   (Efraimidis–Spirakis keys, compared by their logarithm); weight 0 only as a last resort.
 * - `fastest`: lowest recent median time to deliver; providers without history next, those whose
 *   recent tasks mostly failed (Infinity) last: a provider without history may deliver, they do not.
 */
export function orderByStrategy(
  strategy: RoutingStrategy,
  eligible: readonly ProviderEvaluation[],
  random: () => number = Math.random,
): ProviderEvaluation[] {
  const list = [...eligible];
  switch (strategy) {
    case 'priority':
      return list.sort(byPriority);
    case 'cheapest':
      return list.sort(byKey((e) => e.estimate?.currencyAmount));
    case 'fastest':
      return list.sort((a, b) => deliveryRank(a.medianDeliveryMs) - deliveryRank(b.medianDeliveryMs) || byKey((e) => e.medianDeliveryMs)(a, b));
    case 'weighted': {
      // The key u^(1/w) compared by its logarithm, ln(u)/w: the same order, but u^(1/w) itself is
      // 0 in floating point for most draws when w is small (0.0001 → u^10000), and such ties
      // went to the configured priority instead of the weights.
      const keyed = list.map((e) => ({
        e,
        key: e.weight > 0 ? Math.log(Math.max(random(), Number.MIN_VALUE)) / e.weight : Number.NEGATIVE_INFINITY,
      }));
      return keyed.sort((a, b) => (a.key === b.key ? 0 : b.key - a.key) || byPriority(a.e, b.e)).map((k) => k.e);
    }
  }
}

/** Whether `routing.providers` without a strategy is the exact try order (a strategy given orders within the list). */
export function inExactOrder(override: RoutingOverride | undefined): boolean {
  return Boolean(override?.providers && !override.strategy);
}

/**
 * For an order `weighted` drew at random: each eligible provider's chance to come first (its
 * share of the eligible providers' weights; 0 for weight 0), so that a quote can say its order is
 * one draw and a create draws its own. Undefined when the order is not drawn: another strategy,
 * `routing.providers` as the exact order, or fewer than two eligible providers with a weight.
 */
export function leadShares(plan: RoutePlan, override: RoutingOverride | undefined): Map<string, { share: number; weight: number; total: number }> | undefined {
  if (plan.strategy !== 'weighted' || inExactOrder(override)) return undefined;
  const eligible = plan.evaluations.filter((e) => e.eligible);
  if (eligible.filter((e) => e.weight > 0).length < 2) return undefined;
  // Read to 12 significant digits: 0.1 + 0.2 is shown as 0.3.
  const total = Number(eligible.reduce((sum, e) => sum + e.weight, 0).toPrecision(12));
  return new Map(eligible.map((e) => [e.provider, { share: e.weight / total, weight: e.weight, total }]));
}

/**
 * The whole routing decision for a request: evaluations of every provider and the try order.
 * `routing.providers` without a strategy is taken as the exact order; with one, the strategy
 * orders within the list. `allow_fallbacks: false` keeps only the first.
 */
export function planRoute(
  providers: readonly RoutingProvider[],
  resolved: ResolvedRequest,
  policy: RoutingPolicy,
  override: RoutingOverride | undefined,
  random: () => number = Math.random,
): RoutePlan {
  const evaluations = evaluateProviders(providers, resolved, override, policy);
  const eligible = evaluations.filter((e) => e.eligible);
  const strategy = override?.strategy ?? policy.strategy;
  let order: ProviderEvaluation[];
  if (override?.providers && inExactOrder(override)) {
    order = [...new Set(override.providers)]
      .map((id) => eligible.find((e) => e.provider === id))
      .filter((e): e is ProviderEvaluation => e !== undefined);
  } else {
    order = orderByStrategy(strategy, eligible, random);
  }
  const allowFallbacks = override?.allow_fallbacks ?? policy.allowFallbacks;
  if (!allowFallbacks) order = order.slice(0, 1);
  return { strategy, order, evaluations };
}
