/**
 * The kling3api.com adapter: `POST /api/generate` to submit, `GET /api/status?task_id=` to
 * poll. Bearer auth, no webhooks.
 * Source: shared/seeds/004_1ace3cef13878ba3.txt ("Authentication", "API Endpoints").
 */
import type { VideoRequest } from '../../core/model/canonical.js';
import type { CallContext, ProviderTaskRef, StatusReport, SubmitContext, SubmitResult, UpstreamResponse, VideoProvider } from '../../core/upstream/provider.js';
import type { Offering } from '../../core/model/offerings.js';
import { errorInSuccessAnswer, unreadableAnswer, type UpstreamError } from '../../core/upstream/upstream-error.js';
import { KLING3API_OFFERINGS } from './kling3api-capabilities.js';
import { kling3apiEnvelopeStatus, mapKling3apiHttpError } from './kling3api-errors.js';
import { KLING3API_DEFAULT_PRICING } from './kling3api-pricing.js';
import { toKling3apiRequest } from './kling3api-request.js';
import { Kling3apiEnvelope, Kling3apiGenerateData, Kling3apiStatusData } from './kling3api-schemas.js';
import { Kling3apiSimulator } from './kling3api-simulator.js';
import { mapKling3apiStatus } from './kling3api-status.js';

export const KLING3API_PROVIDER_ID = 'kling3api';
export const KLING3API_GENERATE_PATH = '/api/generate';
export const KLING3API_STATUS_PATH = '/api/status';

/**
 * Shortest plausible time upstream, before which polling is pointless. The seed publishes no
 * timings; Kling 3.0 renders take minutes, so these are deliberately low floors: 30 s plus 3 s
 * per second of video (45 s for 5 s, 75 s for 15 s), and 60 s for a video edit (its length is
 * the source's). The core scales this down for simulators.
 */
export function kling3apiMinimumRunTimeMs(request: VideoRequest): number {
  if (request.operation === 'video-edit') return 60_000;
  return 30_000 + 3_000 * (request.duration ?? 5);
}

interface CallInfo {
  operation: string;
  url: string;
}

function unreadable(call: CallInfo, response: UpstreamResponse, why: string): UpstreamError {
  return unreadableAnswer({ provider: KLING3API_PROVIDER_ID, ...call }, response.status, response.data, why);
}

/**
 * The `data` of a 2xx answer. The API may answer HTTP 200 with an error envelope (`code` other
 * than 200); that becomes an UpstreamError with the HTTP status the seed's table gives for the
 * code, so the router reasons from `statusCode` as if the upstream had used it.
 */
function readEnvelopeData(call: CallInfo, response: UpstreamResponse): unknown {
  const envelope = Kling3apiEnvelope.safeParse(response.data);
  if (!envelope.success) throw unreadable(call, response, 'not a {code, message, data} envelope');
  const { code, data } = envelope.data;
  // Absent `code` is tolerated when the data is usable; the seed always sends 200.
  if (code !== undefined && code !== null && String(code).trim() !== '200') {
    const statusCode = kling3apiEnvelopeStatus(response.data);
    const mapped = mapKling3apiHttpError(statusCode, response.data);
    throw errorInSuccessAnswer({ provider: KLING3API_PROVIDER_ID, ...call }, mapped, statusCode, response);
  }
  return data;
}

async function submit(request: VideoRequest, offering: Offering, context: SubmitContext): Promise<SubmitResult> {
  const body = toKling3apiRequest(request, offering);
  const call = { operation: 'submit', url: KLING3API_GENERATE_PATH };
  const response = await context.http.send(
    { method: 'POST', path: KLING3API_GENERATE_PATH, body, operation: call.operation },
    context.signal,
  );
  const parsed = Kling3apiGenerateData.safeParse(readEnvelopeData(call, response));
  if (!parsed.success) throw unreadable(call, response, 'no data.task_id');
  const data = parsed.data;
  // A task id means the task exists: without a status word it is in progress, not "unknown".
  const report: StatusReport = data.status
    ? mapKling3apiStatus(data)
    : { ...mapKling3apiStatus(data), status: 'processing' };
  return {
    ...report,
    // The type is kept so that logs and a later poll know which family (n75 / n71) it is.
    ref: { providerTaskId: data.task_id, tracking: { type: body.type } },
  };
}

async function getStatus(ref: ProviderTaskRef, context: CallContext): Promise<StatusReport> {
  const query = { task_id: ref.providerTaskId };
  const call = { operation: 'status', url: `${KLING3API_STATUS_PATH}?${new URLSearchParams(query).toString()}` };
  const response = await context.http.send(
    { method: 'GET', path: KLING3API_STATUS_PATH, query, operation: call.operation },
    context.signal,
  );
  const parsed = Kling3apiStatusData.safeParse(readEnvelopeData(call, response));
  if (!parsed.success) throw unreadable(call, response, 'no data');
  return mapKling3apiStatus(parsed.data);
}

/** kling3api.com: Kling 3.0 and Kling Video O3 behind one `type`-routed endpoint. */
export const kling3apiProvider: VideoProvider = {
  id: KLING3API_PROVIDER_ID,
  name: 'kling3api.com',
  offerings: KLING3API_OFFERINGS,
  defaultPricing: KLING3API_DEFAULT_PRICING,
  // The seed documents no callback: tracking is by polling only.
  inboundWebhook: 'none',
  minimumRunTimeMs: kling3apiMinimumRunTimeMs,
  authHeaders: (apiKey) => ({ authorization: `Bearer ${apiKey}` }),
  mapHttpError: mapKling3apiHttpError,
  submit,
  getStatus,
  createSimulator: (options) => new Kling3apiSimulator(options),
};
