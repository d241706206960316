/** The legacy Kling-API provider (`kling-legacy`). Registered by the provider registry. */
export { klingLegacyProvider } from './kling-legacy-provider.js';
