/**
 * The canonical model (SPEC §1): what apps send and what they get back, whichever provider
 * serves them. Written once in zod; TypeScript types come from `z.infer` and the gateway's
 * OpenAPI document is generated from these schemas.
 *
 * Incoming schemas are strict (an unknown field is an error, never ignored).
 */
import { z } from 'zod';
import { uriProblem } from './uri-text.js';

/**
 * The longest `video_id` a create may name (the legacy Kling API's ids are far shorter). The store
 * notes result ids up to its own `NOTED_OUTPUT_ID_MAX_LENGTH`, which must not be smaller (a test
 * holds the two equal), so that any id named here can be found.
 */
export const VIDEO_ID_MAX_LENGTH = 128;

/** An `Idempotency-Key` the gateway takes: 1-255 visible ASCII characters (no spaces). */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export const MODELS = [
  'kling-v3',
  'kling-v3-omni',
  'kling-v2-6',
  'kling-v2-5-turbo',
  'kling-v2-1-master',
  'kling-v2-master',
  'kling-v1-6',
  'kling-v1',
  // The legacy Kling-API serves virtual try-on with its own Kolors models; they are
  // canonical models too so that a try-on request names what it runs on.
  'kolors-virtual-try-on-v1',
  'kolors-virtual-try-on-v1-5',
] as const;
export const Model = z.enum(MODELS).meta({ id: 'Model', description: 'Canonical model name.' });
export type Model = z.infer<typeof Model>;

export const QUALITIES = ['pro', 'std'] as const;
export const Quality = z.enum(QUALITIES).meta({ id: 'Quality' });
export type Quality = z.infer<typeof Quality>;

export const OPERATIONS = [
  'text-to-video',
  'image-to-video',
  'reference-to-video',
  'video-edit',
  'video-extend',
  'lip-sync',
  'image-generation',
  'virtual-try-on',
] as const;
export const Operation = z.enum(OPERATIONS).meta({ id: 'Operation' });
export type Operation = z.infer<typeof Operation>;

/** Operations whose result is an image rather than a video. */
export const IMAGE_OPERATIONS: ReadonlySet<Operation> = new Set(['image-generation', 'virtual-try-on']);

export const ASPECT_RATIOS = ['16:9', '9:16', '1:1', 'auto'] as const;
export const AspectRatio = z.enum(ASPECT_RATIOS).meta({ id: 'AspectRatio' });
export type AspectRatio = z.infer<typeof AspectRatio>;

export const TASK_STATUSES = ['queued', 'processing', 'succeeded', 'failed', 'canceled'] as const;
export const TaskStatus = z.enum(TASK_STATUSES).meta({
  id: 'TaskStatus',
  description:
    '`queued`: waiting, either at the gateway (no provider has accepted it: no `provider_task_id`) or in the ' +
    "provider's own queue (Freepik `CREATED`, legacy `submitted`: `provider_task_id` set). `processing`: the provider " +
    'is generating it. `succeeded`, `failed`, `canceled` are terminal.',
});
export type TaskStatus = z.infer<typeof TaskStatus>;
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'canceled']);

export const ERROR_CODES = [
  'content_policy',
  'invalid_request',
  'provider_error',
  'timeout',
  'insufficient_credits',
  'no_provider_available',
  'expired',
  'canceled',
] as const;
export const ErrorCode = z.enum(ERROR_CODES).meta({
  id: 'ErrorCode',
  description: '`canceled` is the reason of a `canceled` task (by `POST /v1/videos/{id}/cancel` or `cancel_after`).',
});
export type ErrorCode = z.infer<typeof ErrorCode>;

export const ROUTING_STRATEGIES = ['priority', 'cheapest', 'weighted', 'fastest'] as const;
export const RoutingStrategy = z.enum(ROUTING_STRATEGIES).meta({ id: 'RoutingStrategy' });
export type RoutingStrategy = z.infer<typeof RoutingStrategy>;

// Control characters are refused, not passed on: a URL holds none (RFC 3986), and PostgreSQL
// cannot store a NUL (`webhook_url` has a column of its own). Checked on the URL as sent, before
// the URL check, which would otherwise strip tabs and line breaks (and trim the ends) first and
// pass on a URL the caller did not write. So is a lone surrogate (text that is not Unicode): the
// store and the URL parser would each turn it into U+FFFD, another URL than the one given.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/*
 * The document's words for the URL rules (its `pattern`s; JSON Schema's `format: uri` alone would
 * allow any scheme, no host, or any port). The gateway reads a URL as the WHATWG URL parser does:
 * for http(s), `\` ends the authority as `/` does, and the userinfo runs to the authority's last
 * `@`. A port is decimal digits, leading zeros allowed, at most 65535.
 */
/**
 * RFC 3986 as written (`uri-text.ts`): only a URI's characters, each `%` starting an escape;
 * brackets only around an IPv6 host; exactly two slashes before the host; one `#` at most (the
 * fragment's start) and one `@` at most before the host (the userinfo's end).
 */
const URI_TEXT = String.raw`(?=(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$)(?![^#]*#[^#]*#)`;
const BRACKETS_AROUND_HOST_ONLY = String.raw`(?=(?:[^\[\]/?#]*@)?(?:\[[0-9A-Fa-f:.]+\](?::[0-9]*)?|[^\[\]/?#]*)(?:[/?#][^\[\]]*)?$)`;
const URL_START = String.raw`^${URI_TEXT}[Hh][Tt][Tt][Pp][Ss]?://${BRACKETS_AROUND_HOST_ONLY}(?![^/?#]*@[^/?#]*@)`;
/** From the authority's start: an optional userinfo, then the host (an IPv6 literal in brackets, or a name or IPv4 address). */
const USERINFO_AND_HOST = String.raw`(?:[^/?#\\]*@)?(?:\[[^\]/?#\\]*\]|[^:/?#\\@\[\]]*)`;
const AUTHORITY_END = String.raw`(?:[/?#\\]|$)`;
const PORT_PAST_65535 = String.raw`0*(?:[1-9]\d{5,}|[7-9]\d{4}|6[6-9]\d{3}|65[6-9]\d{2}|655[4-9]\d|6553[6-9])`;
const HTTP_URL_PATTERN = `${URL_START}(?!${USERINFO_AND_HOST}:${PORT_PAST_65535}${AUTHORITY_END})[^/?#]`;
/** Also no credentials (a userinfo other than none, `@` or `:@`) and not port 0. */
const WEBHOOK_URL_PATTERN =
  `${URL_START}(?=(?::?@)?[^@/?#\\\\]*${AUTHORITY_END})(?!${USERINFO_AND_HOST}:(?:0+|${PORT_PAST_65535})${AUTHORITY_END})[^/?#]`;

const httpUrl = z
  .string()
  .refine((url) => !/[\u0000-\u001f\u007f]/.test(url), { error: 'must not contain a control character', abort: true })
  .refine((url) => !LONE_SURROGATE.test(url), { error: 'must be well-formed Unicode (it holds a lone surrogate)', abort: true })
  // The URL check trims spaces at the ends; the text as written would go upstream (or be stored) with them.
  .refine((url) => !/^ | $/.test(url), { error: 'must not begin or end with white space', abort: true })
  // Sent upstream as written, where these fields are `format: uri`: a URL a browser would mend
  // (a space, `ü`, `|`, `%zz`, `\`) is a 400 here, saying how to write it, not a failed task there.
  .refine((url) => uriProblem(url) === undefined, {
    error: (issue) => `must be a URI (RFC 3986) as written: ${uriProblem(issue.input as string) ?? 'it is not'}`,
    abort: true,
  })
  .check(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }))
  // A message of its own: the one above would otherwise be said of a URL that is merely long.
  .max(2048, 'must be at most 2048 characters')
  // In the document: `format: uri` alone would allow any scheme (`ftp:`, `mailto:`) or no host, which is a 400.
  .meta({
    pattern: HTTP_URL_PATTERN,
    description:
      'An http(s) URL written as an RFC 3986 URI, sent upstream exactly as written: no space, non-ASCII character, ' +
      '`\\`, `|`, `"`, `<`, `>`, `^`, `` ` ``, `{` or `}` (percent-encode them: `ü` as `%C3%BC`, a space as `%20`; ' +
      'a host in ASCII, punycode for an international one), every `%` starting an escape (`%25` for a literal `%`), ' +
      '`[` `]` only around an IPv6 host, at most 2048 characters. Anything else is `400`, never rewritten.',
  });
/**
 * The URL the gateway POSTs a task's events to. Credentials (`user:password@`) are refused: the
 * receiver authenticates the gateway by the Standard Webhooks signature, and a password here would
 * be kept in the store and shown back in every delivery's `url` (`GET /v1/videos/{id}/webhooks`).
 */
const webhookUrl = httpUrl
  .refine((url) => !hasCredentials(url), { error: 'must not carry credentials (user:password@): receivers check the webhook signature' })
  // A URL may name port 0, but nothing can be connected to there: every delivery would fail.
  .refine((url) => URL.parse(url)?.port !== '0', { error: 'must not name port 0: no connection can be made to it' })
  .meta({
    pattern: WEBHOOK_URL_PATTERN,
    description:
      'Where the task\'s events are POSTed (Standard Webhooks, signed with the tenant\'s `whsec_` secret). ' +
      'Written as an RFC 3986 URI, as every URL field (see `start_image_url`). ' +
      'One carrying credentials (`user:password@`) is `400`; a literal private, loopback or link-local address is `422` unless the gateway allows private targets.',
  });

/** True when `url` names a user or a password (`https://user:pass@host/`). */
function hasCredentials(url: string): boolean {
  const parsed = URL.parse(url);
  return parsed !== null && (parsed.username !== '' || parsed.password !== '');
}
const providerId = z.string().min(1).max(64);

export const MultiShotItem = z
  .strictObject({
    prompt: z.string().min(1).max(2500),
    duration: z.int().min(1).max(15).optional().meta({
      description: 'Seconds for this shot. Providers that take per-shot durations need it on every shot.',
    }),
  })
  .meta({ id: 'MultiShotItem' });

export const Element = z
  .strictObject({
    frontal_image_url: httpUrl,
    reference_image_urls: z.array(httpUrl).max(4).default([]),
  })
  .meta({ id: 'Element', description: 'A character or object kept consistent across the video.' });

export const LipSyncText = z.strictObject({
  text: z.string().min(1).max(120),
  voice_id: z.string().min(1).max(128),
  voice_language: z.enum(['zh', 'en']).default('en'),
  voice_speed: z.number().min(0.8).max(2).default(1),
});
export const LipSyncAudio = z.strictObject({ audio_url: httpUrl });
export const LipSync = z.union([LipSyncText, LipSyncAudio]).meta({
  id: 'LipSync',
  description: 'Either text spoken by a voice, or an audio file to sync the lips to.',
});

const cameraAxis = z.number().min(-10).max(10).optional();
export const CameraControl = z
  .strictObject({
    type: z.enum(['simple', 'down_back', 'forward_up', 'right_turn_forward', 'left_turn_forward']),
    config: z
      .strictObject({
        horizontal: cameraAxis,
        vertical: cameraAxis,
        pan: cameraAxis,
        tilt: cameraAxis,
        roll: cameraAxis,
        zoom: cameraAxis,
      })
      .optional()
      .meta({ description: 'For `simple` only: exactly one axis, -10 to 10.' }),
  })
  .superRefine((camera, ctx) => {
    const axes = Object.values(camera.config ?? {}).filter((value) => value !== undefined && value !== 0);
    if (camera.type === 'simple' && axes.length !== 1) {
      ctx.addIssue({ code: 'custom', path: ['config'], message: '`simple` takes exactly one non-zero axis' });
    }
    if (camera.type !== 'simple' && camera.config !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['config'], message: `\`${camera.type}\` takes no config` });
    }
  })
  .meta({
    id: 'CameraControl',
    description: 'Kling camera movement (legacy Kling-API models that take it).',
    // The check above that only `simple` takes a config, in the document (its one axis is said on `config`).
    if: { properties: { type: { not: { const: 'simple' } } } },
    then: { not: { required: ['config'] } },
  });
export type CameraControl = z.infer<typeof CameraControl>;

export const RoutingOverride = z
  .strictObject({
    strategy: RoutingStrategy.optional(),
    providers: z
      .array(providerId)
      .min(1)
      .max(16)
      .refine((ids) => new Set(ids).size === ids.length, { message: 'lists a provider more than once' })
      .optional()
      .meta({
      uniqueItems: true,
      description: 'Only these providers, tried in this order (before the strategy orders the rest).',
    }),
    exclude: z.array(providerId).max(16).optional(),
    allow_fallbacks: z.boolean().optional().meta({
      description: '`false` pins the task to the first eligible provider: no failover.',
    }),
    max_credits: z.number().nonnegative().optional().meta({
      description: 'Providers whose estimate for this request is higher (or unknown) are not eligible.',
    }),
  })
  .meta({
    id: 'RoutingOverride',
    description:
      'Per-request routing. `strategy` replaces the configured one; `cheapest` compares estimated amounts without converting currencies, so when the eligible providers price in more than one currency the request is answered 422 on `routing.strategy`.',
  });
export type RoutingOverride = z.infer<typeof RoutingOverride>;

/** Names JavaScript gives a meaning to: as keys of a plain object they change or shadow its prototype. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

const metadataKey = z
  .string()
  .min(1)
  .max(64)
  .refine((key) => !RESERVED_KEYS.has(key), { message: 'is a reserved name (__proto__, constructor, prototype)' });

const METADATA_MAX_KEYS = 16;

/**
 * Counted before its keys and values are read: an object of thousands of keys (a 256 kB body
 * holds about 25 000) is refused at once with one error, not read key by key into an error each.
 */
const metadataSchema = z.preprocess(
  (value, ctx) => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > METADATA_MAX_KEYS) {
      ctx.issues.push({ code: 'custom', message: `at most ${METADATA_MAX_KEYS} keys`, input: value });
    }
    return value;
  },
  z.record(metadataKey, z.string().max(512)),
).meta({
  // What the key count and `metadataKey` refuse, said in the document (it cannot read them from the checks).
  maxProperties: METADATA_MAX_KEYS,
  propertyNames: { minLength: 1, maxLength: 64, not: { enum: [...RESERVED_KEYS] } },
  description: `At most ${METADATA_MAX_KEYS} keys of 1-64 characters (not \`__proto__\`, \`constructor\` or \`prototype\`), each value at most 512 characters.`,
});

/** Fields of a create request that describe the generation (what capability checks read). */
export const CreateVideoRequest = z
  .strictObject({
    model: Model,
    quality: Quality.optional().meta({ description: 'Default `pro`.' }),
    operation: Operation.optional().meta({ description: 'Inferred from the inputs when absent.' }),
    prompt: z.string().min(1).max(2500).optional(),
    negative_prompt: z.string().min(1).max(2500).optional(),
    duration: z.int().min(3).max(15).optional().meta({ description: 'Seconds, default 5 (video operations).' }),
    aspect_ratio: AspectRatio.optional().meta({ description: 'Default `16:9`; `auto` is Omni only.' }),
    cfg_scale: z.number().min(0).max(2).optional(),
    start_image_url: httpUrl.optional(),
    end_image_url: httpUrl.optional(),
    reference_images: z.array(httpUrl).min(1).max(7).optional(),
    reference_video_url: httpUrl.optional(),
    video_url: httpUrl.optional(),
    video_id: z
      .string()
      .min(1)
      .max(VIDEO_ID_MAX_LENGTH)
      // An id holds no NUL, and PostgreSQL cannot bind one (the source video is looked up by it).
      .refine((id) => !id.includes('\u0000'), { error: 'must not contain a NUL character' })
      // Nor any space, control or format character: an upstream that trimmed or folded them
      // would take " <id>" for the video <id>, which the check of who made it would not know.
      .refine((id) => id.includes('\u0000') || !/[\s\p{Cc}\p{Cf}]/u.test(id), { error: 'must not contain whitespace or control characters' })
      .optional()
      .meta({
        // The checks above in the document, but format characters (`\p{Cf}`), which not every validator's patterns can name.
        pattern: '^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$',
        description:
          "The provider's id of the source video (`outputs[].upstream_id` of one of your tasks): video-extend, lip-sync. " +
          'The task goes to the provider account that made that video, and through no other (the video exists only there): ' +
          '`422` when that account is no longer configured or its provider is disabled. ' +
          "One another tenant's task made is `422`.",
      }),
    multi_shot: z.array(MultiShotItem).min(1).max(6).optional().meta({
      description: 'Shots in order. Their durations add up to at most 15 s, and are given on every shot or on none.',
      // The check below of "on every shot or on none", in the document (the sum is not said there).
      if: { contains: { required: ['duration'] } },
      then: { items: { required: ['duration'] } },
    }),
    elements: z.array(Element).min(1).max(4).optional(),
    audio: z.boolean().optional().meta({ description: 'Native audio; default `true` where the provider can.' }),
    voice_ids: z.array(z.string().min(1).max(128)).min(1).max(2).optional(),
    keep_original_sound: z.boolean().optional().meta({ description: 'Video edit: keep (`true`) or drop (`false`) the source video\'s own sound.' }),
    lip_sync: LipSync.optional(),
    camera_control: CameraControl.optional(),
    webhook_url: webhookUrl.optional(),
    metadata: metadataSchema.optional(),
    routing: RoutingOverride.optional(),
    cancel_after: z.int().min(1).max(7 * 24 * 3600).optional().meta({
      description:
        'Seconds: a task still `queued` (not yet sent to any provider) this long after creation is `canceled` ' +
        'at no cost. A task a provider has accepted runs to the end.',
    }),
  })
  .superRefine((request, ctx) => {
    const shots = request.multi_shot;
    if (shots) {
      const total = shots.reduce((sum, shot) => sum + (shot.duration ?? 0), 0);
      if (total > 15) {
        ctx.addIssue({ code: 'custom', path: ['multi_shot'], message: `shots add up to ${total} s; at most 15 s` });
      }
      const timed = shots.filter((shot) => shot.duration !== undefined).length;
      if (timed !== 0 && timed !== shots.length) {
        ctx.addIssue({
          code: 'custom',
          path: ['multi_shot'],
          message: 'give a duration on every shot or on none',
        });
      }
    }
    if (request.end_image_url && !request.start_image_url) {
      ctx.addIssue({ code: 'custom', path: ['end_image_url'], message: 'needs start_image_url' });
    }
  })
  // The check above of `end_image_url`, in the document; the shots' durations are said on `multi_shot`.
  .meta({ id: 'CreateVideoRequest', dependentRequired: { end_image_url: ['start_image_url'] } });
export type CreateVideoRequest = z.infer<typeof CreateVideoRequest>;

/**
 * The canonical request as accepted: defaults applied and the operation settled. This is
 * what adapters map from and what a Task echoes as `request`.
 */
export type VideoRequest = Omit<CreateVideoRequest, 'quality' | 'operation'> & {
  quality: Quality;
  operation: Operation;
};

/** Canonical request fields that a provider's capabilities have to cover. */
export const CAPABILITY_FIELDS = [
  'prompt',
  'negative_prompt',
  'duration',
  'aspect_ratio',
  'cfg_scale',
  'start_image_url',
  'end_image_url',
  'reference_images',
  'reference_video_url',
  'video_url',
  'video_id',
  'multi_shot',
  'elements',
  'audio',
  'voice_ids',
  'keep_original_sound',
  'lip_sync',
  'camera_control',
] as const satisfies readonly (keyof CreateVideoRequest)[];
export type CapabilityField = (typeof CAPABILITY_FIELDS)[number];

/** A result as a provider reports it: what adapters return. */
export interface UpstreamOutput {
  type: 'video' | 'image';
  /** Where the upstream serves the file. */
  url: string;
  /** Seconds, for videos when the provider reports it. */
  duration: number | null;
  /**
   * The provider's own id of this result, when it gives one (legacy Kling-API
   * `task_result.videos[].id`: what video-extend and lip-sync take as `video_id`).
   */
  id?: string;
}

export const OUTPUT_STORAGE_STATES = ['pending', 'stored', 'not_stored', 'expired', 'passthrough'] as const;
export const OutputStorageState = z.enum(OUTPUT_STORAGE_STATES).meta({
  id: 'OutputStorageState',
  description:
    '`pending`: being copied into the gateway\'s storage (the task is still `processing`). `stored`: a copy is kept; ' +
    '`url` serves it. `not_stored`: the copy failed for good (`storage_error` says why); `url` is the upstream\'s. ' +
    '`expired`: the copy was deleted after the tenant\'s retention. `passthrough`: storage is off (`storage.mode: passthrough`).',
});
export type OutputStorageState = z.infer<typeof OutputStorageState>;

export const TaskOutput = z
  .object({
    type: z.enum(['video', 'image']),
    url: z.string().meta({
      description:
        "Where to fetch the result: the gateway's content URL (`/v1/videos/{id}/content?index=N`, signed so it works " +
        "without the gateway key until `url_expires_at`) once stored; the upstream's URL otherwise.",
    }),
    url_expires_at: z.string().nullable().meta({
      description:
        "When `url` stops working: its signature's expiry (fetch the task again for a fresh one), or the end of the stored copy's retention (`expires_at`) when that comes first.",
    }),
    duration: z.number().nullable().meta({ description: 'Seconds, for videos when the provider reports it.' }),
    upstream_url: z.string().meta({ description: "The provider's own URL of the result." }),
    upstream_id: z.string().nullable().meta({
      description:
        "The provider's own id of the result, where it gives one: on the legacy Kling-API the video id that " +
        '`video-extend` and `lip-sync` take as `video_id`. Null otherwise.',
    }),
    upstream_url_expires_at: z.string().nullable().meta({
      description: 'When the provider deletes its copy, where it documents a lifetime (Kling: 30 days); null when undocumented.',
    }),
    upstream_url_gone: z.boolean().meta({
      description:
        'The provider answered 404/410 for `upstream_url` to every copy try (a CDN answers so for a while after a result is ' +
        'done, so a 404 or 403 is retried up to `storage.max_attempts`), or once past the lifetime it documents: its copy is ' +
        'gone, and the content route answers 410. A 403 that lasts, or a 404 after another failure, leaves it false.',
    }),
    storage: OutputStorageState,
    storage_error: z.string().nullable().meta({ description: 'Why the output is not stored, or why the copy was deleted.' }),
    sha256: z.string().nullable().meta({ description: 'Hex SHA-256 of the stored bytes.' }),
    bytes: z.number().int().nullable().meta({ description: 'Size of the stored file.' }),
    content_type: z.string().nullable(),
    stored_at: z.string().nullable(),
    expires_at: z.string().nullable().meta({ description: "When the stored copy is deleted (the tenant's retention); null: kept." }),
  })
  .meta({ id: 'TaskOutput' });
export type TaskOutput = z.infer<typeof TaskOutput>;

export const TaskError = z
  .object({
    code: ErrorCode,
    message: z.string(),
    provider_code: z.string().nullable(),
  })
  .meta({ id: 'TaskError' });
export type TaskError = z.infer<typeof TaskError>;

export const ChargeAtRisk = z
  .object({
    provider: z.string(),
    account: z.string().nullable(),
    credits: z.number().nullable(),
    estimated: z.literal(true),
    currency_amount: z.number().nullable(),
    currency: z.string().nullable(),
  })
  .meta({
    id: 'ChargeAtRisk',
    description:
      "What a provider may have charged for this task besides `cost`: its create went there and was never answered (attempt `ambiguous` or `interrupted`), and the task then went on to another provider (`failover_on_timeout`). The provider's estimate from the task's plan; null figures when it has no price for the request.",
  });
export type ChargeAtRisk = z.infer<typeof ChargeAtRisk>;

export const TaskCost = z
  .object({
    credits: z.number().nullable(),
    estimated: z.boolean().meta({ description: '`false` once the provider reported what it charged.' }),
    currency_amount: z.number().nullable(),
    currency: z.string().nullable(),
    at_risk: z.array(ChargeAtRisk).optional().meta({
      description:
        'Present when other providers may also have billed the task (a create left unanswered, then failed over): their estimated charges, not included in `credits` or `currency_amount`.',
    }),
  })
  .meta({ id: 'TaskCost' });
export type TaskCost = z.infer<typeof TaskCost>;

export const ATTEMPT_OUTCOMES = ['sending', 'accepted', 'failed', 'ambiguous', 'skipped', 'interrupted'] as const;
export const AttemptOutcome = z.enum(ATTEMPT_OUTCOMES).meta({
  id: 'AttemptOutcome',
  description:
    '`accepted`: the provider took the task. `failed`: it certainly did not. `ambiguous`: no answer after ' +
    'the request was sent (the task may exist upstream). `skipped`: not called (open circuit, rate limit). ' +
    '`interrupted`: the gateway stopped while the request was in flight.',
});
export type AttemptOutcome = z.infer<typeof AttemptOutcome>;

/** How the gateway found a task a provider accepted while the create's answer was lost. */
export const RECOVERED_BY = ['external_id', 'webhook', 'answer'] as const;
export const RecoveredBy = z.enum(RECOVERED_BY).meta({
  id: 'RecoveredBy',
  description:
    'How an accepted task whose create answer was lost (the gateway stopped, or the connection broke after the ' +
    'request was sent) was found and adopted: `external_id`: the provider was asked for the id the gateway sent ' +
    'with the create; `webhook`: the provider\'s webhook or callback for this attempt named it; `answer`: the create was ' +
    'answered with a server error naming a task, and the provider\'s status showed that task.',
});
export type RecoveredBy = z.infer<typeof RecoveredBy>;

export const TaskAttempt = z
  .object({
    provider: z.string(),
    account: z.string().nullable().meta({
      description:
        "The provider account the request went through (`providers.<id>.accounts[].id`, `default` for a provider's single key); " +
        'null when the provider was passed over. Every later status poll and webhook of the task uses this account.',
    }),
    outcome: AttemptOutcome,
    error_code: z.string().nullable().meta({ description: 'Canonical error code, or `circuit_open` for a skip.' }),
    provider_code: z.string().nullable().meta({ description: "The upstream's own error code, when it gave one." }),
    http_status: z.number().nullable(),
    latency_ms: z.number().nullable(),
    at: z.string(),
    message: z.string().nullable(),
    recovered_by: RecoveredBy.nullable().meta({
      description: 'Set on an `accepted` attempt whose create answer was lost and which the gateway found afterwards.',
    }),
  })
  .meta({ id: 'TaskAttempt' });
export type TaskAttempt = z.infer<typeof TaskAttempt>;

export const Task = z
  .object({
    id: z.string(),
    object: z.literal('video'),
    status: TaskStatus,
    model: Model,
    quality: Quality,
    operation: Operation,
    created_at: z.string(),
    updated_at: z.string(),
    completed_at: z.string().nullable(),
    provider: z.string().nullable(),
    provider_task_id: z.string().nullable(),
    provider_status: z.string().nullable().meta({ description: 'The raw upstream status word.' }),
    outputs: z.array(TaskOutput),
    error: TaskError.nullable(),
    cost: TaskCost,
    attempts: z.array(TaskAttempt),
    warnings: z.array(z.string()).meta({ description: 'Things the gateway could not honour exactly.' }),
    metadata: z.record(z.string(), z.string()),
    request: z.record(z.string(), z.unknown()).meta({ description: 'The canonical request as accepted.' }),
  })
  .meta({ id: 'Task' });
export type Task = z.infer<typeof Task>;

export const TaskList = z
  .object({ data: z.array(Task), next_cursor: z.string().nullable() })
  .meta({ id: 'TaskList' });

export const WEBHOOK_DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;

/** One event on its way to a task's `webhook_url`, as its sender can see it (`GET /v1/videos/{id}/webhooks`). */
export const WebhookDelivery = z
  .object({
    id: z.string().meta({ description: 'The `webhook-id` header of every try of this event: the receiver\'s key to drop repeats.' }),
    type: z.string().meta({ description: 'The event: `video.processing`, `video.succeeded`, `video.failed` or `video.canceled`.' }),
    url: z.string().meta({ description: 'Where it is sent (the task\'s `webhook_url`).' }),
    status: z.enum(WEBHOOK_DELIVERY_STATUSES).meta({
      description:
        '`pending` (not yet answered with a 2xx; retried at `next_attempt_at`), `delivered`, or `failed`: tries used up, or the receiver answered `410 Gone` (Standard Webhooks: it wants no more), which ends that event at once, and the other events of the task for that URL (waiting for a retry, or still to come) unsent (`last_error` says which).',
    }),
    attempts: z.number().int().meta({ description: 'Tries made so far.' }),
    last_status: z.number().int().nullable().meta({ description: 'The HTTP status of the last try; null when no answer came.' }),
    last_error: z.string().nullable().meta({ description: 'Why the last try did not count as delivered, or why the event was not sent; null once delivered.' }),
    created_at: z.string(),
    next_attempt_at: z.string().nullable().meta({ description: 'When the next try is due; null once delivered or failed.' }),
    delivered_at: z.string().nullable(),
  })
  .meta({ id: 'WebhookDelivery' });
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

export const WebhookDeliveryList = z
  .object({ data: z.array(WebhookDelivery).meta({ description: 'Oldest first.' }) })
  .meta({ id: 'WebhookDeliveryList' });

/**
 * Most entries a problem's `errors[]` holds (the first ones; `detail` counts the rest). A body of
 * thousands of unknown fields would otherwise answer one entry each: a problem of megabytes that
 * clients echo into their logs.
 */
export const MAX_PROBLEM_ERRORS = 50;

export const ProblemDetails = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number(),
    detail: z.string().optional(),
    instance: z.string().optional().meta({
      description:
        'This occurrence: `urn:request:` and an id the gateway gives this request alone, even when a client repeats its `x-request-id`. It is the answer\'s `x-request-id` when the client sent none; its log line carries it as `request_id`, or as `occurrence_id` beside the client\'s `request_id`. On every problem the gateway answers (one from a proxy in front of it may have none).',
      example: 'urn:request:3f1c2a9e-8d4b-4f6a-9c1e-2b7d5e0a4c18',
    }),
    errors: z
      .array(
        z.object({
          path: z.string().meta({ description: 'The field, as a dotted path of the body (`(body)`, `(url)` when no one field is at fault).' }),
          message: z.string(),
          providers: z
            .array(z.object({ provider: z.string(), reasons: z.array(z.string()) }))
            .optional()
            .meta({ description: "For 422 capability misses: each provider that cannot serve this field as asked, in its own words (the same words as `providers[].reasons` and `detail`)." }),
        }),
      )
      .max(MAX_PROBLEM_ERRORS)
      .optional()
      .meta({
        description:
          `Each field at fault, the first ${MAX_PROBLEM_ERRORS} of them in order (past those, \`detail\` ends saying how many more there were: \`… and 9,950 more.\`). ` +
          'For 400 every invalid field; for a 422 capability miss one entry per field some provider cannot serve as asked, `message` quoting each provider as `detail` does (`freepik: … | kling3api: …`) and `providers[]` the same reasons by provider. Reasons that are about no one field (a disabled provider, a budget) are only in `providers[]`. A `path` longer than 200 characters (a field name is the caller\'s own text) or a `message` longer than 500 is cut there and ends in `…`.',
      }),
    providers: z
      .array(z.object({ provider: z.string(), reasons: z.array(z.string()) }))
      .optional()
      .meta({ description: 'For 422 capability misses: why each provider cannot serve the request.' }),
    budget: z
      .object({
        tenant: z.string(),
        amount: z.number(),
        currency: z.string(),
        period: z.enum(['day', 'month']),
        period_start: z.string(),
        period_end: z.string(),
      })
      .optional()
      .meta({ description: 'For 402: the budget the request would pass (periods are UTC calendar days or months).' }),
    spent: z.number().optional().meta({ description: 'For 402: settled spend in the budget period, in the budget currency.' }),
    reserved: z.number().optional().meta({ description: 'For 402: money held for unfinished tasks in the period.' }),
    requested: z
      .number()
      .optional()
      .meta({ description: 'For 402: what this request would have reserved (the highest estimate among the providers it may go to).' }),
  })
  .meta({ id: 'ProblemDetails', description: 'RFC 9457 problem details.' });
export type ProblemDetails = z.infer<typeof ProblemDetails>;
