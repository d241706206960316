/**
 * Every provider the gateway knows. Adding one is a folder under `src/providers/` and a line here.
 */
import type { VideoProvider } from '../core/upstream/provider.js';
import { freepikProvider } from './freepik/index.js';
import { kling3apiProvider } from './kling3api/index.js';
import { klingLegacyProvider } from './kling-legacy/index.js';

export const PROVIDERS: readonly VideoProvider[] = [freepikProvider, kling3apiProvider, klingLegacyProvider];

export const PROVIDER_IDS: readonly string[] = PROVIDERS.map((provider) => provider.id);

/** The providers whose webhooks are signed (Freepik): an account of one with no webhook secret is sent no webhook URL. */
export const SIGNED_WEBHOOK_PROVIDER_IDS: readonly string[] = PROVIDERS.filter((provider) => provider.inboundWebhook === 'signed').map((provider) => provider.id);
