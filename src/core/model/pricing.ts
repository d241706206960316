/**
 * Prices (SPEC §3): per provider, credits per second or per task by model, quality, operation
 * and audio, and what one credit is worth in a currency. A rule may carry `effective_from`, so
 * a price change does not rewrite the past: a request is priced by the rules in effect when it
 * was created. Among the matching rules in effect, the one with the latest `effective_from`
 * wins (an undated rule has been in effect forever); between equals, the first listed.
 */
import { z } from 'zod';
import { configNumber } from './config-number.js';
import { Model, Operation, Quality, type VideoRequest } from './canonical.js';

const oneOrMany = <T extends z.ZodType>(schema: T) => z.union([schema, z.array(schema).min(1)]);

/**
 * `2026-12-01` (midnight UTC) or an ISO 8601 date-time with a zone (`2026-12-01T09:00:00+01:00`;
 * the seconds may be left out, `2026-12-01T09:00+01:00`, as ISO 8601 allows). A date-time
 * without a zone is refused: it would mean a different moment on every machine.
 */
export const DateOrZonedDateTime = z.union([
  z.iso.date(),
  z.iso.datetime({ offset: true }),
  z.iso.datetime({ offset: true, precision: -1 }),
]);

const EffectiveFrom = DateOrZonedDateTime;

/** Milliseconds since the epoch of a `DateOrZonedDateTime` such as `effective_from` (a bare date is midnight UTC). */
export function effectiveFromMs(value: string): number {
  return Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
}

/**
 * What one credit costs, as config.yaml gives it: more than 0. A credit worth nothing would price
 * every task of the provider at 0, so `cheapest` would always pick it and budgets never count it
 * (as a list with no `credit_value` would, which the start refuses); a free model is a rule of 0 credits.
 */
const configCreditValue = configNumber(
  z
    .number()
    .positive(
      'must be more than 0: a credit worth nothing prices every task of the provider at 0 (cheapest routing would always pick it, budgets would never count it); price a free model with credits_per_task: 0',
    ),
);

export const PriceRule = z
  .strictObject({
    model: oneOrMany(Model).optional(),
    quality: oneOrMany(Quality).optional(),
    operation: oneOrMany(Operation).optional(),
    /** Matches only requests with (true) or without (false) native audio. */
    audio: z.boolean().optional(),
    credits_per_second: z.number().nonnegative().optional(),
    credits_per_task: z.number().nonnegative().optional(),
    /** From when the rule applies (inclusive). Absent: always. */
    effective_from: EffectiveFrom.optional(),
    /** What one credit costs under this rule, when it differs from the list's `credit_value` (a dated plan change). */
    credit_value: configCreditValue.optional(),
  })
  .refine((rule) => (rule.credits_per_second === undefined) !== (rule.credits_per_task === undefined), {
    message: 'give exactly one of credits_per_second and credits_per_task',
  });
export type PriceRule = z.infer<typeof PriceRule>;

/**
 * An ISO 4217 code in capitals. Money is summed and compared by this code as written, so `usd`
 * beside `USD` would be two currencies (two usage rows, a budget that fits neither).
 */
export const CurrencyCode = z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code in capitals, e.g. USD');

export const PricingConfig = z.strictObject({
  /** ISO 4217 code of `credit_value`. */
  currency: CurrencyCode.default('USD'),
  /** What one credit costs in `currency`. */
  credit_value: z.number().nonnegative(),
  rules: z.array(PriceRule).default([]),
});
export type PricingConfig = z.infer<typeof PricingConfig>;

/**
 * A price list as written in config.yaml: any part may be left out, and the provider's shipped
 * default supplies the rest (e.g. set only `credit_value` and keep kling3api's credit table).
 */
export const PricingOverride = z.strictObject({
  currency: CurrencyCode.optional(),
  credit_value: configCreditValue.optional(),
  rules: z.array(PriceRule).optional(),
});
export type PricingOverride = z.infer<typeof PricingOverride>;

/** The effective price list: the override over the shipped default. Undefined without rules. */
export function mergePricing(
  shipped: PricingConfig | undefined,
  override: PricingOverride | undefined,
): PricingConfig | undefined {
  const rules = override?.rules ?? shipped?.rules;
  if (!rules) return undefined;
  const creditValue = override?.credit_value ?? shipped?.credit_value;
  if (creditValue === undefined) {
    // Without it every credit would be worth 0 and the provider would always look cheapest.
    throw new Error('pricing.credit_value is required: nothing says what one credit costs');
  }
  return { currency: override?.currency ?? shipped?.currency ?? 'USD', credit_value: creditValue, rules };
}

export interface CostEstimate {
  credits: number;
  currencyAmount: number;
  currency: string;
}

function matches<T>(selector: T | T[] | undefined, value: T): boolean {
  if (selector === undefined) return true;
  return Array.isArray(selector) ? selector.includes(value) : selector === value;
}

/** Seconds of output the request asks for, which per-second prices multiply. */
export function billableSeconds(request: VideoRequest): number {
  if (request.duration !== undefined) return request.duration;
  const shots = request.multi_shot;
  if (shots?.every((shot) => shot.duration !== undefined)) {
    return shots.reduce((sum, shot) => sum + (shot.duration ?? 0), 0);
  }
  return 5;
}

/**
 * The rule that prices `request` at time `at` (default: now): among the matching rules in
 * effect then, the latest `effective_from` wins; undated rules count as the oldest; ties go to
 * the first listed.
 */
export function findPriceRule(pricing: PricingConfig, request: VideoRequest, at: number = Date.now()): PriceRule | undefined {
  const audio = request.audio ?? false;
  let best: { rule: PriceRule; from: number } | undefined;
  for (const rule of pricing.rules) {
    const matchesRequest =
      matches(rule.model, request.model) &&
      matches(rule.quality, request.quality) &&
      matches(rule.operation, request.operation) &&
      (rule.audio === undefined || rule.audio === audio);
    if (!matchesRequest) continue;
    const from = rule.effective_from === undefined ? Number.NEGATIVE_INFINITY : effectiveFromMs(rule.effective_from);
    if (from > at) continue;
    if (!best || from > best.from) best = { rule, from };
  }
  return best?.rule;
}

/** A request priced by one rule: the estimate, and what one credit was worth under that rule. */
export interface PricedRequest {
  estimate: CostEstimate;
  /** Converts the upstream's reported credits for this task into currency later. */
  creditValue: number;
  /** The rule's `effective_from`, or null for an undated rule. */
  effectiveFrom: string | null;
}

/** Prices `request` as of `at` (default now); `undefined` when no rule in effect covers it. */
export function priceRequest(pricing: PricingConfig | undefined, request: VideoRequest, at: number = Date.now()): PricedRequest | undefined {
  if (!pricing) return undefined;
  const rule = findPriceRule(pricing, request, at);
  if (!rule) return undefined;
  const credits =
    rule.credits_per_task !== undefined ? rule.credits_per_task : (rule.credits_per_second ?? 0) * billableSeconds(request);
  const creditValue = rule.credit_value ?? pricing.credit_value;
  return {
    estimate: costOf({ credit_value: creditValue, currency: pricing.currency }, credits),
    creditValue,
    effectiveFrom: rule.effective_from ?? null,
  };
}

/** What this request should cost on a provider with this price list (as of `at`); `undefined` when no rule covers it. */
export function estimateCost(pricing: PricingConfig | undefined, request: VideoRequest, at?: number): CostEstimate | undefined {
  return priceRequest(pricing, request, at)?.estimate;
}

/** Currency value of a number of credits. */
export function costOf(pricing: Pick<PricingConfig, 'credit_value' | 'currency'>, credits: number): CostEstimate {
  return {
    credits: roundTo(credits, 4),
    currencyAmount: roundTo(credits * pricing.credit_value, 6),
    currency: pricing.currency,
  };
}

/**
 * `value` to `digits` decimals, half-way figures up. The scaled figure is read to 15 significant
 * digits first: a product's floating-point dust (51.25 × 0.00125 × 10⁶ = 64062.49999999999, for
 * 64062.5) must not decide which way it rounds. Past 10¹⁵ a double has no such dust to drop.
 */
export function roundTo(value: number, digits: number): number {
  const factor = 10 ** digits;
  const scaled = value * factor;
  return Math.round(Math.abs(scaled) < 1e15 ? Number(scaled.toPrecision(15)) : scaled) / factor;
}

/**
 * Money is added up in integer millionths of a currency unit (what `costOf` rounds to), so sums
 * over many tasks never pick up floating-point dust.
 */
export function toMicros(amount: number): number {
  return Math.round(amount * 1_000_000);
}

export function fromMicros(micros: number): number {
  return micros / 1_000_000;
}
