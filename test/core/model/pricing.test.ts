/**
 * Prices (SPEC §3): the first matching rule in effect wins (the latest dated one first); per-second prices multiply the seconds asked
 * for, per-task prices do not; credits become currency at `credit_value`; a price list in
 * config.yaml overrides parts of a provider's shipped one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CreateVideoRequest } from '../../../src/core/model/canonical.js';
import { resolveRequest } from '../../../src/core/model/capabilities.js';
import {
  PriceRule,
  PricingConfig,
  PricingOverride,
  billableSeconds,
  costOf,
  effectiveFromMs,
  estimateCost,
  findPriceRule,
  fromMicros,
  mergePricing,
  priceRequest,
  toMicros,
} from '../../../src/core/model/pricing.js';

function request(input: Partial<CreateVideoRequest> = {}) {
  return resolveRequest({ model: 'kling-v3', prompt: 'a harbour at dawn', ...input }).request;
}

const LEGACY = PricingConfig.parse({
  currency: 'USD',
  credit_value: 0.14,
  rules: [
    { model: ['kling-v1', 'kling-v1-6'], quality: 'std', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.2 },
    { model: 'kling-v3', quality: 'pro', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.8 },
    { model: 'kling-v3', quality: 'std', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.6 },
    { operation: 'video-extend', credits_per_task: 1 },
    { operation: 'lip-sync', credits_per_task: 0.5 },
  ],
});

const BY_AUDIO = PricingConfig.parse({
  credit_value: 0.001,
  rules: [
    { model: 'kling-v3', quality: 'pro', audio: true, credits_per_second: 80 },
    { model: 'kling-v3', quality: 'pro', audio: false, credits_per_second: 54 },
    { model: 'kling-v3', credits_per_second: 1 },
  ],
});

describe('findPriceRule', () => {
  it('takes the first rule that matches, even when a later one matches too', () => {
    const pricing = PricingConfig.parse({
      credit_value: 1,
      rules: [
        { model: 'kling-v3', credits_per_second: 2 },
        { model: 'kling-v3', quality: 'pro', credits_per_second: 9 },
      ],
    });
    expect(findPriceRule(pricing, request())?.credits_per_second).toBe(2);
  });

  it('matches a single selector and a list of them', () => {
    expect(findPriceRule(LEGACY, request({ model: 'kling-v1-6', quality: 'std' }))?.credits_per_second).toBe(0.2);
    expect(findPriceRule(LEGACY, request({ model: 'kling-v1', quality: 'std' }))?.credits_per_second).toBe(0.2);
    expect(findPriceRule(LEGACY, request({ quality: 'std', start_image_url: 'https://example.com/a.png' }))?.credits_per_second).toBe(0.6);
  });

  it('skips a rule when any one selector differs', () => {
    // kling-v1 pro: only a std rule names kling-v1.
    expect(findPriceRule(LEGACY, request({ model: 'kling-v1' }))).toBeUndefined();
    // kling-v3 reference-to-video: no operation list includes it.
    expect(findPriceRule(LEGACY, request({ reference_images: ['https://example.com/a.png'] }))).toBeUndefined();
  });

  it('a rule without selectors matches every request', () => {
    expect(findPriceRule(LEGACY, request({ operation: 'video-extend', video_id: 'v1' }))?.credits_per_task).toBe(1);
  });

  it('matches audio: true only with audio, audio: false only without', () => {
    expect(findPriceRule(BY_AUDIO, request())?.credits_per_second).toBe(80);
    expect(findPriceRule(BY_AUDIO, request({ audio: false }))?.credits_per_second).toBe(54);
  });

  it('counts a request with no audio field (operations without sound) as silent', () => {
    const edit = resolveRequest({ model: 'kling-v3', video_url: 'https://example.com/v.mp4' }).request;
    expect(edit.audio).toBeUndefined();
    expect(findPriceRule(BY_AUDIO, edit)?.credits_per_second).toBe(54);
  });

  it('finds nothing in an empty price list', () => {
    expect(findPriceRule(PricingConfig.parse({ credit_value: 1 }), request())).toBeUndefined();
  });
});

describe('estimateCost', () => {
  it('multiplies a per-second price by the duration', () => {
    expect(estimateCost(LEGACY, request())).toEqual({ credits: 4, currencyAmount: 0.56, currency: 'USD' });
    expect(estimateCost(LEGACY, request({ duration: 10 }))).toEqual({ credits: 8, currencyAmount: 1.12, currency: 'USD' });
  });

  it('charges a per-task price once, whatever the duration', () => {
    const extend = resolveRequest({ model: 'kling-v1', video_id: 'v1', duration: 10 }).request;
    expect(estimateCost(LEGACY, extend)).toEqual({ credits: 1, currencyAmount: 0.14, currency: 'USD' });
  });

  it('prices multi-shot by the sum of the shot durations', () => {
    const shots = request({ multi_shot: [{ prompt: 'a', duration: 3 }, { prompt: 'b', duration: 6 }] });
    expect(estimateCost(BY_AUDIO, shots)?.credits).toBe(720);
  });

  it('prices the audio asked for', () => {
    expect(estimateCost(BY_AUDIO, request())).toEqual({ credits: 400, currencyAmount: 0.4, currency: 'USD' });
    expect(estimateCost(BY_AUDIO, request({ audio: false }))).toEqual({ credits: 270, currencyAmount: 0.27, currency: 'USD' });
  });

  it('is undefined without a price list or without a matching rule', () => {
    expect(estimateCost(undefined, request())).toBeUndefined();
    expect(estimateCost(LEGACY, request({ model: 'kling-v3-omni' }))).toBeUndefined();
  });

  it('is zero credits for a free rule, not undefined', () => {
    const free = PricingConfig.parse({ credit_value: 0.5, rules: [{ credits_per_task: 0 }] });
    expect(estimateCost(free, request())).toEqual({ credits: 0, currencyAmount: 0, currency: 'USD' });
  });
});

describe('billableSeconds', () => {
  it('is the duration when there is one', () => {
    expect(billableSeconds(request({ duration: 12 }))).toBe(12);
  });

  it('is the sum of timed shots without a duration, else 5', () => {
    const base = { model: 'kling-v3' as const, quality: 'pro' as const, operation: 'video-edit' as const };
    expect(billableSeconds({ ...base, multi_shot: [{ prompt: 'a', duration: 2 }, { prompt: 'b', duration: 2 }] })).toBe(4);
    expect(billableSeconds({ ...base, multi_shot: [{ prompt: 'a' }] })).toBe(5);
    expect(billableSeconds(base)).toBe(5);
  });
});

describe('costOf', () => {
  it('rounds credits to 4 decimals and the currency amount to 6', () => {
    // 11.2 × 5 in floating point is 56.00000000000001.
    expect(costOf({ credit_value: 0.01, currency: 'USD' }, 11.2 * 5)).toEqual({
      credits: 56,
      currencyAmount: 0.56,
      currency: 'USD',
    });
    expect(costOf({ credit_value: 0.0000013, currency: 'EUR' }, 1.23456789)).toEqual({
      credits: 1.2346,
      currencyAmount: 0.000002,
      currency: 'EUR',
    });
    expect(costOf({ credit_value: 0.1, currency: 'USD' }, 0.1 + 0.2)).toEqual({
      credits: 0.3,
      currencyAmount: 0.03,
      currency: 'USD',
    });
  });

  it('rounds a figure half-way between two last digits up, however its floating-point form falls', () => {
    // 51.25 credits at $0.00125 are $0.0640625 (64062.49999999999 millionths in floating point);
    // 15 at $0.0000005 are $0.0000075; both rounded down, where 2.5 millionths rounded up.
    expect(costOf({ credit_value: 0.00125, currency: 'USD' }, 51.25).currencyAmount).toBe(0.064063);
    expect(costOf({ credit_value: 0.0000005, currency: 'USD' }, 15).currencyAmount).toBe(0.000008);
    expect(costOf({ credit_value: 0.0000005, currency: 'USD' }, 5).currencyAmount).toBe(0.000003);
    // A reported 0.00145 credits (1.4499999999999999 ten-thousandths), and 0.00041 per second for 5 s.
    expect(costOf({ credit_value: 1, currency: 'USD' }, 0.00145).credits).toBe(0.0015);
    expect(costOf({ credit_value: 1, currency: 'USD' }, 0.00041 * 5).credits).toBe(0.0021);
    expect(costOf({ credit_value: 1, currency: 'USD' }, 0.00025).credits).toBe(0.0003);
  });

  it('is the exact decimal product rounded half-way up, for any credits of 4 decimals and credit value of up to 7', () => {
    const halfUp = (n: bigint, step: bigint) => Number((2n * n + step) / (2n * step));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 1, max: 10_000_000 }), fc.constantFrom(2, 4, 7), (tenThousandths, units, places) => {
        const credits = tenThousandths / 10_000;
        const creditValue = Number((units / 10 ** 7).toFixed(places));
        const valueUnits = BigInt(Math.round(creditValue * 10 ** 7));
        const cost = costOf({ credit_value: creditValue, currency: 'USD' }, credits);
        // credits × value in units of 10⁻¹¹, to whole millionths.
        expect([credits, creditValue, cost.currencyAmount]).toEqual([credits, creditValue, halfUp(BigInt(tenThousandths) * valueUnits, 100_000n) / 1_000_000]);
        expect(cost.credits).toBe(credits);
      }),
      { seed: 4242, numRuns: 5_000 },
    );
  });
});

describe('mergePricing', () => {
  const SHIPPED = PricingConfig.parse({
    currency: 'USD',
    credit_value: 0.001,
    rules: [{ model: 'kling-v3', credits_per_second: 80 }],
  });

  it('keeps the shipped table when config sets only the credit value', () => {
    expect(mergePricing(SHIPPED, PricingOverride.parse({ credit_value: '0.002' }))).toEqual({
      currency: 'USD',
      credit_value: 0.002,
      rules: SHIPPED.rules,
    });
  });

  it('replaces the rules and currency when config gives them', () => {
    const rules = [{ credits_per_task: 3 }];
    expect(mergePricing(SHIPPED, { currency: 'EUR', rules })).toEqual({ currency: 'EUR', credit_value: 0.001, rules });
  });

  it('is the shipped list without an override, and the override alone without a shipped list', () => {
    expect(mergePricing(SHIPPED, undefined)).toEqual(SHIPPED);
    expect(mergePricing(undefined, { credit_value: 0.14, rules: [{ credits_per_task: 1 }] })).toEqual({
      currency: 'USD',
      credit_value: 0.14,
      rules: [{ credits_per_task: 1 }],
    });
  });

  // Regression: see the commit that fixed it.
  it('refuses rules that have no credit value from config or the shipped list', () => {
    expect(() => mergePricing(undefined, { rules: [{ credits_per_task: 1 }] })).toThrow(/credit_value/);
  });

  it('is undefined when neither side has rules: the provider is unpriced', () => {
    expect(mergePricing(undefined, undefined)).toBeUndefined();
    expect(mergePricing(undefined, { currency: 'USD', credit_value: 0.14 })).toBeUndefined();
  });
});

describe('PriceRule', () => {
  it('refuses a rule with both prices or with neither', () => {
    const both = PriceRule.safeParse({ model: 'kling-v3', credits_per_second: 1, credits_per_task: 5 });
    const neither = PriceRule.safeParse({ model: 'kling-v3' });
    expect(both.success).toBe(false);
    expect(neither.success).toBe(false);
    expect(both.error?.issues[0]?.message).toBe('give exactly one of credits_per_second and credits_per_task');
    expect(neither.error?.issues[0]?.message).toBe('give exactly one of credits_per_second and credits_per_task');
  });

  it('accepts either price alone, and selectors as one value or a list', () => {
    expect(PriceRule.safeParse({ credits_per_second: 1 }).success).toBe(true);
    expect(PriceRule.safeParse({ model: ['kling-v1', 'kling-v3'], quality: 'std', credits_per_task: 2 }).success).toBe(true);
  });

  it('refuses an unknown model, an empty selector list, a negative price and an unknown field', () => {
    expect(PriceRule.safeParse({ model: 'kling-v9', credits_per_task: 1 }).success).toBe(false);
    expect(PriceRule.safeParse({ model: [], credits_per_task: 1 }).success).toBe(false);
    expect(PriceRule.safeParse({ credits_per_task: -1 }).success).toBe(false);
    expect(PriceRule.safeParse({ credits_per_task: 1, per_minute: 2 }).success).toBe(false);
  });
});

describe('dated prices (effective_from)', () => {
  const DEC_1 = Date.UTC(2026, 11, 1);
  const DATED = PricingConfig.parse({
    currency: 'USD',
    credit_value: 0.01,
    rules: [
      { model: 'kling-v3', quality: 'pro', credits_per_second: 11.2 },
      { model: 'kling-v3', quality: 'pro', credits_per_second: 12, effective_from: '2026-12-01' },
      { model: 'kling-v3', quality: 'pro', credits_per_second: 14, credit_value: 0.02, effective_from: '2027-01-01T00:00:00+01:00' },
      { model: 'kling-v3', quality: 'std', credits_per_second: 8.4 },
    ],
  });

  it('prices a request by the rules in effect when it was created', () => {
    expect(estimateCost(DATED, request(), DEC_1 - 1)).toEqual({ credits: 56, currencyAmount: 0.56, currency: 'USD' });
    expect(estimateCost(DATED, request(), DEC_1)).toEqual({ credits: 60, currencyAmount: 0.6, currency: 'USD' });
  });

  it('reads a bare date as midnight UTC and a date-time with its zone', () => {
    // 2027-01-01T00:00:00+01:00 is 23:00 UTC on 31 December.
    const newYearInBerlin = Date.UTC(2026, 11, 31, 23);
    expect(estimateCost(DATED, request(), newYearInBerlin - 1)?.credits).toBe(60);
    expect(priceRequest(DATED, request(), newYearInBerlin)).toEqual({
      estimate: { credits: 70, currencyAmount: 1.4, currency: 'USD' },
      creditValue: 0.02,
      effectiveFrom: '2027-01-01T00:00:00+01:00',
    });
  });

  it('keeps undated rules for requests no dated rule matches', () => {
    expect(estimateCost(DATED, request({ quality: 'std' }), Date.UTC(2030, 0, 1))?.credits).toBe(42);
  });

  it('prefers the first listed among rules of the same date, as undated lists always did', () => {
    const twoSameDay = PricingConfig.parse({
      credit_value: 1,
      rules: [
        { model: 'kling-v3', credits_per_task: 3, effective_from: '2026-12-01' },
        { model: 'kling-v3', credits_per_task: 4, effective_from: '2026-12-01' },
      ],
    });
    expect(findPriceRule(twoSameDay, request(), DEC_1)?.credits_per_task).toBe(3);
    expect(findPriceRule(twoSameDay, request(), DEC_1 - 1)).toBeUndefined();
  });

  it('refuses an effective_from that is not an ISO date or a date-time with a zone', () => {
    expect(PriceRule.safeParse({ credits_per_task: 1, effective_from: '2026-12-01' }).success).toBe(true);
    expect(PriceRule.safeParse({ credits_per_task: 1, effective_from: '2026-12-01T10:00:00Z' }).success).toBe(true);
    expect(PriceRule.safeParse({ credits_per_task: 1, effective_from: '01/12/2026' }).success).toBe(false);
    expect(PriceRule.safeParse({ credits_per_task: 1, effective_from: '2026-12-01T10:00:00' }).success).toBe(false);
    expect(PriceRule.safeParse({ credits_per_task: 1, effective_from: '2026-12-01T10:00' }).success).toBe(false);
    expect(effectiveFromMs('2026-12-01')).toBe(DEC_1);
  });

  it('takes a date-time with a zone but no seconds, which ISO 8601 allows', () => {
    expect(PriceRule.safeParse({ credits_per_task: 1, effective_from: '2026-12-01T09:30+01:00' }).success).toBe(true);
    expect(PriceRule.safeParse({ credits_per_task: 1, effective_from: '2026-12-01T00:00Z' }).success).toBe(true);
    expect(effectiveFromMs('2026-12-01T09:30+01:00')).toBe(Date.UTC(2026, 11, 1, 8, 30));
  });
});

describe('toMicros / fromMicros', () => {
  it('adds money in whole millionths, so sums of many tasks stay exact to the cent', () => {
    let micros = 0;
    for (let i = 0; i < 1000; i++) micros += toMicros(0.1);
    expect(fromMicros(micros)).toBe(100);
    expect(toMicros(0.56)).toBe(560_000);
  });
});
