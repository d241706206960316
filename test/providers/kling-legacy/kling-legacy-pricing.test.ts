/**
 * The legacy Kling-API's default price list: placeholders in units (seed 002 publishes no
 * price), the figures the shipped config.yaml carries, read through `estimateCost`.
 */
import { describe, expect, it } from 'vitest';
import { PricingConfig, estimateCost } from '../../../src/core/model/pricing.js';
import { KLING_LEGACY_DEFAULT_PRICING } from '../../../src/providers/kling-legacy/kling-legacy-pricing.js';
import { klingLegacyProvider } from '../../../src/providers/kling-legacy/kling-legacy-provider.js';
import { GARMENT, IMAGE, served } from './kling-legacy-fixtures.js';

function units(input: unknown): number | undefined {
  return estimateCost(KLING_LEGACY_DEFAULT_PRICING, served(input).request)?.credits;
}

describe('KLING_LEGACY_DEFAULT_PRICING', () => {
  it('is a valid PricingConfig and the provider ships it', () => {
    expect(PricingConfig.parse(KLING_LEGACY_DEFAULT_PRICING)).toEqual(KLING_LEGACY_DEFAULT_PRICING);
    expect(klingLegacyProvider.defaultPricing).toBe(KLING_LEGACY_DEFAULT_PRICING);
  });

  it('prices video generation in units per second by model and mode', () => {
    expect(units({ model: 'kling-v1', quality: 'std', prompt: 'x', duration: 5 })).toBeCloseTo(1);
    expect(units({ model: 'kling-v1-6', prompt: 'x', duration: 10 })).toBeCloseTo(7);
    expect(units({ model: 'kling-v2-master', prompt: 'x', duration: 5 })).toBe(10);
    expect(units({ model: 'kling-v2-5-turbo', prompt: 'x', start_image_url: IMAGE, duration: 5 })).toBeCloseTo(2.5);
    expect(units({ model: 'kling-v3', prompt: 'x', duration: 5 })).toBeCloseTo(4);
  });

  it('prices the other operations per task', () => {
    expect(units({ model: 'kling-v1-6', operation: 'video-extend', video_id: 'vid-1', prompt: 'on' })).toBe(1);
    expect(units({ model: 'kling-v1', operation: 'image-generation', prompt: 'a fox' })).toBe(0.25);
    expect(units({ model: 'kolors-virtual-try-on-v1', start_image_url: IMAGE, reference_images: [GARMENT] })).toBe(0.7);
  });

  it('values one unit at the placeholder US$0.14', () => {
    expect(estimateCost(KLING_LEGACY_DEFAULT_PRICING, served({ model: 'kling-v2-master', prompt: 'x', duration: 5 }).request)).toEqual({
      credits: 10,
      currencyAmount: 1.4,
      currency: 'USD',
    });
  });
});
