/**
 * The legacy Kling-API adapter: `POST /kling/v1/<videos|images>/<action>` to create,
 * `GET /kling/v1/<videos|images>/<action>/<task_id>` to poll (seed 002 "Get task"; an extension
 * at `videos/text2video/<task_id>` where its own path is refused, see `getStatus`), and the
 * unsigned `callback_url` callback, which the core authenticates by a per-task token in the
 * path and confirms with a poll. Bearer auth with the aggregator's key. The same adapter speaks
 * Kling's own API (`api_shape: official`, the same routes under `/v1`, on a regional host): with
 * an access key + secret key signed into a JWT per request, or an API key as Bearer.
 * Sources: shared/seeds/002_c5b198a4c5a04c7f.txt; official Kling AI API reference.
 */
import type { VideoRequest } from '../../core/model/canonical.js';
import type { Offering } from '../../core/model/offerings.js';
import { readCodedEnvelope, type CodedEnvelope } from '../../core/upstream/answer-envelope.js';
import { JwtBearerAuth } from '../../core/upstream/jwt-bearer-auth.js';
import { rememberedCharge } from '../../core/upstream/remembered-charge.js';
import type {
  CallContext,
  CreateLookup,
  LookupContext,
  ProviderTaskRef,
  StatusReport,
  SubmitContext,
  SubmitResult,
  UnansweredCreate,
  UpstreamResponse,
  VideoProvider,
} from '../../core/upstream/provider.js';
import { UpstreamError, unreadableAnswer, type UpstreamCall } from '../../core/upstream/upstream-error.js';
import {
  KLING_LEGACY_API_SHAPES,
  KLING_LEGACY_BASE_PATH,
  KLING_OFFICIAL_BASE_PATH,
  KLING_LEGACY_OFFERINGS,
  klingLegacyActionPath,
  type KlingLegacyAction,
  type KlingLegacyFamily,
} from './kling-legacy-capabilities.js';
import {
  KLING_LEGACY_NOT_FOUND_CODE,
  klingLegacyEnvelopeError,
  klingLegacyOfficialCode,
  mapKlingLegacyHttpError,
} from './kling-legacy-errors.js';
import { KLING_LEGACY_DEFAULT_PRICING } from './kling-legacy-pricing.js';
import { toKlingLegacyRequest } from './kling-legacy-request.js';
import { KlingLegacyEnvelope, KlingLegacyTask } from './kling-legacy-schemas.js';
import { KlingLegacySimulator } from './kling-legacy-simulator.js';
import { klingLegacyCallbackClaimsFinished, mapKlingLegacyStatus, readKlingLegacyCallbackTaskId } from './kling-legacy-status.js';

export const KLING_LEGACY_PROVIDER_ID = 'kling-legacy';

const FAMILIES: ReadonlySet<string> = new Set<KlingLegacyFamily>(['videos', 'images']);
const ACTIONS: ReadonlySet<string> = new Set<KlingLegacyAction>([
  'text2video',
  'image2video',
  'video-extend',
  'lip-sync',
  'generations',
  'kolors-virtual-try-on',
]);

/**
 * Shortest plausible upstream run, before which polling is pointless. Deliberately low
 * floors (the fastest Kling renders, turbo models at 5 s, take well over this): video
 * generation 20 s plus 4 s per second of output (40 s for 5 s, 80 s for 15 s); extension
 * 40 s (it renders about 5 s more); lip-sync 30 s; an image or a try-on 8 s. The core scales
 * this down for simulators.
 */
export function klingLegacyMinimumRunTimeMs(request: VideoRequest): number {
  switch (request.operation) {
    case 'image-generation':
    case 'virtual-try-on':
      return 8_000;
    case 'lip-sync':
      return 30_000;
    case 'video-extend':
      return 40_000;
    default:
      return 20_000 + 4_000 * (request.duration ?? 5);
  }
}

/**
 * Every answer is a `{code, message, request_id, data}` envelope. Aggregators may answer HTTP
 * 200 with a non-zero `code`; that becomes an UpstreamError carrying the HTTP status the
 * official table gives for the code, so the router reasons as if the upstream had used it.
 */
const ENVELOPE: CodedEnvelope<KlingLegacyEnvelope> = { schema: KlingLegacyEnvelope, errorOf: klingLegacyEnvelopeError };

/** The task of a 2xx answer. */
function readTask(call: Omit<UpstreamCall, 'provider'>, response: UpstreamResponse): KlingLegacyTask {
  return readCodedEnvelope({ provider: KLING_LEGACY_PROVIDER_ID, ...call }, response, ENVELOPE, KlingLegacyTask, 'no data.task_id');
}

async function submit(request: VideoRequest, offering: Offering, context: SubmitContext): Promise<SubmitResult> {
  const call = toKlingLegacyRequest(request, offering, {
    callbackUrl: context.callbackUrl,
    externalTaskId: context.attemptKey,
    apiShape: context.http.apiShape,
  });
  const info = { operation: 'submit', url: call.path };
  const response = await context.http.send(
    { method: 'POST', path: call.path, body: call.body, operation: info.operation },
    context.signal,
  );
  const task = readTask(info, response);
  if (task.task_id.trim() === '') {
    // Nothing to poll or look for: the create may still have been accepted (lookup decides).
    throw unreadableAnswer({ provider: KLING_LEGACY_PROVIDER_ID, ...info }, response.status, response.data, 'empty data.task_id');
  }
  const report = mapKlingLegacyStatus(task);
  return {
    // A task id means the task exists: without a known word it is waiting, not "unknown".
    ...(task.task_status ? report : { ...report, status: 'queued' }),
    // The action the task was created with decides its status path (seed 002); a charge the
    // answer reported is kept, as a status answer's is.
    ref: { providerTaskId: task.task_id, tracking: { family: call.family, action: call.action, ...CHARGE.entryOf(report) } },
  };
}

/**
 * The latest `final_unit_deduction` an answer reported above 0 while the task ran (0 then is no
 * charge yet), or at its end, kept in `tracking` under that name: a last answer that leaves the
 * figure out (an aggregator sending the result alone) has not taken it back, so the task ends
 * with the provider's figure, not the running one marked as an estimate.
 */
const CHARGE = rememberedCharge('final_unit_deduction');

/**
 * `GET /kling/v1/<family>/<action>/<task_id>` (`/v1/…` on Kling's own API) for a tracked task:
 * at the create's action, or at `tracking.statusAction` once the task answered there instead.
 */
export function klingLegacyStatusPath(ref: ProviderTaskRef, apiShape?: string): string {
  const family = ref.tracking.family ?? '';
  const action = ref.tracking.statusAction ?? ref.tracking.action ?? '';
  if (!FAMILIES.has(family) || !ACTIONS.has(action)) {
    throw new Error(`kling-legacy task ${ref.providerTaskId} has no status route (tracking ${JSON.stringify(ref.tracking)})`);
  }
  const base = klingLegacyActionPath(family as KlingLegacyFamily, action as KlingLegacyAction, apiShape);
  return `${base}/${encodeURIComponent(ref.providerTaskId)}`;
}

/**
 * Where a task is asked about when its own action's path is refused. Kling's own API polls an
 * extension at `videos/video-extend/<id>`, but seed 002's "Get task" lists action2 as only
 * generations, text2video, image2video, lip-sync and kolors-virtual-try-on: a reseller keeping to
 * that list answers for an extension at its generic video path. Every other action is listed.
 */
const STATUS_ACTION_FALLBACKS: Partial<Record<string, KlingLegacyAction>> = { 'video-extend': 'text2video' };

/** HTTP statuses with which a server refuses a route it does not serve. */
const ROUTE_REFUSAL_STATUSES: ReadonlySet<number> = new Set([400, 404, 405]);

/**
 * Whether an answer refuses the path itself: by the envelope's code when it is an official one
 * (1200–1203, invalid parameters, method or resource), else by an HTTP 400, 404 or 405. A rate
 * limit, an auth failure or a server error says nothing about the path.
 */
function refusesThePath(error: unknown): boolean {
  if (!(error instanceof UpstreamError) || error.transport !== undefined) return false;
  const serviceCode = error.providerCode === undefined ? NaN : Number(error.providerCode);
  if (Number.isInteger(serviceCode) && klingLegacyOfficialCode(serviceCode)) return serviceCode >= 1200 && serviceCode <= 1203;
  return error.statusCode !== undefined && ROUTE_REFUSAL_STATUSES.has(error.statusCode);
}

/** The task asked about at its fallback path; undefined when it has none or already asks there. */
function atFallbackPath(ref: ProviderTaskRef): ProviderTaskRef | undefined {
  const fallback = STATUS_ACTION_FALLBACKS[ref.tracking.action ?? ''];
  if (!fallback || ref.tracking.statusAction !== undefined) return undefined;
  return { providerTaskId: ref.providerTaskId, tracking: { ...ref.tracking, statusAction: fallback } };
}

async function askStatus(ref: ProviderTaskRef, context: CallContext): Promise<StatusReport> {
  const path = klingLegacyStatusPath(ref, context.http.apiShape);
  const response = await context.http.send({ method: 'GET', path, operation: 'status' }, context.signal);
  return mapKlingLegacyStatus(readTask({ operation: 'status', url: path }, response));
}

/**
 * The task's status at its path; when that path is refused and the action has a fallback, at
 * the fallback, whose tracking the report carries so the core keeps asking there. Refused on
 * both, the poll fails with the first refusal, as it would without the fallback. An answer
 * without `final_unit_deduction` states the charge an earlier one reported (`CHARGE`).
 */
async function getStatus(ref: ProviderTaskRef, context: CallContext): Promise<StatusReport> {
  return CHARGE.carry(ref, await askStatusOrFallback(ref, context));
}

async function askStatusOrFallback(ref: ProviderTaskRef, context: CallContext): Promise<StatusReport> {
  try {
    return await askStatus(ref, context);
  } catch (refusal) {
    const fallback = atFallbackPath(ref);
    if (!fallback || !refusesThePath(refusal)) throw refusal;
    try {
      return { ...(await askStatus(fallback, context)), tracking: fallback.tracking };
    } catch (error) {
      throw refusesThePath(error) ? refusal : error;
    }
  }
}

/**
 * Finds the task an unanswered create became by the `external_task_id` it carried (our attempt
 * key): the query route takes it in place of the task id (official API reference, "Query Task
 * (Single)": `task_id` or `external_task_id`). Found: its task, checked to echo our id in
 * `task_info.external_task_id` when it says one. "Requested resource does not exist" (1203)
 * proves the create was not accepted on Kling's own API (`api_shape: official`), where the query
 * by external id is documented; from an aggregator (seed 002 shows only the task id) it proves
 * nothing. Only text2video and image2video carry the id (see
 * `kling-legacy-request.ts`); for the other actions only the per-task callback can tell.
 */
async function findCreate(create: UnansweredCreate, context: LookupContext): Promise<CreateLookup> {
  const call = toKlingLegacyRequest(create.request, create.offering, { externalTaskId: create.attemptKey, apiShape: context.http.apiShape });
  if ((call.body as { external_task_id?: string }).external_task_id !== create.attemptKey) {
    return { kind: 'unknown', why: `kling-legacy documents no external_task_id for ${call.action}, so no task can be looked up by it` };
  }
  const path = `${call.statusPath}/${encodeURIComponent(create.attemptKey)}`;
  let response: UpstreamResponse;
  let task: KlingLegacyTask;
  try {
    response = await context.http.send({ method: 'GET', path, operation: 'lookup' }, context.signal);
    task = readTask({ operation: 'lookup', url: path }, response);
  } catch (error) {
    if (error instanceof UpstreamError && error.providerCode === String(KLING_LEGACY_NOT_FOUND_CODE)) {
      // Only Kling's own API documents the query by external_task_id; an aggregator that does
      // not pass it through would say "does not exist" of a task it holds.
      return context.http.apiShape === 'official'
        ? { kind: 'absent', why: `kling-legacy has no task with external_task_id ${create.attemptKey}` }
        : { kind: 'unknown', why: `the aggregator found no task by external_task_id ${create.attemptKey}, which only Kling's own API documents` };
    }
    throw error;
  }
  if (task.task_id.trim() === '') {
    return { kind: 'unknown', why: `kling-legacy answered the lookup of ${create.attemptKey} without a task id` };
  }
  const echoed = task.task_info?.external_task_id;
  if (echoed && echoed !== create.attemptKey) {
    return { kind: 'unknown', why: `kling-legacy answered with a task of another external_task_id (${echoed})` };
  }
  return { kind: 'found', ref: { providerTaskId: task.task_id, tracking: { family: call.family, action: call.action } } };
}

/** The reference of the task a create became, from the id a confirmed callback named. */
function refOfCreate(create: UnansweredCreate, providerTaskId: string): ProviderTaskRef {
  const call = toKlingLegacyRequest(create.request, create.offering, { externalTaskId: create.attemptKey });
  return { providerTaskId, tracking: { family: call.family, action: call.action } };
}

/** The legacy Kling-API as resold under `/kling/v1`: older models, extend, lip-sync, images, try-on. */
export const klingLegacyProvider: VideoProvider = {
  id: KLING_LEGACY_PROVIDER_ID,
  name: 'Legacy Kling-API',
  offerings: KLING_LEGACY_OFFERINGS,
  // Placeholders: the legacy API bills in resource-pack units and seed 002 publishes no price
  // (see kling-legacy-pricing.ts).
  defaultPricing: KLING_LEGACY_DEFAULT_PRICING,
  inboundWebhook: 'token',
  // Official Kling API reference, task result `url`: "generated images/videos will be cleared after
  // 30 days, please save them in time" (seed 002 resells that API and says nothing else).
  resultLifetimeMs: 30 * 24 * 3600_000,
  minimumRunTimeMs: klingLegacyMinimumRunTimeMs,
  authHeaders: (apiKey) => ({ authorization: `Bearer ${apiKey}` }),
  // Kling's own API: an HS256 JWT per request from the access key and secret key, `iss` = access
  // key, valid 30 minutes from 5 s ago (official API reference, "General Information" →
  // authentication); signed again 5 minutes before it would expire.
  createAuth: ({ accessKey, secretKey }, clock) =>
    new JwtBearerAuth({ accessKey, secretKey, lifetimeMs: 30 * 60_000, notBeforeSkewMs: 5_000, refreshBeforeMs: 5 * 60_000, clock }),
  apiShapes: KLING_LEGACY_API_SHAPES,
  // Aggregators document their routes as `/kling/v1/…` (seed 002), Kling's own API as `/v1/…`.
  routePrefixes: { aggregator: KLING_LEGACY_BASE_PATH, official: KLING_OFFICIAL_BASE_PATH },
  // Kling's own hosts, by the names its documentation gives them; each speaks the official shape.
  regions: {
    global: { baseUrl: 'https://api.klingai.com', apiShape: 'official' },
    singapore: { baseUrl: 'https://api-singapore.klingai.com', apiShape: 'official' },
    beijing: { baseUrl: 'https://api-beijing.klingai.com', apiShape: 'official' },
  },
  mapHttpError: mapKlingLegacyHttpError,
  submit,
  getStatus,
  chargedCredits: CHARGE.chargedCredits,
  findCreate,
  findsCreateById: true,
  refOfCreate,
  readCallbackTaskId: readKlingLegacyCallbackTaskId,
  callbackClaimsFinished: klingLegacyCallbackClaimsFinished,
  createSimulator: (options) => new KlingLegacySimulator(options),
};
