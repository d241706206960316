/**
 * The legacy Kling-API adapter: `POST /kling/v1/<videos|images>/<action>` to create,
 * `GET /kling/v1/<videos|images>/<action>/<task_id>` to poll (seed 002 "Get task"), and the
 * unsigned `callback_url` callback, which the core authenticates by a per-task token in the
 * path and confirms with a poll. Bearer auth.
 * Sources: shared/seeds/002_c5b198a4c5a04c7f.txt; official Kling AI API reference.
 */
import type { VideoRequest } from '../../core/model/canonical.js';
import type { CallContext, ProviderTaskRef, StatusReport, SubmitContext, SubmitResult, UpstreamResponse, VideoProvider } from '../../core/upstream/provider.js';
import type { Offering } from '../../core/model/offerings.js';
import { errorInSuccessAnswer, unreadableAnswer, type UpstreamError } from '../../core/upstream/upstream-error.js';
import {
  KLING_LEGACY_OFFERINGS,
  klingLegacyActionPath,
  type KlingLegacyAction,
  type KlingLegacyFamily,
} from './kling-legacy-capabilities.js';
import { klingLegacyServiceCode, mapKlingLegacyHttpError, mapKlingLegacyServiceCode } from './kling-legacy-errors.js';
import { toKlingLegacyRequest } from './kling-legacy-request.js';
import { KlingLegacyEnvelope, KlingLegacyTask } from './kling-legacy-schemas.js';
import { KlingLegacySimulator } from './kling-legacy-simulator.js';
import { mapKlingLegacyStatus } from './kling-legacy-status.js';

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

interface CallInfo {
  operation: string;
  url: string;
}

function unreadable(call: CallInfo, response: UpstreamResponse, why: string): UpstreamError {
  return unreadableAnswer({ provider: KLING_LEGACY_PROVIDER_ID, ...call }, response.status, response.data, why);
}

/**
 * The task of a 2xx answer. Aggregators may answer HTTP 200 with a non-zero `code`; that
 * becomes an UpstreamError carrying the HTTP status the official table gives for the code,
 * so the router reasons as if the upstream had used it.
 */
function readTask(call: CallInfo, response: UpstreamResponse): KlingLegacyTask {
  const envelope = KlingLegacyEnvelope.safeParse(response.data);
  if (!envelope.success || typeof response.data !== 'object' || response.data === null) {
    throw unreadable(call, response, 'not a {code, message, data} envelope');
  }
  const code = klingLegacyServiceCode(response.data);
  if (code !== undefined && code !== 0) {
    const mapped = mapKlingLegacyServiceCode(code, response.data);
    throw errorInSuccessAnswer({ provider: KLING_LEGACY_PROVIDER_ID, ...call }, mapped, mapped.httpStatus, response);
  }
  const task = KlingLegacyTask.safeParse(envelope.data.data);
  if (!task.success) throw unreadable(call, response, 'no data.task_id');
  return task.data;
}

async function submit(request: VideoRequest, offering: Offering, context: SubmitContext): Promise<SubmitResult> {
  const call = toKlingLegacyRequest(request, offering, {
    callbackUrl: context.callbackUrl,
    externalTaskId: context.attemptKey,
  });
  const info = { operation: 'submit', url: call.path };
  const response = await context.http.send(
    { method: 'POST', path: call.path, body: call.body, operation: info.operation },
    context.signal,
  );
  const task = readTask(info, response);
  const report = mapKlingLegacyStatus(task);
  return {
    // A task id means the task exists: without a known word it is waiting, not "unknown".
    ...(task.task_status ? report : { ...report, status: 'queued' }),
    // The action the task was created with decides its status path (seed 002).
    ref: { providerTaskId: task.task_id, tracking: { family: call.family, action: call.action } },
  };
}

/** `GET /kling/v1/<family>/<action>/<task_id>` for a tracked task. */
export function klingLegacyStatusPath(ref: ProviderTaskRef): string {
  const family = ref.tracking.family ?? '';
  const action = ref.tracking.action ?? '';
  if (!FAMILIES.has(family) || !ACTIONS.has(action)) {
    throw new Error(`kling-legacy task ${ref.providerTaskId} has no status route (tracking ${JSON.stringify(ref.tracking)})`);
  }
  const base = klingLegacyActionPath(family as KlingLegacyFamily, action as KlingLegacyAction);
  return `${base}/${encodeURIComponent(ref.providerTaskId)}`;
}

async function getStatus(ref: ProviderTaskRef, context: CallContext): Promise<StatusReport> {
  const path = klingLegacyStatusPath(ref);
  const response = await context.http.send({ method: 'GET', path, operation: 'status' }, context.signal);
  return mapKlingLegacyStatus(readTask({ operation: 'status', url: path }, response));
}

/**
 * The upstream task id a callback is about. The legacy callback body is the task object
 * (`task_id` at the top); some aggregators wrap it in the envelope (`data.task_id`).
 */
/** The callback body as an object (the task, bare or under `data`), if it is one. */
function callbackTask(body: unknown): Record<string, unknown> | undefined {
  let value = body;
  if (Buffer.isBuffer(value)) value = value.toString('utf8');
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  if (!value || typeof value !== 'object') return undefined;
  const record = value as Record<string, unknown>;
  if (record.task_id === undefined && record.data && typeof record.data === 'object') {
    return record.data as Record<string, unknown>;
  }
  return record;
}

export function readKlingLegacyCallbackTaskId(body: unknown): string | undefined {
  const task = callbackTask(body);
  const id = KlingLegacyTask.shape.task_id.safeParse(task?.task_id);
  return id.success && id.data !== '' ? id.data : undefined;
}

/**
 * Whether a callback claims the task ended (`succeed` / `failed`), or says nothing readable
 * (then it is treated as a claim, to be confirmed). Progress callbacks are not worth a fetch.
 */
export function klingLegacyCallbackClaimsFinished(body: unknown): boolean {
  const status = callbackTask(body)?.task_status;
  if (typeof status !== 'string') return true;
  return !['submitted', 'processing'].includes(status.trim().toLowerCase());
}

/** The legacy Kling-API as resold under `/kling/v1`: older models, extend, lip-sync, images, try-on. */
export const klingLegacyProvider: VideoProvider = {
  id: KLING_LEGACY_PROVIDER_ID,
  name: 'Legacy Kling-API',
  offerings: KLING_LEGACY_OFFERINGS,
  // Prices are in config.yaml: the official API bills in resource-pack "units" whose value
  // depends on the pack and the reseller; a shipped table would only mislead `cheapest`.
  defaultPricing: undefined,
  inboundWebhook: 'token',
  minimumRunTimeMs: klingLegacyMinimumRunTimeMs,
  authHeaders: (apiKey) => ({ authorization: `Bearer ${apiKey}` }),
  mapHttpError: mapKlingLegacyHttpError,
  submit,
  getStatus,
  readCallbackTaskId: readKlingLegacyCallbackTaskId,
  callbackClaimsFinished: klingLegacyCallbackClaimsFinished,
  createSimulator: (options) => new KlingLegacySimulator(options),
};
