/**
 * The gateway's OpenAPI document, generated from the same zod schemas that validate requests
 * (never written by hand). `npm run generate:openapi` writes it to `openapi/gateway.json`; a
 * test fails when the committed file drifts from this.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { CreateVideoRequest, IDEMPOTENCY_KEY, Model, ProblemDetails, Task, TaskList, TaskStatus, WebhookDeliveryList } from '../core/model/canonical.js';
import { problemType } from '../core/model/problems.js';
import { OUTPUT_MEDIA_TYPES } from '../core/tasks/output-copy.js';
import { USAGE_GROUP_KEYS, USAGE_METRIC_COLUMNS } from '../core/tasks/usage-report.js';
import type { VideoProvider } from '../core/upstream/provider.js';
import { budgetEvent, Health, taskEvent, ModelList, ProviderList, Quote, UsageReportSchema, WebhookAck } from './api-schemas.js';
import { WEBHOOK_BODY_LIMIT } from './webhook-body-budget.js';

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemDetails } },
});

/**
 * The two 409s of a create with an `Idempotency-Key` (`task-service.ts`), told apart by `type`:
 * one is not to be sent again, the other is, after `Retry-After`.
 */
const IdempotencyConflict = ProblemDetails.pick({ title: true, status: true, detail: true, instance: true }).extend({
  type: z.enum([problemType('idempotency-key-reused'), problemType('idempotency-key-in-progress')]).meta({
    description:
      '`…/idempotency-key-reused`: the key made a task from another body (`detail` names it); do not send this again, send a new key. ' +
      '`…/idempotency-key-in-progress`: the first request with this key is still being submitted; send the same request again after `Retry-After` seconds.',
  }),
}).meta({ id: 'IdempotencyConflict', description: 'RFC 9457 problem details of a 409 to a create with an `Idempotency-Key`.' });

/**
 * The 409s of a cancel (`task-service.ts`), told apart by `type`: a final one, and one whose
 * cancel is kept undecided, to be asked again after `Retry-After`.
 */
const CancelConflict = ProblemDetails.pick({ title: true, status: true, detail: true, instance: true }).extend({
  type: z.enum([problemType('conflict'), problemType('cancel-pending')]).meta({
    description:
      '`…/conflict`: final: the task finished, or a provider that cannot cancel holds it (it runs to the end and is billed); asking again changes nothing. ' +
      '`…/cancel-pending`: the create on its way to a provider is not answered yet, or its answer was lost and whether the provider holds the task is ' +
      'being looked up (or the task is changing hands); the cancel is kept, and the task ends `canceled` if the provider turns the create down or is ' +
      'shown not to hold it. Read the task, or cancel again, after `Retry-After` seconds.',
  }),
}).meta({ id: 'CancelConflict', description: 'RFC 9457 problem details of a 409 to a cancel.' });

/** The webhook routes' body limit as the document says it (`WEBHOOK_BODY_LIMIT`). */
const WEBHOOK_LIMIT_TEXT = `${WEBHOOK_BODY_LIMIT / 1024} KiB`;

/** A webhook route's own 503 when the webhook bodies read at once are at their bound (`webhook-body-budget.ts`). */
const WEBHOOK_BODIES_BUSY =
  ' Or the gateway is already reading `server.webhook_bodies_max_bytes` of webhook bodies (each counted as its ' +
  `\`Content-Length\`, a chunked one as the ${WEBHOOK_LIMIT_TEXT} limit): nothing of this one was read, and its connection is closed; ` +
  'send it again after `Retry-After` seconds.';

/** A webhook route's 413. */
const WEBHOOK_TOO_LARGE = problem(`A body over ${WEBHOOK_LIMIT_TEXT} (provider webhooks are a few KB): not read.`);

const STOPPING = 'The gateway is stopping: send the request again after `Retry-After` seconds (another replica takes it).';

/**
 * The 503 of a route: what every route but the probes and the provider webhooks answers once the
 * gateway is stopping (`stop-gate.ts`), after the route's own reason for a 503 when it has one.
 * Both carry `Retry-After`.
 */
function serviceUnavailable(own: { description: string } | undefined) {
  return {
    ...problem(own ? `${own.description} Or ${STOPPING.charAt(0).toLowerCase()}${STOPPING.slice(1)}` : STOPPING),
    headers: z.object({ 'retry-after': z.string() }),
  };
}

/**
 * Registers a route of the API, with the 503 of a stopping gateway (beside its own 503, if any);
 * `takenWhileStopping` for a route the stop gate lets through (a provider's webhook or callback).
 */
type RegisterRoute = (route: RouteConfig, options?: { takenWhileStopping?: boolean }) => void;

/**
 * A read answered with JSON carries an `ETag` (express's, also on the hot read), and a request whose
 * `If-None-Match` names it is answered `304` without a body.
 */
const NOT_MODIFIED = { description: 'Not modified: the `ETag` of the answer matches `If-None-Match`; no body.' };

function withNotModified(route: RouteConfig): RouteConfig {
  const ok = route.responses[200] as { content?: Record<string, unknown> } | undefined;
  if (route.method !== 'get' || route.responses[304] || !ok?.content?.['application/json']) return route;
  return { ...route, responses: { ...route.responses, 304: NOT_MODIFIED } };
}

function routeRegistrar(registry: OpenAPIRegistry): RegisterRoute {
  return (given, options) => {
    const route = withNotModified(given);
    if (options?.takenWhileStopping) {
      const own = route.responses[503] as { description: string } | undefined;
      registry.registerPath({ ...route, responses: { ...route.responses, ...(own ? { 503: { ...own, headers: z.object({ 'retry-after': z.string() }) } } : {}) } });
      return;
    }
    registry.registerPath({ ...route, responses: { ...route.responses, 503: serviceUnavailable(route.responses[503] as { description: string } | undefined) } });
  };
}

/** Said of every provider webhook route: a draining gateway still takes it (`stop-gate.ts`). */
const TAKEN_WHILE_STOPPING =
  ' Also taken while the gateway drains on a stop (answered with `Connection: close`): it is news of a task upstream, which may not be sent again.';

/**
 * A stored output's bytes, by the media type it was stored with (`output-copy.ts`): a known one, or
 * another of its kind (`video/*`, `image/*`); never `application/octet-stream`.
 */
const OUTPUT_BYTES = Object.fromEntries(
  [...OUTPUT_MEDIA_TYPES, 'video/*', 'image/*'].map((type) => [type, { schema: z.string().meta({ format: 'binary' }) }]),
);

/**
 * `YYYY-MM-DD`, or a date-time to the minute or finer with `Z` or a `±hh:mm` offset: the forms the
 * usage report's `from` and `to` take (`DateOrZonedDateTime`), as one pattern a generated client
 * types as a string. A day the month lacks (`2026-11-31`) passes it and is still a 400.
 */
const DATE_OR_ZONED_DATE_TIME =
  '^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])(T([01]\\d|2[0-3]):[0-5]\\d(:[0-5]\\d(\\.\\d+)?)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d))?$';

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

/** `kling-legacy` → `KlingLegacy`, `budget.warning` → `BudgetWarning`: an id's words joined, for an `operationId`. */
function operationName(id: string): string {
  return id
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}

/**
 * The route a provider's upstream calls back on, as its declaration says (`inboundWebhook` and
 * `webhookSignature`); nothing for a provider that is only polled.
 */
function registerInboundWebhook(register: RegisterRoute, provider: VideoProvider): void {
  const body = { content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } };
  switch (provider.inboundWebhook) {
    case 'signed': {
      const headers = provider.webhookSignature?.headers ?? [];
      register({
        method: 'post',
        path: `/v1/webhooks/${provider.id}`,
        operationId: `receive${operationName(provider.id)}Webhook`,
        summary: `Inbound ${provider.name} webhook`,
        description:
          (provider.webhookSignature?.description ??
            `Verified by the ${provider.name} adapter (signature and timestamp), with replay protection by webhook id.`) + TAKEN_WHILE_STOPPING,
        request: {
          ...(headers.length > 0 ? { headers: z.object(Object.fromEntries(headers.map((name) => [name, z.string()]))) } : {}),
          body,
        },
        responses: {
          200: json(WebhookAck, 'Accepted (or a replay, which changes nothing).'),
          400: problem('The body could not be read (e.g. a content-encoding it does not have).'),
          401: problem('Signature or timestamp not valid; nothing changed.'),
          408: problem('The body did not arrive within `server.body_timeout_ms`.'),
          413: WEBHOOK_TOO_LARGE,
          404: problem('Webhooks not configured.'),
          503: problem(
            'Verified, but it names no task the gateway knows while a create to this provider is still being recorded ' +
              '(it may be that one); send it again shortly.' +
              WEBHOOK_BODIES_BUSY,
          ),
        },
      }, { takenWhileStopping: true });
      register({
        method: 'post',
        path: `/v1/webhooks/${provider.id}/{attempt}`,
        operationId: `receive${operationName(provider.id)}AttemptWebhook`,
        summary: `Inbound ${provider.name} webhook for one create`,
        description:
          'Where the gateway asks the provider to send the webhooks of each create (`attempt` is the attempt key it ' +
          'sent). Verified exactly as the route without it; the path lets a verified webhook for a task whose create ' +
          'answer was lost be matched to its attempt, and the task adopted.' +
          TAKEN_WHILE_STOPPING,
        request: {
          params: z.object({ attempt: z.string() }),
          ...(headers.length > 0 ? { headers: z.object(Object.fromEntries(headers.map((name) => [name, z.string()]))) } : {}),
          body,
        },
        responses: {
          200: json(WebhookAck, 'Accepted (or a replay, which changes nothing).'),
          400: problem('The body could not be read (e.g. a content-encoding it does not have).'),
          401: problem('Signature or timestamp not valid; nothing changed.'),
          404: problem('Webhooks not configured.'),
          408: problem('The body did not arrive within `server.body_timeout_ms`.'),
          413: WEBHOOK_TOO_LARGE,
          503: problem('The create this webhook is about is still being answered; send it again shortly.' + WEBHOOK_BODIES_BUSY),
        },
      }, { takenWhileStopping: true });
      return;
    }
    case 'token':
      register({
        method: 'post',
        path: `/v1/webhooks/${provider.id}/{token}`,
        operationId: `receive${operationName(provider.id)}Callback`,
        summary: `Inbound ${provider.name} callback`,
        description: `Unsigned upstream: accepted only on the per-task token, and confirmed by fetching the task.${TAKEN_WHILE_STOPPING}`,
        request: { params: z.object({ token: z.string() }), body },
        responses: {
          200: json(
            WebhookAck,
            'Accepted; the task is confirmed by a status fetch. One that comes while its create is still being answered ' +
              'by this replica is acted on once that answer is recorded.',
          ),
          400: problem(
            'The body could not be read (e.g. a content-encoding it does not have), or it names another upstream task ' +
              'than the one the create was answered with.',
          ),
          404: problem('Unknown token.'),
          408: problem('The body did not arrive within `server.body_timeout_ms`.'),
          413: WEBHOOK_TOO_LARGE,
          503: problem(
            'The create this callback is about is not recorded yet and is not being answered by this replica (another ' +
              'replica sends it, or stopped while sending it), and the callback names no task the provider confirms; ' +
              'send it again shortly.' +
              WEBHOOK_BODIES_BUSY,
          ),
        },
      }, { takenWhileStopping: true });
      return;
    case 'none':
      return;
  }
}

/**
 * The document for a gateway serving `providers` (their inbound webhook routes included) and
 * knowing `providerIds` (the list's `provider` filter; by default those it serves).
 */
export function buildOpenApiDocument(providers: readonly VideoProvider[], providerIds: readonly string[] = providers.map((provider) => provider.id)) {
  const registry = new OpenAPIRegistry();
  const bearer = registry.registerComponent('securitySchemes', 'gatewayKey', {
    type: 'http',
    scheme: 'bearer',
    description: 'A gateway key from config.yaml (`GATEWAY_API_KEYS`); each key names its tenant.',
  });
  const security = [{ [bearer.name]: [] }];
  const metricsToken = registry.registerComponent('securitySchemes', 'metricsToken', {
    type: 'http',
    scheme: 'bearer',
    description: '`server.metrics_token` (`METRICS_TOKEN`), for `/metrics` only; not a gateway key.',
  });
  const register = routeRegistrar(registry);
  const videoId = z.object({ id: z.string().meta({ description: 'Task id: `vid_` and 16 base64url characters.', example: 'vid_Q7m2xK9pL4tR_wZ8' }) });
  const requestIdHeader = {
    'x-request-id': { description: 'Echoes the client id or a generated one.', schema: { type: 'string' as const } },
  };

  register({
    method: 'post',
    path: '/v1/videos',
    operationId: 'createVideo',
    summary: 'Create a video generation task',
    description:
      'Validates the request, picks a provider by policy and submits it (failing over when the provider certainly ' +
      'did not take it). Answers with the task: `queued` with its `provider_task_id` once a provider accepted it into its ' +
      'own queue, `processing` once it runs, `queued` with no `provider_task_id` while it waits for a provider slot, or `failed` ' +
      'when no provider would take it.',
    security,
    request: {
      headers: z.object({
        // The key TaskService.create takes; another is answered 400.
        'idempotency-key': z.string().min(1).max(255).regex(IDEMPOTENCY_KEY).optional().meta({
          description: 'Repeats with the same key and body return the same task (kept 24 h); a different body is 409. 1-255 visible ASCII characters (no spaces).',
        }),
      }),
      body: { required: true, content: { 'application/json': { schema: CreateVideoRequest } } },
    },
    responses: {
      202: {
        ...json(Task, 'The task.'),
        headers: {
          ...requestIdHeader,
          location: { description: "The task's own path, `/v1/videos/{id}`.", required: true, schema: { type: 'string' as const } },
          'idempotent-replayed': {
            description: '`true` when the answer is a repeat of an earlier create with the same `Idempotency-Key` (its task; nothing new was made); absent otherwise.',
            schema: { type: 'string' as const, enum: ['true'] },
          },
        },
      },
      400: problem('Invalid request (`errors[]` names each field).'),
      401: problem('Missing or invalid gateway key.'),
      402: problem(
        "The task's reservation would pass the tenant's budget (`budget`, `spent`, `reserved`, `requested`); nothing was sent to a provider.",
      ),
      409: {
        description:
          'The `Idempotency-Key` was used before with a different body (`type` `…/idempotency-key-reused`: send a new key), or the first request ' +
          'with it is still being submitted after the repeat waited for it (`type` `…/idempotency-key-in-progress`, with `Retry-After`: send the same request again then).',
        content: { 'application/problem+json': { schema: IdempotencyConflict } },
        headers: z.object({
          'retry-after': z.string().optional().meta({ description: 'On `…/idempotency-key-in-progress` only: seconds to wait before sending the request again.' }),
        }),
      },
      408: problem('The body did not arrive within `server.body_timeout_ms`.'),
      413: problem('Body too large.'),
      415: problem('Body is not JSON.'),
      422: problem('No provider can serve the request (`providers[]` gives every reason).'),
      429: { ...problem("Past the tenant's creates per minute; `Retry-After` says when to try again."), headers: z.object({ 'retry-after': z.string() }) },
    },
  });
  register({
    method: 'post',
    path: '/v1/videos/quote',
    operationId: 'quoteVideo',
    summary: 'Quote a request without creating anything',
    description: 'Every provider with eligibility, reasons, estimated credits and cost, and the order routing would try.',
    security,
    request: { body: { required: true, content: { 'application/json': { schema: CreateVideoRequest } } } },
    responses: {
      200: json(Quote, 'The quote.'),
      400: problem('Invalid request.'),
      401: problem('Missing or invalid gateway key.'),
      408: problem('The body did not arrive within `server.body_timeout_ms`.'),
      413: problem('Body too large.'),
      415: problem('Body is not JSON.'),
      422: problem('A `webhook_url` create would refuse (a private target, or no webhook secret for the tenant).'),
    },
  });
  register({
    method: 'get',
    path: '/v1/videos',
    operationId: 'listVideos',
    summary: "List the caller's tasks, newest first",
    security,
    request: {
      query: z.object({
        status: TaskStatus.optional(),
        provider: z
          .enum(providerIds as [string, ...string[]])
          .meta({
            id: 'ProviderId',
            description:
              'A provider the gateway knows: only its tasks. One turned off since (or left without a key) is still known, its tasks still ' +
              'listed; another id is a `400` naming the known ones.',
          })
          .optional(),
        model: Model.optional(),
        limit: z.number().int().min(1).max(100).optional().meta({ description: 'Default 20.' }),
        cursor: z.string().min(1).max(200).optional().meta({ description: '`next_cursor` of the previous page.' }),
      }),
    },
    responses: {
      200: json(TaskList, 'A page of tasks.'),
      400: problem('Invalid query.'),
      401: problem('Missing or invalid gateway key.'),
    },
  });
  register({
    method: 'get',
    path: '/v1/videos/{id}',
    operationId: 'getVideo',
    summary: 'Get one task',
    description: 'Reads the store only; never calls a provider. `wait` holds the request until the task is terminal.',
    security,
    request: {
      params: videoId,
      query: z.object({
        wait: z.number().int().min(0).max(60).optional().meta({ description: 'Seconds to wait for a terminal status.' }),
      }),
    },
    responses: {
      200: json(Task, 'The task.'),
      400: problem('Invalid query.'),
      401: problem('Missing or invalid gateway key.'),
      404: problem('No such task for this tenant.'),
      429: {
        ...problem("With `wait`: the tenant already holds its `open_waits` waits open; `Retry-After` says when to try again."),
        headers: z.object({ 'retry-after': z.string() }),
      },
    },
  });
  register({
    method: 'post',
    path: '/v1/videos/{id}/cancel',
    operationId: 'cancelVideo',
    summary: 'Cancel a task',
    description:
      'A task no provider has taken yet (`queued`, no `provider_task_id`) ends `canceled` at no cost (`error.code: canceled`); the `video.canceled` ' +
      'webhook is sent. A task being sent to a provider at this moment is waited for (up to the upstream time limit): if ' +
      "the provider accepts it, it is not canceled. A task a provider accepted (`processing`, or `queued` in the provider's own queue) is answered 409: none of the " +
      'providers documents a way to cancel, so it runs to the end and is billed. Canceling a canceled task answers it again. ' +
      'It takes no query and no body (an empty JSON object is accepted).',
    security,
    request: {
      params: videoId,
      // Optional: a client that sends `{}` (as some send on every POST) is declared, any field is a 400.
      body: {
        required: false,
        content: {
          'application/json': {
            schema: z.strictObject({}).meta({ description: 'No body, or this empty object: the route takes no field.', example: {} }),
          },
        },
      },
    },
    responses: {
      200: json(Task, 'The canceled task.'),
      400: problem('A query parameter, or a JSON body that is not empty (`errors[]` names its fields), or malformed JSON.'),
      401: problem('Missing or invalid gateway key.'),
      404: problem('No such task for this tenant.'),
      408: problem('The body did not arrive within `server.body_timeout_ms`.'),
      409: {
        description:
          'The task already finished, or a provider holds it and cannot cancel it (`type` `…/conflict`: final); or the create on its way to a ' +
          'provider is still undecided (`type` `…/cancel-pending`, with `Retry-After`: the cancel is kept; read the task, or cancel again, then).',
        content: { 'application/problem+json': { schema: CancelConflict } },
        headers: z.object({
          'retry-after': z.string().optional().meta({ description: 'On `…/cancel-pending` only: seconds to wait before reading the task or canceling again.' }),
        }),
      },
      413: problem('A body over `server.body_limit`.'),
      415: problem('A body that is not JSON.'),
      502: problem('The provider was asked to cancel and did not.'),
    },
  });
  register({
    method: 'get',
    path: '/v1/videos/{id}/content',
    operationId: 'getVideoContent',
    summary: 'Download a stored output',
    description:
      "The gateway's stored copy of output `index` (SHA-256 checked at copy time). Authenticated by the gateway key, or by " +
      'the signed link in `outputs[].url` (`expires` + `signature`, no key needed until it expires). Supports `Range` ' +
      '(one range → 206 with `Content-Range`; outside the file → 416), `If-None-Match` / `If-Range` against the ETag (the ' +
      'SHA-256), `If-Modified-Since` (304), `If-Match` / `If-Unmodified-Since` (412 when they do not hold). With S3 storage (`storage.s3.serve: redirect`) the answer is a 302 to a presigned URL. An output that was ' +
      'never stored (storage off, or the copy failed for good) redirects (307) to the provider\'s URL while it exists.',
    security: [...security, {}],
    request: {
      params: videoId,
      query: z.object({
        index: z.number().int().min(0).max(1000).optional().meta({ description: 'Which output (default 0).' }),
        // At most 15 digits, as every number of the query (`query-number.ts`).
        expires: z.number().int().positive().max(999_999_999_999_999).optional().meta({ description: 'Signed links: expiry (Unix seconds).' }),
        signature: z.string().min(1).max(200).optional().meta({ description: 'Signed links: the signature.' }),
      }),
      headers: z.object({
        range: z.string().optional().meta({ description: 'One byte range, e.g. `bytes=0-1023`.', example: 'bytes=0-1023' }),
        'if-none-match': z.string().optional(),
        'if-range': z.string().optional(),
        'if-match': z.string().optional(),
        'if-modified-since': z.string().optional(),
        'if-unmodified-since': z.string().optional(),
      }),
    },
    responses: {
      200: {
        description: 'The whole file.',
        headers: {
          'content-type': { description: "As the provider served it when it is a video or image type; else by the URL's extension, or `video/mp4` (`image/png` for an image).", schema: { type: 'string' as const } },
          'content-length': { schema: { type: 'integer' as const } },
          etag: { description: 'The SHA-256 of the file, quoted.', schema: { type: 'string' as const } },
          'accept-ranges': { schema: { type: 'string' as const } },
        },
        content: OUTPUT_BYTES,
      },
      206: {
        description: 'The range asked for.',
        headers: { 'content-range': { schema: { type: 'string' as const } }, 'content-length': { schema: { type: 'integer' as const } } },
        content: OUTPUT_BYTES,
      },
      302: { description: 'Redirect to a presigned URL of the stored copy (S3).', headers: { location: { schema: { type: 'string' as const } } } },
      304: { description: 'Not modified (`If-None-Match` matched the ETag, or, without it, the copy is not newer than `If-Modified-Since`).' },
      307: { description: 'Not stored: redirect to the provider\'s URL.', headers: { location: { schema: { type: 'string' as const } } } },
      400: problem('Invalid query.'),
      401: problem('No gateway key and no valid signed link.'),
      404: problem('No such task for this tenant, or no output at that index.'),
      409: problem('The task is still waiting or generating, or the output is still being copied.'),
      410: problem('The stored copy was deleted after its retention, or was never stored and the provider no longer has it.'),
      412: problem('`If-Match` does not name the ETag, or (without it) the copy was stored after `If-Unmodified-Since`.'),
      416: problem('The range is outside the file (`Content-Range: bytes */<size>`).'),
      503: problem('Storage could not read the stored copy right now (`Retry-After`).'),
    },
  });
  register({
    method: 'get',
    path: '/v1/videos/{id}/events',
    operationId: 'streamVideoEvents',
    summary: 'Server-Sent Events of one task',
    description:
      'One event per status change (event name = status, data = Task, id = the task version); the stream closes after a ' +
      'terminal status (`succeeded`, `failed` or `canceled`). A client that reconnects with `Last-Event-ID` is not sent ' +
      'again what it read: nothing until the task changes, or `204` when it already read the terminal event.',
    security,
    request: {
      params: videoId,
      headers: z.object({
        'last-event-id': z.string().optional().meta({ description: 'The `id` of the last event read (set by SSE clients on reconnect).' }),
      }),
    },
    responses: {
      200: { description: 'An event stream.', content: { 'text/event-stream': { schema: z.string() } } },
      204: { description: 'The client already read the terminal event (`Last-Event-ID`): nothing more will come.' },
      400: problem('A query parameter: this route takes none.'),
      401: problem('Missing or invalid gateway key.'),
      404: problem('No such task for this tenant.'),
      429: {
        ...problem('The tenant already holds its `open_streams` event streams open; `Retry-After` says when to try again.'),
        headers: z.object({ 'retry-after': z.string() }),
      },
    },
  });
  register({
    method: 'get',
    path: '/v1/videos/{id}/webhooks',
    operationId: 'listVideoWebhookDeliveries',
    summary: "Deliveries of one task's events to its webhook_url",
    description:
      'Each event sent (or being sent) to the task\'s `webhook_url`, oldest first: its `webhook-id`, whether it was ' +
      'delivered, how many tries, the last HTTP status and error, and when the next try is due. Empty for a task without ' +
      '`webhook_url`.',
    security,
    request: { params: videoId },
    responses: {
      200: json(WebhookDeliveryList, 'The deliveries.'),
      400: problem('A query parameter: this route takes none.'),
      401: problem('Missing or invalid gateway key.'),
      404: problem('No such task for this tenant.'),
    },
  });
  register({
    method: 'get',
    path: '/v1/models',
    operationId: 'listModels',
    summary: 'Canonical models and operations, and which providers serve each',
    security,
    responses: {
      200: json(ModelList, 'Models.'),
      400: problem('A query parameter: this route takes none.'),
      401: problem('Missing or invalid gateway key.'),
    },
  });
  register({
    method: 'get',
    path: '/v1/providers',
    operationId: 'listProviders',
    summary: 'Providers: enabled, circuit, in flight, recent success and latency, pricing',
    security,
    responses: {
      200: json(ProviderList, 'Providers.'),
      400: problem('A query parameter: this route takes none.'),
      401: problem('Missing or invalid gateway key.'),
    },
  });
  register({
    method: 'get',
    path: '/v1/usage',
    operationId: 'getUsage',
    summary: 'Spend and outcomes, grouped: the provider comparison',
    description:
      "The caller's tasks created in `[from, to)`, added up per combination of the `group_by` keys (and always per currency): " +
      'counts by outcome, seconds of video, credits and money (estimated vs reported by the provider), cost per second, ' +
      'success rate, median time to complete, and quote against actual. Money of unfinished tasks is not counted until they ' +
      'finish. With an admin key (`tenants.<name>.admin: true`) every tenant, `group_by=tenant` and `tenant=` are allowed. ' +
      'Also the budget state. Read from per-task usage lines, not from the tasks.',
    security,
    request: {
      query: z.object({
        group_by: z.string().max(200).optional().meta({
          // The keys `UsageQuery` takes, spaces around them and empty ones ignored; its other rules are said below.
          // Whitespace after a key only when there is one: `\s*(key)?\s*` let a validator split each run of
          // spaces every way between its two `\s*` (exponential in the runs of `,  ,  …!`).
          // Then, ahead of it: no key twice, and `account` only beside `provider` (`[\s\S]`: any character, line breaks too).
          pattern:
            `^(?![\\s\\S]*\\b(${USAGE_GROUP_KEYS.join('|')})\\b[\\s\\S]*\\b\\1\\b)(?=[\\s\\S]*\\bprovider\\b|(?![\\s\\S]*\\baccount\\b))` +
            `\\s*((${USAGE_GROUP_KEYS.join('|')})\\s*)?(,\\s*((${USAGE_GROUP_KEYS.join('|')})\\s*)?)*$`,
          description:
            'Comma-separated, in column order: `provider`, `account` (the provider account that took the task; with `provider`), `model`, `operation`, `quality`, `day`, `tenant` (admin); each at most once.',
          example: 'provider,model',
        }),
        from: z.string().optional().meta({
          pattern: DATE_OR_ZONED_DATE_TIME,
          description: 'Inclusive; `YYYY-MM-DD` (00:00 UTC) or ISO 8601 with a zone. Default: the first of the current UTC month.',
        }),
        to: z.string().optional().meta({
          pattern: DATE_OR_ZONED_DATE_TIME,
          description: 'Exclusive; same forms. Default: the end of the current UTC day.',
        }),
        format: z.enum(['json', 'csv']).optional().meta({ description: '`csv`: `text/csv`, a header row, then one line per row.' }),
        tenant: z.string().min(1).max(64).optional().meta({ description: 'Admin keys only: one tenant.' }),
      }),
    },
    responses: {
      200: {
        description: 'The report.',
        content: {
          'application/json': { schema: UsageReportSchema },
          'text/csv': {
            schema: z.string().meta({
              // Every column, from the list the CSV is written by: a range ("from … to …") fell behind when columns were added.
              description: `RFC 4180: a header, the \`group_by\` keys, then ${USAGE_METRIC_COLUMNS.map((column) => `\`${column}\``).join(', ')} (the JSON row's fields, in this order); budgets are JSON only.`,
            }),
          },
        },
      },
      400: problem('Invalid query (unknown parameter or group key, a date that is not ISO 8601, `from` not before `to`).'),
      401: problem('Missing or invalid gateway key.'),
      403: problem('`group_by=tenant` or another tenant without an admin key.'),
    },
  });
  for (const provider of providers) registerInboundWebhook(register, provider);
  registry.registerPath({
    method: 'get',
    path: '/healthz',
    operationId: 'getLiveness',
    summary: 'Liveness',
    responses: { 200: json(Health, 'Alive.') },
  });
  registry.registerPath({
    method: 'get',
    path: '/readyz',
    operationId: 'getReadiness',
    summary: "Readiness (the store answers, and this replica's clock agrees with the database server's)",
    responses: { 200: json(Health, 'Ready.'), 503: json(Health, "Store unreachable, or this replica's clock is off the database server's (`reason` says by how much).") },
  });
  registry.registerPath({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    summary: 'Prometheus metrics',
    description: 'With `server.metrics_token` set, it asks for it as a bearer token; without one it is open in the sandbox and to loopback clients only when live.',
    // The token, or nothing when none is configured.
    security: [{ [metricsToken.name]: [] }, {}],
    responses: {
      200: { description: 'Exposition format.', content: { 'text/plain': { schema: z.string() } } },
      401: problem('The metrics token is missing or wrong.'),
      403: problem('Live deployment without a metrics token: loopback clients only.'),
    },
  });

  for (const [type, status] of [
    ['video.processing', 'the provider runs the task (`processing`)'],
    ['video.succeeded', 'the task `succeeded`: `data.outputs` holds the results'],
    ['video.failed', 'the task `failed`: `data.error` says why'],
    ['video.canceled', 'the task was `canceled`'],
  ] as const) {
    registry.registerWebhook({
      method: 'post',
      path: type,
      operationId: `on${operationName(type)}`,
      summary: `${type}: ${status}`,
      description:
        "Sent to the task's `webhook_url` once per event, signed with Standard Webhooks (`webhook-id`, `webhook-timestamp`, " +
        "`webhook-signature`, the tenant's `whsec_` secret; while the tenant rotates it, one `v1,` signature per secret, " +
        'space-separated, so either secret verifies). `data` is the task as `GET /v1/videos/{id}` answers it at that change. ' +
        'Its deliveries are listed by `GET /v1/videos/{id}/webhooks`.',
      request: { body: { content: { 'application/json': { schema: taskEvent(type) } } } },
      responses: { 200: { description: 'Any 2xx acknowledges; anything else is retried with back-off (`webhooks.max_attempts`).' } },
    });
  }

  for (const [type, percent] of [
    ['budget.warning', 80],
    ['budget.exhausted', 100],
  ] as const) {
    registry.registerWebhook({
      method: 'post',
      path: type,
      operationId: `on${operationName(type)}`,
      summary: `${type}: the tenant's budget reached ${percent} %`,
      description:
        `Sent once per budget period to \`tenants.<name>.events_url\`, signed like task events (Standard Webhooks, the ` +
        `tenant's \`whsec_\` secret), when spent + reserved reaches ${percent} % of the budget` +
        (percent === 100 ? ', or when a create is first refused for the budget.' : '.'),
      request: { body: { content: { 'application/json': { schema: budgetEvent(type, percent) } } } },
      responses: { 200: { description: 'Any 2xx acknowledges; anything else is retried with back-off.' } },
    });
  }

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Kling Gateway',
      version: '1.0.0',
      description:
        `One REST API for Kling video generation across ${new Intl.ListFormat('en').format(providers.map((provider) => provider.name))}: ` +
        'routing by policy, failover, tracking, normalized results and per-video cost. Errors are RFC 9457 problem details.',
    },
    servers: [{ url: '/' }],
  });
}
