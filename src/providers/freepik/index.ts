/** The Freepik provider (Kling 3 / Kling 3 Omni). Registered by the provider registry. */
export { freepikProvider } from './freepik-provider.js';
