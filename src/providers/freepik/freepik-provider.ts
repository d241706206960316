/**
 * The Freepik provider (SPEC: provider id `freepik`, Kling 3 / Kling 3 Omni endpoints, header
 * `x-freepik-api-key`). Ties the pure pieces together: capabilities, request mapping, status
 * and error mapping, webhook verification, and the simulator.
 */
import type {
  CallContext,
  CreateLookup,
  LookupContext,
  ProviderTaskRef,
  StatusReport,
  SubmitContext,
  SubmitResult,
  UnansweredCreate,
  VideoProvider,
} from '../../core/upstream/provider.js';
import type { Offering } from '../../core/model/offerings.js';
import type { VideoRequest } from '../../core/model/canonical.js';
import { toHttpUri } from '../../core/upstream/upstream-body.js';
import { unreadableAnswer } from '../../core/upstream/upstream-error.js';
import { FREEPIK_OFFERINGS, FREEPIK_PAGED_LIST_FAMILIES, isFreepikStatusFamily } from './freepik-capabilities.js';
import { mapFreepikHttpError } from './freepik-errors.js';
import { FREEPIK_DEFAULT_PRICING } from './freepik-pricing.js';
import { toFreepikRequest } from './freepik-request.js';
import { readFreepikTask, readFreepikTaskIds } from './freepik-schemas.js';
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
  // `webhook_url` is `format: uri` in every request schema: sent as the URI of the public URL.
  const body = context.callbackUrl ? { ...upstream.body, webhook_url: toHttpUri(context.callbackUrl) } : upstream.body;
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

/** Tasks asked for per list page, where the list has pages (the most its `page_size` takes). */
const LIST_PAGE_SIZE = 100;
/** Pages read at most (the last one empty): a longer list proves nothing. */
const LIST_MAX_PAGES = 11;

/** What one list answer (a page, or a whole unpaged list) says about the create. */
type ListVerdict = { kind: 'more' } | { kind: 'end' } | CreateLookup;

/**
 * Freepik documents no client-side id on a create, so an unanswered create is looked for in the
 * task list of its family (seed 000 "Kling 3 - List tasks", seed 001 "Kling 3 Omni - List tasks",
 * "Kling 3 Omni Reference-to-Video - List tasks"): a whole list in which every task is one the
 * gateway knows proves the create was not accepted. A task the gateway does not know may be ours
 * or another client's of the same key — the list gives no prompt or date to tell — so it proves
 * nothing, and the create waits for the webhook on its attempt's own path to name its task.
 *
 * Paging: only the reference-to-video list documents `page` and `page_size`; it is read to its
 * empty end page, and a page that repeats tasks already read (paging ignored) proves nothing. The
 * other two lists take no parameters and answer "the list of all" tasks: one call, sent as
 * documented (no query), is the whole list.
 *
 * A list that holds fewer tasks than the gateway recorded in that family on the key it asked with
 * was cut short (an undocumented page, old tasks dropped) and proves nothing: the create's task
 * may be one it left out. The count is taken after the list was read, so a task recorded
 * meanwhile can only make the list look short, never whole.
 */
async function findCreate(create: UnansweredCreate, context: LookupContext): Promise<CreateLookup> {
  const family = toFreepikRequest(create.request, create.offering).statusFamily;
  const seen = new Set<string>();
  const read = async (query?: Record<string, string>): Promise<ListVerdict> => {
    const response = await context.http.send({ method: 'GET', path: family, ...(query ? { query } : {}), operation: 'lookup' }, context.signal);
    const ids = readFreepikTaskIds(response.data);
    if (!ids) throw unreadableAnswer({ provider: 'freepik', operation: 'lookup', url: family }, response.status, response.data, 'no task list');
    if (ids.some((id) => seen.has(id))) {
      return { kind: 'unknown', why: `the ${family} list repeats tasks across pages, so it cannot be read whole` };
    }
    ids.forEach((id) => seen.add(id));
    const known = await context.knownTaskIds(ids);
    const strangers = ids.filter((id) => !known.has(id));
    if (strangers.length > 0) {
      return { kind: 'unknown', why: `the ${family} list holds ${strangers.length} task(s) the gateway does not know (ours, or another client's of this key)` };
    }
    return ids.length === 0 ? { kind: 'end' } : { kind: 'more' };
  };
  const absent = async (): Promise<CreateLookup> => {
    const recorded = await context.recordedTaskCount({ family });
    if (recorded > seen.size) {
      return {
        kind: 'unknown',
        why: `the ${family} list holds ${seen.size} task(s), fewer than the ${recorded} the gateway recorded in it on this key: cut short, it proves nothing`,
      };
    }
    return { kind: 'absent', why: `every one of the ${seen.size} task(s) in the ${family} list is known to the gateway` };
  };

  if (!FREEPIK_PAGED_LIST_FAMILIES.has(family)) {
    const verdict = await read();
    return verdict.kind === 'more' || verdict.kind === 'end' ? absent() : verdict;
  }
  for (let page = 1; page <= LIST_MAX_PAGES; page++) {
    const verdict = await read({ page: String(page), page_size: String(LIST_PAGE_SIZE) });
    if (verdict.kind === 'end') return absent();
    if (verdict.kind !== 'more') return verdict;
  }
  return { kind: 'unknown', why: `the ${family} list is longer than ${(LIST_MAX_PAGES - 1) * LIST_PAGE_SIZE} tasks` };
}

/** The reference of the task a create became, from the id a verified webhook on the attempt's path named. */
function refOfCreate(create: UnansweredCreate, providerTaskId: string): ProviderTaskRef {
  return { providerTaskId, tracking: { family: toFreepikRequest(create.request, create.offering).statusFamily } };
}

/** Freepik's Kling 3 and Kling 3 Omni endpoints. */
export const freepikProvider: VideoProvider = {
  id: 'freepik',
  name: 'Freepik',
  offerings: FREEPIK_OFFERINGS,
  // Placeholders: Freepik publishes no prices in the seeds (see freepik-pricing.ts).
  defaultPricing: FREEPIK_DEFAULT_PRICING,
  // Freepik's documented limits: 50 hits/s over 5 s, and 10/s averaged over 2 minutes.
  defaultRateLimits: [
    { limit: 250, window_ms: 5_000 },
    { limit: 1_200, window_ms: 120_000 },
  ],
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
  findCreate,
  refOfCreate,
  verifyWebhook: verifyFreepikWebhook,
  createSimulator: (options) => new FreepikSimulator(options),
};
