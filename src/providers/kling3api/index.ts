/**
 * kling3api.com (Kling 3.0 and Kling Video O3): the provider and what tests, the sandbox and the
 * registry need from it. Source: shared/seeds/004_1ace3cef13878ba3.txt.
 */
export {
  kling3apiProvider,
  kling3apiMinimumRunTimeMs,
  KLING3API_PROVIDER_ID,
  KLING3API_GENERATE_PATH,
  KLING3API_STATUS_PATH,
} from './kling3api-provider.js';
export {
  KLING3API_OFFERINGS,
  KLING3API_TASK_TYPES,
  KLING3API_ALL_TASK_TYPES,
  KLING3API_MAX_PROMPT_LENGTH,
  KLING3API_MAX_REFERENCE_IMAGES,
  kling3apiTaskTypeFor,
  type Kling3apiTaskType,
} from './kling3api-capabilities.js';
export { toKling3apiRequest, kling3apiTaskTypeOf, type Kling3apiGenerateRequest } from './kling3api-request.js';
export { mapKling3apiStatus, type Kling3apiStatusFields } from './kling3api-status.js';
export {
  mapKling3apiHttpError,
  readKling3apiError,
  looksLikeContentPolicy,
  kling3apiEnvelopeStatus,
  KLING3API_ERROR_CODES,
  type Kling3apiErrorCode,
  type Kling3apiErrorCodeEntry,
} from './kling3api-errors.js';
export { KLING3API_DEFAULT_PRICING, KLING3API_DEFAULT_CREDIT_VALUE_USD } from './kling3api-pricing.js';
export {
  Kling3apiSimulator,
  kling3apiSimulatedCredits,
  validateKling3apiGenerateBody,
  KLING3API_SIM_FAILURE_MESSAGE,
  KLING3API_SIM_CONTENT_POLICY_MESSAGE,
  KLING3API_SIM_EXPIRED_MESSAGE,
} from './kling3api-simulator.js';
