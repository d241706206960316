/**
 * The legacy Kling-API's default price list (SPEC §3), used when `config.yaml` gives none.
 *
 * Where the figures come from: the legacy API bills in resource-pack "units" whose worth depends
 * on the pack and the reseller, and seed 002 publishes no price at all, so every figure here is
 * a placeholder. They are the figures the shipped `config.yaml` has always carried (one unit
 * valued at US$0.14; units per second by model and mode, a fixed number of units per extend,
 * lip-sync, image and try-on task), kept here so a configuration without a `pricing` block
 * behaves as the shipped one does. Operators should set their contract's prices in
 * `config.yaml`: `cheapest` routing is only as right as these figures.
 */
import type { PricingConfig } from '../../core/model/pricing.js';

/** Placeholder: what one unit is assumed to cost (shipped `config.yaml`). */
export const KLING_LEGACY_DEFAULT_UNIT_VALUE_USD = 0.14;

/** Placeholder prices (shipped `config.yaml`); the first matching rule wins. */
export const KLING_LEGACY_DEFAULT_PRICING: PricingConfig = {
  currency: 'USD',
  credit_value: KLING_LEGACY_DEFAULT_UNIT_VALUE_USD,
  rules: [
    { model: ['kling-v1', 'kling-v1-6'], quality: 'std', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.2 },
    { model: ['kling-v1', 'kling-v1-6'], quality: 'pro', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.7 },
    { model: ['kling-v2-master', 'kling-v2-1-master'], operation: ['text-to-video', 'image-to-video'], credits_per_second: 2 },
    { model: ['kling-v2-5-turbo', 'kling-v2-6'], quality: 'std', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.3 },
    { model: ['kling-v2-5-turbo', 'kling-v2-6'], quality: 'pro', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.5 },
    { model: 'kling-v3', quality: 'pro', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.8 },
    { model: 'kling-v3', quality: 'std', operation: ['text-to-video', 'image-to-video'], credits_per_second: 0.6 },
    { operation: 'video-extend', credits_per_task: 1 },
    { operation: 'lip-sync', credits_per_task: 0.5 },
    { operation: 'image-generation', credits_per_task: 0.25 },
    { operation: 'virtual-try-on', credits_per_task: 0.7 },
  ],
};
