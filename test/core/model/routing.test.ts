/**
 * Routing policy (SPEC §3) on hand-written providers: which providers are eligible for a
 * request and why the others are not, and the order each strategy tries them in. Prices are
 * real `PricingConfig`s so `cheapest` is judged on the estimate for the exact request.
 */
import { describe, expect, it } from 'vitest';
import type { CreateVideoRequest, RoutingOverride } from '../../../src/core/model/canonical.js';
import { resolveRequest } from '../../../src/core/model/capabilities.js';
import { PricingConfig } from '../../../src/core/model/pricing.js';
import type { Offering } from '../../../src/core/model/offerings.js';
import {
  evaluateProviders,
  orderByStrategy,
  planRoute,
  type ProviderEvaluation,
  type RoutingPolicy,
  type RoutingProvider,
} from '../../../src/core/model/routing.js';

const V3_TEXT: Offering = {
  model: 'kling-v3',
  qualities: ['pro', 'std'],
  operation: 'text-to-video',
  upstream: 'POST /v3/text',
  fields: {
    prompt: { maxLength: 2500 },
    duration: { values: [5, 10] },
    aspect_ratio: { values: ['16:9', '9:16', '1:1'] },
    audio: { values: [true, false] },
  },
};

const V3_TEXT_PRO_SILENT: Offering = {
  model: 'kling-v3',
  qualities: ['pro'],
  operation: 'text-to-video',
  upstream: 'POST /v3/text-pro',
  fields: { prompt: { maxLength: 2000 }, duration: { min: 3, max: 15 }, aspect_ratio: { values: ['16:9'] } },
};

/** Prices as config.yaml ships them for Freepik: one credit is one US cent. */
const FREEPIK_PRICES = PricingConfig.parse({
  currency: 'USD',
  credit_value: 0.01,
  rules: [
    { model: 'kling-v3', quality: 'pro', credits_per_second: 11.2 },
    { model: 'kling-v3', quality: 'std', credits_per_second: 8.4 },
  ],
});

/** kling3api's credit table for Kling 3.0 pro (audio decides the price), USD 0.001 a credit. */
const KLING3API_PRICES = PricingConfig.parse({
  currency: 'USD',
  credit_value: 0.001,
  rules: [
    { model: 'kling-v3', quality: 'pro', audio: true, credits_per_second: 80 },
    { model: 'kling-v3', quality: 'pro', audio: false, credits_per_second: 54 },
  ],
});

/** A flat price per task whatever the duration. */
const FLAT_PRICES = PricingConfig.parse({
  currency: 'USD',
  credit_value: 0.1,
  rules: [{ model: 'kling-v3', credits_per_task: 5 }],
});

function provider(id: string, overrides: Partial<RoutingProvider> = {}): RoutingProvider {
  return {
    id,
    provider: { offerings: [V3_TEXT] },
    enabled: true,
    priority: 100,
    weight: 1,
    pricing: undefined,
    medianDeliveryMs: null,
    ...overrides,
  };
}

function resolved(input: Partial<CreateVideoRequest> = {}) {
  return resolveRequest({ model: 'kling-v3', prompt: 'a red fox in snow', ...input });
}

const PRIORITY: RoutingPolicy = { strategy: 'priority', allowFallbacks: true };

function ids(list: readonly ProviderEvaluation[]): string[] {
  return list.map((evaluation) => evaluation.provider);
}

function plan(
  providers: readonly RoutingProvider[],
  override?: RoutingOverride,
  input: Partial<CreateVideoRequest> = {},
  policy: RoutingPolicy = PRIORITY,
  random?: () => number,
) {
  return planRoute(providers, resolved(input), policy, override, random);
}

/** mulberry32: a small seeded generator, so weighted draws are the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('priority strategy', () => {
  it('tries providers by configured rank, lowest first', () => {
    const providers = [provider('c', { priority: 3 }), provider('a', { priority: 1 }), provider('b', { priority: 2 })];
    expect(ids(plan(providers).order)).toEqual(['a', 'b', 'c']);
  });

  it('breaks a tie in rank by provider id', () => {
    const providers = [provider('zeta', { priority: 1 }), provider('alpha', { priority: 1 }), provider('mid', { priority: 0 })];
    expect(ids(plan(providers).order)).toEqual(['mid', 'alpha', 'zeta']);
  });

  it('reports the strategy it used and evaluates every provider, eligible or not', () => {
    const result = plan([provider('a'), provider('b', { enabled: false })]);
    expect(result.strategy).toBe('priority');
    expect(ids(result.evaluations)).toEqual(['a', 'b']);
    expect(ids(result.order)).toEqual(['a']);
  });
});

describe('cheapest strategy', () => {
  const providers = [
    provider('freepik', { priority: 1, pricing: FREEPIK_PRICES }),
    provider('kling3api', { priority: 2, pricing: KLING3API_PRICES }),
    provider('flat', { priority: 3, pricing: FLAT_PRICES }),
  ];
  const cheapest: RoutingPolicy = { strategy: 'cheapest', allowFallbacks: true };

  it('orders by the estimated currency amount of this request (5 s pro with audio)', () => {
    const result = plan(providers, undefined, {}, cheapest);
    // kling3api 80 × 5 × 0.001 = 0.40; flat 5 × 0.1 = 0.50; freepik 11.2 × 5 × 0.01 = 0.56.
    expect(ids(result.order)).toEqual(['kling3api', 'flat', 'freepik']);
    expect(result.order.map((e) => e.estimate?.currencyAmount)).toEqual([0.4, 0.5, 0.56]);
  });

  it('judges the duration asked for: a per-task price wins a long video', () => {
    const result = plan(providers, undefined, { duration: 10 }, cheapest);
    // flat 0.50; kling3api 0.80; freepik 1.12.
    expect(ids(result.order)).toEqual(['flat', 'kling3api', 'freepik']);
  });

  it('judges the audio asked for: the silent price applies when audio is off', () => {
    const result = plan(providers, undefined, { audio: false }, cheapest);
    expect(result.order[0]?.provider).toBe('kling3api');
    expect(result.order[0]?.estimate).toEqual({ credits: 270, currencyAmount: 0.27, currency: 'USD' });
  });

  it('judges the quality asked for: a provider with no price for it goes last', () => {
    const result = plan(providers, undefined, { quality: 'std' }, cheapest);
    // kling3api prices only pro here: unpriced, so last although otherwise cheapest.
    expect(ids(result.order)).toEqual(['freepik', 'flat', 'kling3api']);
    expect(result.order[2]?.estimate).toBeUndefined();
  });

  it('compares the currency amount, not the number of credits', () => {
    // 400 kling3api credits (USD 0.40) are cheaper than 56 Freepik credits (USD 0.56).
    const order = plan(providers.slice(0, 2), undefined, {}, cheapest).order;
    expect(order.map((e) => [e.provider, e.estimate?.credits])).toEqual([
      ['kling3api', 400],
      ['freepik', 56],
    ]);
  });

  it('breaks an equal price by priority, and orders unpriced providers by priority', () => {
    const result = plan(
      [
        provider('b', { priority: 2, pricing: FREEPIK_PRICES }),
        provider('a', { priority: 5, pricing: FREEPIK_PRICES }),
        provider('unpriced-late', { priority: 9 }),
        provider('unpriced-early', { priority: 0 }),
      ],
      undefined,
      {},
      cheapest,
    );
    expect(ids(result.order)).toEqual(['b', 'a', 'unpriced-early', 'unpriced-late']);
  });
});

describe('weighted strategy', () => {
  function evaluations(weights: Record<string, number>): ProviderEvaluation[] {
    return evaluateProviders(
      Object.entries(weights).map(([id, weight], index) => provider(id, { weight, priority: index })),
      resolved(),
      undefined,
    );
  }

  it('lets each provider lead in proportion to its weight over many draws', () => {
    const random = seededRandom(42);
    const eligible = evaluations({ heavy: 2, light: 1, other: 1 });
    const leads: Record<string, number> = { heavy: 0, light: 0, other: 0 };
    const draws = 20_000;
    for (let i = 0; i < draws; i++) {
      const first = orderByStrategy('weighted', eligible, random)[0]?.provider ?? 'none';
      leads[first] = (leads[first] ?? 0) + 1;
    }
    const share = (id: string) => (leads[id] ?? 0) / draws;
    // Expected shares 2/4, 1/4, 1/4; 20 000 draws put each within a percentage point or so.
    expect(Math.abs(share('heavy') - 0.5)).toBeLessThan(0.02);
    expect(Math.abs(share('light') - 0.25)).toBeLessThan(0.02);
    expect(Math.abs(share('other') - 0.25)).toBeLessThan(0.02);
  });

  it('follows the ratio of weights however small they are written (0.0001 : 0.0003 as 1 : 3)', () => {
    // u^(1/w) with w = 0.0001 is u^10000, which is 0 in floating point for 93 % of the draws:
    // every such tie went to the configured priority instead of the weights.
    const random = seededRandom(42);
    const eligible = evaluations({ light: 0.0001, heavy: 0.0003 });
    let heavyLeads = 0;
    const draws = 20_000;
    for (let i = 0; i < draws; i++) {
      if (orderByStrategy('weighted', eligible, random)[0]?.provider === 'heavy') heavyLeads++;
    }
    expect(Math.abs(heavyLeads / draws - 0.75)).toBeLessThan(0.02);
  });

  it('puts a weight-0 provider last in every draw, yet keeps it as a last resort', () => {
    const random = seededRandom(7);
    const eligible = evaluations({ zero: 0, a: 1, b: 3 });
    for (let i = 0; i < 500; i++) {
      const order = ids(orderByStrategy('weighted', eligible, random));
      expect(order).toHaveLength(3);
      expect(order[2]).toBe('zero');
    }
  });

  it('falls back to priority order when every weight is 0', () => {
    // Listed against their priority, so the order can only come from it.
    const order = orderByStrategy('weighted', evaluations({ first: 0, second: 0, third: 0 }).reverse(), seededRandom(1));
    expect(ids(order)).toEqual(['first', 'second', 'third']);
  });

  it('is the same order for the same random sequence', () => {
    const eligible = evaluations({ a: 1, b: 1, c: 1, d: 1 });
    const run = () => Array.from({ length: 20 }, (_, i) => ids(orderByStrategy('weighted', eligible, seededRandom(i))).join());
    expect(run()).toEqual(run());
    // And the draws do vary between seeds: not a fixed order in disguise.
    expect(new Set(run()).size).toBeGreaterThan(1);
  });

  it('lets the heavier provider lead when every draw is the same, even a draw of 0', () => {
    // Equal draws u give u^(1/w), larger for larger w; a draw of 0 must not flatten that to a tie.
    expect(ids(orderByStrategy('weighted', evaluations({ a: 1, b: 2 }), () => 0.5))).toEqual(['b', 'a']);
    expect(ids(orderByStrategy('weighted', evaluations({ a: 1, b: 2 }), () => 0))).toEqual(['b', 'a']);
  });
});

describe('fastest strategy', () => {
  it('orders by recent median time to complete, providers without history last', () => {
    const fastest: RoutingPolicy = { strategy: 'fastest', allowFallbacks: true };
    const result = plan(
      [
        provider('slow', { priority: 1, medianDeliveryMs: 240_000 }),
        provider('unknown', { priority: 0, medianDeliveryMs: null }),
        provider('quick', { priority: 3, medianDeliveryMs: 60_000 }),
        provider('quick-too', { priority: 2, medianDeliveryMs: 60_000 }),
      ],
      undefined,
      {},
      fastest,
    );
    expect(ids(result.order)).toEqual(['quick-too', 'quick', 'slow', 'unknown']);
  });
});

describe('per-request routing override', () => {
  const providers = [
    provider('freepik', { priority: 1, pricing: FREEPIK_PRICES }),
    provider('kling3api', { priority: 2, pricing: KLING3API_PRICES }),
    provider('kling-legacy', { priority: 3 }),
  ];

  it('routing.providers without a strategy is the exact order, and limits to the list', () => {
    const result = plan(providers, { providers: ['kling-legacy', 'freepik'] });
    expect(ids(result.order)).toEqual(['kling-legacy', 'freepik']);
    const left = result.evaluations.find((e) => e.provider === 'kling3api');
    expect(left?.eligible).toBe(false);
    expect(left?.reasons).toEqual(['not listed in routing.providers']);
  });

  // Regression: see the commit that fixed it.
  it('routing.providers that names a provider twice tries it once', () => {
    const result = plan(providers, { providers: ['kling3api', 'kling3api', 'freepik'] });
    expect(ids(result.order)).toEqual(['kling3api', 'freepik']);
  });

  it('routing.providers skips a listed provider that is not eligible', () => {
    const result = plan(
      [provider('a'), provider('b', { enabled: false }), provider('c')],
      { providers: ['b', 'c', 'a'] },
    );
    expect(ids(result.order)).toEqual(['c', 'a']);
  });

  it('routing.providers with a strategy orders the listed providers by that strategy', () => {
    const result = plan(providers, { providers: ['freepik', 'kling3api'], strategy: 'cheapest' });
    expect(result.strategy).toBe('cheapest');
    expect(ids(result.order)).toEqual(['kling3api', 'freepik']);
  });

  it('a strategy in the request replaces the configured one', () => {
    const result = plan(providers, { strategy: 'cheapest' });
    expect(result.strategy).toBe('cheapest');
    // kling-legacy has no price: last.
    expect(ids(result.order)).toEqual(['kling3api', 'freepik', 'kling-legacy']);
  });

  it('exclude removes a provider, saying why', () => {
    const result = plan(providers, { exclude: ['freepik'] });
    expect(ids(result.order)).toEqual(['kling3api', 'kling-legacy']);
    expect(result.evaluations[0]).toMatchObject({
      provider: 'freepik',
      eligible: false,
      reasons: ['excluded by routing.exclude'],
    });
  });

  it('allow_fallbacks: false keeps only the first provider', () => {
    expect(ids(plan(providers, { allow_fallbacks: false }).order)).toEqual(['freepik']);
    expect(ids(plan(providers, { allow_fallbacks: false, strategy: 'cheapest' }).order)).toEqual(['kling3api']);
  });

  it('allow_fallbacks: false in config keeps one, and the request may turn fallbacks back on', () => {
    const pinned: RoutingPolicy = { strategy: 'priority', allowFallbacks: false };
    expect(ids(plan(providers, undefined, {}, pinned).order)).toEqual(['freepik']);
    expect(ids(plan(providers, { allow_fallbacks: true }, {}, pinned).order)).toHaveLength(3);
  });

  it('max_credits excludes providers over budget and providers it cannot price, with reasons', () => {
    // freepik 56 credits, kling3api 400 credits, kling-legacy unpriced.
    const result = plan(providers, { max_credits: 100 });
    expect(ids(result.order)).toEqual(['freepik']);
    const reasons = Object.fromEntries(result.evaluations.map((e) => [e.provider, e.reasons]));
    expect(reasons).toEqual({
      freepik: [],
      kling3api: ['estimated 400 credits exceeds max_credits 100'],
      'kling-legacy': ['no price configured for this request, so max_credits cannot be checked'],
    });
  });

  it('max_credits equal to the estimate is within budget', () => {
    expect(ids(plan(providers, { max_credits: 56 }).order)).toEqual(['freepik']);
  });
});

describe('evaluateProviders', () => {
  it('says a disabled provider is disabled in configuration', () => {
    const [evaluation] = evaluateProviders([provider('off', { enabled: false })], resolved(), undefined);
    expect(evaluation).toMatchObject({ provider: 'off', eligible: false, reasons: ['disabled in configuration'] });
  });

  it('passes capability reasons through, and gives every reason at once', () => {
    const [evaluation] = evaluateProviders(
      [provider('p', { enabled: false })],
      resolved({ duration: 15 }),
      { exclude: ['p'] },
    );
    expect(evaluation?.eligible).toBe(false);
    expect(evaluation?.reasons).toEqual([
      'disabled in configuration',
      'excluded by routing.exclude',
      'duration 15 is not supported (allowed: 5, 10)',
    ]);
    expect(evaluation?.offering).toBeUndefined();
    expect(evaluation?.estimate).toBeUndefined();
  });

  it('names the operations a provider does serve when it does not serve this one', () => {
    const [evaluation] = evaluateProviders(
      [provider('p')],
      resolved({ start_image_url: 'https://example.com/a.png' }),
      undefined,
    );
    expect(evaluation?.reasons).toEqual(['does not serve image-to-video with kling-v3; it serves kling-v3 for text-to-video']);
  });

  it('passes capability warnings through on an eligible provider', () => {
    const [evaluation] = evaluateProviders(
      [provider('silent', { provider: { offerings: [V3_TEXT_PRO_SILENT] } })],
      resolved(),
      undefined,
    );
    expect(evaluation?.eligible).toBe(true);
    expect(evaluation?.offering).toBe(V3_TEXT_PRO_SILENT);
    expect(evaluation?.warnings).toEqual([
      'audio defaults to true but kling-v3 text-to-video here cannot generate it',
    ]);
  });

  it('carries priority, weight, median and the estimate for the order and the quote', () => {
    const [evaluation] = evaluateProviders(
      [provider('p', { priority: 4, weight: 3, medianDeliveryMs: 90_000, pricing: FREEPIK_PRICES })],
      resolved(),
      undefined,
    );
    expect(evaluation).toMatchObject({
      eligible: true,
      reasons: [],
      priority: 4,
      weight: 3,
      medianDeliveryMs: 90_000,
      estimate: { credits: 56, currencyAmount: 0.56, currency: 'USD' },
    });
  });

  it('leaves nothing eligible when no provider can serve the request', () => {
    const result = plan([provider('a'), provider('b')], undefined, { aspect_ratio: 'auto' });
    expect(result.order).toEqual([]);
    expect(result.evaluations.every((e) => e.reasons[0] === 'aspect_ratio "auto" is not supported (allowed: "16:9", "9:16", "1:1")')).toBe(true);
  });
});

describe('a budgeted tenant (spend limit)', () => {
  const EUR_PRICES = PricingConfig.parse({ currency: 'EUR', credit_value: 0.01, rules: [{ model: 'kling-v3', credits_per_second: 10 }] });
  const budgeted = (perTask?: number): RoutingPolicy => ({
    ...PRIORITY,
    spendLimit: { tenant: 'acme', currency: 'USD', ...(perTask !== undefined ? { perTask } : {}) },
  });

  it('passes over providers without a price for the request: an unpriced task cannot be reserved', () => {
    const result = plan([provider('unpriced', { priority: 1 }), provider('freepik', { priority: 2, pricing: FREEPIK_PRICES })], undefined, {}, budgeted());
    expect(ids(result.order)).toEqual(['freepik']);
    expect(result.evaluations[0]?.reasons).toEqual([
      'no price configured for this request, and tenant acme has a budget (every task must be priced)',
    ]);
  });

  it('passes over providers priced in another currency (budgets are never converted)', () => {
    const [evaluation] = evaluateProviders([provider('euro', { pricing: EUR_PRICES })], resolved(), undefined, budgeted());
    expect(evaluation?.reasons).toEqual(["priced in EUR, but tenant acme's budget is in USD"]);
  });

  it('passes over providers whose estimate is above the per-task limit', () => {
    // Freepik: 11.2 credits/s × 5 s × $0.01 = $0.56.
    const tight = plan([provider('freepik', { pricing: FREEPIK_PRICES })], undefined, {}, budgeted(0.5));
    expect(tight.order).toEqual([]);
    expect(tight.evaluations[0]?.reasons).toEqual(["estimated 0.56 USD exceeds tenant acme's per-task limit of 0.5 USD"]);
    expect(ids(plan([provider('freepik', { pricing: FREEPIK_PRICES })], undefined, {}, budgeted(0.56)).order)).toEqual(['freepik']);
  });

  it('changes nothing for a tenant without a budget', () => {
    expect(ids(plan([provider('unpriced'), provider('euro', { pricing: EUR_PRICES })]).order)).toEqual(['euro', 'unpriced']);
  });
});

describe('prices in effect at creation', () => {
  it('estimates with the rules in effect at `at`, and carries the rule\'s credit value', () => {
    const dated = PricingConfig.parse({
      currency: 'USD',
      credit_value: 0.01,
      rules: [
        { model: 'kling-v3', credits_per_second: 10 },
        { model: 'kling-v3', credits_per_second: 20, credit_value: 0.02, effective_from: '2026-12-01' },
      ],
    });
    const at = (ms: number) => evaluateProviders([provider('p', { pricing: dated })], resolved(), undefined, { at: ms })[0];
    expect(at(Date.UTC(2026, 10, 30))).toMatchObject({ estimate: { credits: 50, currencyAmount: 0.5 }, creditValue: 0.01 });
    expect(at(Date.UTC(2026, 11, 1))).toMatchObject({ estimate: { credits: 100, currencyAmount: 2 }, creditValue: 0.02 });
  });
});
