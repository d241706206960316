/** The kling3api.com provider (Kling 3.0 and Kling Video O3). Registered by the provider registry. */
export { kling3apiProvider } from './kling3api-provider.js';
