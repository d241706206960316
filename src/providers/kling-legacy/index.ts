/**
 * The legacy Kling-API provider (`kling-legacy`): the official Kling API's legacy design as
 * aggregators resell it under `/kling/v1`. The registry imports `klingLegacyProvider`.
 */
export {
  KLING_LEGACY_PROVIDER_ID,
  klingLegacyMinimumRunTimeMs,
  klingLegacyProvider,
  klingLegacyStatusPath,
  readKlingLegacyCallbackTaskId,
} from './kling-legacy-provider.js';
export {
  KLING_LEGACY_IMAGE_MODELS,
  KLING_LEGACY_OFFERINGS,
  KLING_LEGACY_ROUTES,
  KLING_LEGACY_TRY_ON_MODELS,
  KLING_LEGACY_VIDEO_MODELS,
} from './kling-legacy-capabilities.js';
export { toKlingLegacyRequest, type KlingLegacyCreateCall } from './kling-legacy-request.js';
export { mapKlingLegacyStatus } from './kling-legacy-status.js';
export { KLING_LEGACY_ERROR_CODES, KLING_LEGACY_NOT_FOUND_CODE, mapKlingLegacyHttpError } from './kling-legacy-errors.js';
export { KlingLegacySimulator, klingLegacyErrorBody } from './kling-legacy-simulator.js';
