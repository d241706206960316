/**
 * The kling3api.com adapter: `POST /api/generate` to submit, `GET /api/status?task_id=` to
 * poll. Bearer auth, no webhooks.
 * Source: shared/seeds/004_1ace3cef13878ba3.txt ("Authentication", "API Endpoints").
 */
import type { VideoRequest } from '../../core/model/canonical.js';
import type { Offering } from '../../core/model/offerings.js';
import { readCodedEnvelope, type CodedEnvelope } from '../../core/upstream/answer-envelope.js';
import { rememberedCharge } from '../../core/upstream/remembered-charge.js';
import type {
  CallContext,
  ProviderTaskRef,
  StatusReport,
  SubmitContext,
  SubmitResult,
  UnansweredCreate,
  VideoProvider,
} from '../../core/upstream/provider.js';
import { KLING3API_OFFERINGS } from './kling3api-capabilities.js';
import { kling3apiCreateEnvelopeError, kling3apiStatusEnvelopeError, mapKling3apiHttpError } from './kling3api-errors.js';
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

/**
 * Every answer is a `{code, message, data}` envelope, and may be an error under HTTP 200 (a
 * `code` other than 200): that becomes an UpstreamError with the HTTP status the seed's table
 * gives for the code, so the router reasons as if the upstream had used it. A status answer with
 * a status word under a code that names no error (`0`, `"OK"`) is that status, as a create's is its task.
 */
const ENVELOPE: CodedEnvelope<Kling3apiEnvelope> = { schema: Kling3apiEnvelope, errorOf: kling3apiStatusEnvelopeError };
/** A create's answer: as above, but a task id under a code that names no error is the task. */
const CREATE_ENVELOPE: CodedEnvelope<Kling3apiEnvelope> = { schema: Kling3apiEnvelope, errorOf: kling3apiCreateEnvelopeError };

async function submit(request: VideoRequest, offering: Offering, context: SubmitContext): Promise<SubmitResult> {
  const body = toKling3apiRequest(request, offering);
  const call = { provider: KLING3API_PROVIDER_ID, operation: 'submit', url: KLING3API_GENERATE_PATH };
  const response = await context.http.send(
    { method: 'POST', path: KLING3API_GENERATE_PATH, body, operation: call.operation },
    context.signal,
  );
  const data = readCodedEnvelope(call, response, CREATE_ENVELOPE, Kling3apiGenerateData, 'no data.task_id');
  // A task id means the task exists: without a status word it is in progress, not "unknown".
  const report: StatusReport = data.status
    ? mapKling3apiStatus(data)
    : { ...mapKling3apiStatus(data), status: 'processing' };
  return {
    ...report,
    // The type is kept so that logs and a later poll know which family (n75 / n71) it is; the
    // credits the create reported, so that a status answer without them still states the charge.
    ref: { providerTaskId: data.task_id, tracking: trackingOf(body.type, report) },
  };
}

/**
 * The latest `consumed_credits` an answer reported (the create's, then any status answer's that
 * differs), kept in `tracking` under that name.
 */
const CHARGE = rememberedCharge('consumed_credits');

function trackingOf(type: string, report: StatusReport): Record<string, string> {
  return { type, ...CHARGE.entryOf(report) };
}

async function getStatus(ref: ProviderTaskRef, context: CallContext): Promise<StatusReport> {
  const query = { task_id: ref.providerTaskId };
  const call = {
    provider: KLING3API_PROVIDER_ID,
    operation: 'status',
    url: `${KLING3API_STATUS_PATH}?${new URLSearchParams(query).toString()}`,
  };
  const response = await context.http.send(
    { method: 'GET', path: KLING3API_STATUS_PATH, query, operation: call.operation },
    context.signal,
  );
  const report = mapKling3apiStatus(readCodedEnvelope(call, response, ENVELOPE, Kling3apiStatusData, 'no data'));
  // Seed 004 charges at creation (`consumed_credits` in the generate answer); a status answer
  // that leaves the figure out has not taken it back. A new figure is kept with the task: one
  // ended without a last answer (its deadline passed while the status could not be read) is
  // charged the latest the upstream said.
  return CHARGE.carry(ref, report);
}

/**
 * The reference of the task a create became, from the id its answer named beside a server error
 * (`INTERNAL_ERROR` with a `task_id`): adopted once `GET /api/status` shows that task.
 */
function refOfCreate(create: UnansweredCreate, providerTaskId: string): ProviderTaskRef {
  return { providerTaskId, tracking: { type: toKling3apiRequest(create.request, create.offering).type } };
}

/** kling3api.com: Kling 3.0 and Kling Video O3 behind one `type`-routed endpoint. */
export const kling3apiProvider: VideoProvider = {
  id: KLING3API_PROVIDER_ID,
  name: 'kling3api.com',
  offerings: KLING3API_OFFERINGS,
  defaultPricing: KLING3API_DEFAULT_PRICING,
  // The seed documents no callback: tracking is by polling only.
  inboundWebhook: 'none',
  // Seed 004 documents no lifetime of the `response` URLs: no `resultLifetimeMs`.
  minimumRunTimeMs: kling3apiMinimumRunTimeMs,
  authHeaders: (apiKey) => ({ authorization: `Bearer ${apiKey}` }),
  mapHttpError: mapKling3apiHttpError,
  submit,
  getStatus,
  refOfCreate,
  chargedCredits: CHARGE.chargedCredits,
  createSimulator: (options) => new Kling3apiSimulator(options),
};
