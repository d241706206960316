/**
 * The one create request every phase sends: a plain 5-second Kling 3 Pro text-to-video, the
 * most common job, pinned to one provider so each phase knows which simulator it exercises.
 */
import type { InboundWebhookKind } from '../src/core/upstream/provider.js';
import { PROVIDERS } from '../src/providers/registry.js';

/** Provider whose create and status routes are the latency and read baselines. */
export const BASELINE_PROVIDER = 'freepik';

const TRACKING_BY_WEBHOOK_KIND: Record<InboundWebhookKind, string> = {
  signed: 'signed webhook',
  token: 'callback + confirm',
  none: 'polling only',
};

/** What each provider's upstream tells the gateway besides polling (for the report). */
export const TRACKING_STYLE: Record<string, string> = Object.fromEntries(
  PROVIDERS.map((provider) => [provider.id, TRACKING_BY_WEBHOOK_KIND[provider.inboundWebhook]]),
);

export function benchCreateRequest(providerId: string): Record<string, unknown> {
  return {
    model: 'kling-v3',
    quality: 'pro',
    prompt: 'A red fox trots through fresh snow at dawn, low tracking shot, soft golden light',
    duration: 5,
    aspect_ratio: '16:9',
    routing: { providers: [providerId], allow_fallbacks: false },
  };
}
