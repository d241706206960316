/**
 * The default price list reproduces the seed's credit table through `estimateCost`
 * (src/core/pricing.ts), and agrees with what the simulator charges.
 */
import { describe, expect, it } from 'vitest';
import { PricingConfig, estimateCost } from '../../../src/core/model/pricing.js';
import { KLING3API_DEFAULT_PRICING } from '../../../src/providers/kling3api/kling3api-pricing.js';
import { kling3apiProvider } from '../../../src/providers/kling3api/kling3api-provider.js';
import { toKling3apiRequest } from '../../../src/providers/kling3api/kling3api-request.js';
import { kling3apiSimulatedCredits } from '../../../src/providers/kling3api/kling3api-simulator.js';
import { served } from './kling3api-fixtures.js';

function credits(input: unknown): number | undefined {
  return estimateCost(KLING3API_DEFAULT_PRICING, served(input).request)?.credits;
}

describe('KLING3API_DEFAULT_PRICING', () => {
  it('is a valid PricingConfig and the provider ships it', () => {
    expect(PricingConfig.parse(KLING3API_DEFAULT_PRICING)).toEqual(KLING3API_DEFAULT_PRICING);
    expect(kling3apiProvider.defaultPricing).toBe(KLING3API_DEFAULT_PRICING);
  });

  it('Kling 3.0: 80/54 credits per second pro with/without audio, 60/40 std', () => {
    expect(credits({ model: 'kling-v3', prompt: 'x' })).toBe(400);
    expect(credits({ model: 'kling-v3', prompt: 'x', audio: false })).toBe(270);
    expect(credits({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 10 })).toBe(600);
    expect(credits({ model: 'kling-v3', quality: 'std', prompt: 'x', duration: 10, audio: false })).toBe(400);
    expect(credits({ model: 'kling-v3', prompt: 'x', start_image_url: 'https://example.com/a.png', duration: 15 })).toBe(1200);
  });

  it('O3: 48/36 per second whatever the audio, reference 72/20 per second', () => {
    expect(credits({ model: 'kling-v3-omni', prompt: 'x' })).toBe(240);
    expect(credits({ model: 'kling-v3-omni', prompt: 'x', audio: false })).toBe(240);
    expect(credits({ model: 'kling-v3-omni', quality: 'std', prompt: 'x', start_image_url: 'https://example.com/a.png' })).toBe(180);
    expect(credits({ model: 'kling-v3-omni', prompt: 'x', reference_images: ['https://example.com/a.png'], duration: 10 })).toBe(720);
    expect(credits({ model: 'kling-v3-omni', quality: 'std', prompt: 'x', reference_video_url: 'https://example.com/v.mp4' })).toBe(100);
  });

  it('video edit: 435 fixed pro, 360 fixed std', () => {
    expect(credits({ model: 'kling-v3-omni', prompt: 'x', video_url: 'https://example.com/v.mp4' })).toBe(435);
    expect(credits({ model: 'kling-v3-omni', quality: 'std', prompt: 'x', video_url: 'https://example.com/v.mp4' })).toBe(360);
  });

  it('converts credits at the documented placeholder value of USD 0.001', () => {
    expect(estimateCost(KLING3API_DEFAULT_PRICING, served({ model: 'kling-v3', prompt: 'x' }).request)).toEqual({
      credits: 400,
      currencyAmount: 0.4,
      currency: 'USD',
    });
  });

  it('agrees with the simulator for every type and a spread of durations and sound settings', () => {
    const inputs = [
      { model: 'kling-v3', prompt: 'x', duration: 7 },
      { model: 'kling-v3', quality: 'std', prompt: 'x', audio: false, start_image_url: 'https://example.com/a.png' },
      { model: 'kling-v3-omni', prompt: 'x', duration: 13 },
      { model: 'kling-v3-omni', quality: 'std', prompt: 'x', start_image_url: 'https://example.com/a.png', duration: 3 },
      { model: 'kling-v3-omni', prompt: 'x', reference_images: ['https://example.com/a.png'], duration: 4 },
      { model: 'kling-v3-omni', quality: 'std', prompt: 'x', reference_images: ['https://example.com/a.png'] },
      { model: 'kling-v3-omni', quality: 'std', prompt: 'x', video_url: 'https://example.com/v.mp4' },
    ];
    for (const input of inputs) {
      const { request, offering } = served(input);
      const body = toKling3apiRequest(request, offering);
      expect(estimateCost(KLING3API_DEFAULT_PRICING, request)?.credits).toBe(
        kling3apiSimulatedCredits(body.type, body.duration, body.sound),
      );
    }
  });
});
