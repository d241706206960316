/**
 * @kling-gateway/client: a typed client for the Kling Gateway API. Webhook verification is in
 * `@kling-gateway/client/webhooks` (`./webhooks.ts`), so browser bundles need not carry it.
 */
export * from './gateway-client.js';
export * from './gateway-errors.js';
export * from './gateway-types.js';
export * from './display-format.js';
export type { components, paths } from './gateway-api.generated.js';
