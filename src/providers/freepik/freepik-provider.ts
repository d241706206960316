/**
 * The Freepik provider (SPEC: provider id `freepik`, Kling 3 / Kling 3 Omni endpoints, header
 * `x-freepik-api-key`). Ties the pure pieces together: capabilities, request mapping, status
 * and error mapping, webhook verification, and the simulator.
 */
import type { CallContext, ProviderTaskRef, StatusReport, SubmitContext, SubmitResult, VideoProvider } from '../../core/upstream/provider.js';
import type { Offering } from '../../core/model/offerings.js';
import type { VideoRequest } from '../../core/model/canonical.js';
import { unreadableAnswer } from '../../core/upstream/upstream-error.js';
import { FREEPIK_OFFERINGS, isFreepikStatusFamily } from './freepik-capabilities.js';
import { mapFreepikHttpError } from './freepik-errors.js';
import { FREEPIK_DEFAULT_PRICING } from './freepik-pricing.js';
import { toFreepikRequest } from './freepik-request.js';
import { readFreepikTask } from './freepik-schemas.js';
import { FreepikSimulator } from './freepik-simulator.js';
import { toFreepikStatusReport, verifyFreepikWebhook } from './freepik-status.js';

/**
 * Seed 001, Kling 3 FAQ: "Typical generation takes 30-120 seconds depending on duration and
 * complexity". The low end is the floor for every request: Freepik publishes nothing finer,
 * and a floor set too high would only delay noticing a fast finish.
 */
const MINIMUM_RUN_TIME_MS = 30_000;

async function submit(request: VideoRequest, offering: Offering, context: SubmitContext): Promise<SubmitResult> {
  const upstream = toFreepikRequest(request, offering);
  // The gateway's own callback, when it has one; the app's `webhook_url` is never sent upstream.
  const body = context.callbackUrl ? { ...upstream.body, webhook_url: context.callbackUrl } : upstream.body;
  const response = await context.http.send(
    { method: 'POST', path: upstream.path, body, operation: 'submit' },
    context.signal,
  );
  const task = readFreepikTask(response.data);
  if (!task?.task_id) throw unreadableAnswer({ provider: 'freepik', operation: 'submit', url: upstream.path }, response.status, response.data, 'no task_id');
  return {
    ...toFreepikStatusReport(task),
    ref: { providerTaskId: task.task_id, tracking: { family: upstream.statusFamily } },
  };
}

async function getStatus(ref: ProviderTaskRef, context: CallContext): Promise<StatusReport> {
  const family = ref.tracking.family;
  // Tracking data comes back from the store; only a known family is ever put in a path.
  if (!isFreepikStatusFamily(family)) {
    throw new Error(`Freepik task ${ref.providerTaskId} has no known status family (${String(family)})`);
  }
  const path = `${family}/${encodeURIComponent(ref.providerTaskId)}`;
  const response = await context.http.send({ method: 'GET', path, operation: 'status' }, context.signal);
  const task = readFreepikTask(response.data);
  if (!task?.status) throw unreadableAnswer({ provider: 'freepik', operation: 'status', url: path }, response.status, response.data, 'no status');
  return toFreepikStatusReport(task);
}

/** Freepik's Kling 3 and Kling 3 Omni endpoints. */
export const freepikProvider: VideoProvider = {
  id: 'freepik',
  name: 'Freepik',
  offerings: FREEPIK_OFFERINGS,
  // Placeholders: Freepik publishes no prices in the seeds (see freepik-pricing.ts).
  defaultPricing: FREEPIK_DEFAULT_PRICING,
  inboundWebhook: 'signed',
  // No lifetime of the `generated` URLs is documented (seeds 000, 001, 003): no `resultLifetimeMs`.
  webhookSignature: {
    headers: ['webhook-id', 'webhook-timestamp', 'webhook-signature'],
    description:
      'Verified with `webhook-id`, `webhook-timestamp` and `webhook-signature` (HMAC-SHA256, `v1,<base64>`), a 5-minute ' +
      'timestamp tolerance, and replay protection by `webhook-id`.',
  },
  minimumRunTimeMs: () => MINIMUM_RUN_TIME_MS,
  authHeaders: (apiKey) => ({ 'x-freepik-api-key': apiKey }),
  mapHttpError: mapFreepikHttpError,
  submit,
  getStatus,
  verifyWebhook: verifyFreepikWebhook,
  createSimulator: (options) => new FreepikSimulator(options),
};
