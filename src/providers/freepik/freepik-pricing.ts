/**
 * Freepik's default price list (SPEC §3), used when `config.yaml` gives none.
 *
 * Where the figures come from: Freepik publishes no per-second price for Kling 3 in its API
 * documentation (seeds 000, 001 and 003 have none), so every figure here is a placeholder. They
 * are the figures the shipped `config.yaml` has always carried (one credit is one US cent;
 * 11.2 credits a second for Pro and 8.4 for Standard, Kling 3 and Kling 3 Omni alike), kept
 * here so a configuration without a `pricing` block behaves as the shipped one does. Operators
 * should set their plan's prices in `config.yaml`.
 */
import type { PricingConfig } from '../../core/model/pricing.js';

/** Placeholder: one credit is one US cent (shipped `config.yaml`). */
export const FREEPIK_DEFAULT_CREDIT_VALUE_USD = 0.01;

/** Placeholder prices (shipped `config.yaml`); the first matching rule wins. */
export const FREEPIK_DEFAULT_PRICING: PricingConfig = {
  currency: 'USD',
  credit_value: FREEPIK_DEFAULT_CREDIT_VALUE_USD,
  rules: [
    { model: 'kling-v3', quality: 'pro', credits_per_second: 11.2 },
    { model: 'kling-v3', quality: 'std', credits_per_second: 8.4 },
    { model: 'kling-v3-omni', quality: 'pro', credits_per_second: 11.2 },
    { model: 'kling-v3-omni', quality: 'std', credits_per_second: 8.4 },
  ],
};
