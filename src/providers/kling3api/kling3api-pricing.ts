/**
 * kling3api.com's credit table as the shipped default price list (SPEC §3).
 * Source: shared/seeds/004_1ace3cef13878ba3.txt, "Available Models" (Credits column).
 */
import type { PricingConfig } from '../../core/model/pricing.js';

/**
 * What one kling3api credit is assumed to cost when `config.yaml` says nothing. The seed gives
 * credit amounts, not what a credit costs; this is a round placeholder (USD 0.001, so a 5 s
 * Kling 3.0 Pro video with sound, 400 credits, shows as USD 0.40). Operators must set
 * `credit_value` to what they actually pay per credit.
 */
export const KLING3API_DEFAULT_CREDIT_VALUE_USD = 0.001;

/**
 * Default prices. The first matching rule wins, and audio only distinguishes Kling 3.0: the seed
 * gives O3 one price per second whatever `sound` is.
 */
export const KLING3API_DEFAULT_PRICING: PricingConfig = {
  currency: 'USD',
  credit_value: KLING3API_DEFAULT_CREDIT_VALUE_USD,
  rules: [
    // Kling 3.0: "54/s (no audio) · 80/s (with audio)" pro, "40/s · 60/s" std.
    { model: 'kling-v3', quality: 'pro', operation: ['text-to-video', 'image-to-video'], audio: true, credits_per_second: 80 },
    { model: 'kling-v3', quality: 'pro', operation: ['text-to-video', 'image-to-video'], audio: false, credits_per_second: 54 },
    { model: 'kling-v3', quality: 'std', operation: ['text-to-video', 'image-to-video'], audio: true, credits_per_second: 60 },
    { model: 'kling-v3', quality: 'std', operation: ['text-to-video', 'image-to-video'], audio: false, credits_per_second: 40 },
    // Kling Video O3.
    { model: 'kling-v3-omni', quality: 'pro', operation: ['text-to-video', 'image-to-video'], credits_per_second: 48 },
    { model: 'kling-v3-omni', quality: 'std', operation: ['text-to-video', 'image-to-video'], credits_per_second: 36 },
    { model: 'kling-v3-omni', quality: 'pro', operation: 'reference-to-video', credits_per_second: 72 },
    { model: 'kling-v3-omni', quality: 'std', operation: 'reference-to-video', credits_per_second: 20 },
    // Video edit: duration "auto", a fixed price per task.
    { model: 'kling-v3-omni', quality: 'pro', operation: 'video-edit', credits_per_task: 435 },
    { model: 'kling-v3-omni', quality: 'std', operation: 'video-edit', credits_per_task: 360 },
  ],
};
