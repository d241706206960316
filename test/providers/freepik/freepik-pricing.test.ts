/**
 * Freepik's default price list: placeholders (Freepik publishes no per-second prices), the
 * figures the shipped config.yaml carries, read through `estimateCost`.
 */
import { describe, expect, it } from 'vitest';
import { CreateVideoRequest } from '../../../src/core/model/canonical.js';
import { resolveRequest } from '../../../src/core/model/capabilities.js';
import { PricingConfig, estimateCost } from '../../../src/core/model/pricing.js';
import { FREEPIK_DEFAULT_PRICING } from '../../../src/providers/freepik/freepik-pricing.js';
import { freepikProvider } from '../../../src/providers/freepik/freepik-provider.js';

function estimate(input: unknown) {
  return estimateCost(FREEPIK_DEFAULT_PRICING, resolveRequest(CreateVideoRequest.parse(input)).request);
}

describe('FREEPIK_DEFAULT_PRICING', () => {
  it('is a valid PricingConfig and the provider ships it', () => {
    expect(PricingConfig.parse(FREEPIK_DEFAULT_PRICING)).toEqual(FREEPIK_DEFAULT_PRICING);
    expect(freepikProvider.defaultPricing).toBe(FREEPIK_DEFAULT_PRICING);
  });

  it('prices Kling 3 and Kling 3 Omni alike: 11.2 credits a second pro, 8.4 std, one credit a US cent', () => {
    expect(estimate({ model: 'kling-v3', prompt: 'x', duration: 5 })).toEqual({ credits: 56, currencyAmount: 0.56, currency: 'USD' });
    expect(estimate({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 10 })?.credits).toBe(84);
    expect(estimate({ model: 'kling-v3-omni', prompt: 'x', duration: 10 })?.credits).toBe(112);
    expect(estimate({ model: 'kling-v3-omni', quality: 'std', prompt: 'x', duration: 5 })?.credits).toBeCloseTo(42);
  });

  it('has no price for a model Freepik does not serve', () => {
    expect(estimate({ model: 'kling-v1', prompt: 'x' })).toBeUndefined();
  });
});
