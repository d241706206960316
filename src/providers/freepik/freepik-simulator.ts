/**
 * Freepik's HTTP contract on loopback (`openapi/freepik.yaml`, seeds 000, 001, 003): the six
 * create endpoints, the three status families and their list endpoints, the documented `401`
 * and `400` bodies, tasks that go CREATED → IN_PROGRESS → COMPLETED/FAILED on the injected
 * clock with a playable MP4 in `generated`, and signed webhooks on every status change.
 *
 * What it accepts: strict zod mirrors of the request schemas in `openapi/freepik.yaml` (seed
 * 001 `kling-v3-request`, `kling-v3-omni-request`; seeds 001/003
 * `kling-v3-omni-video-reference-request`) plus the rules their descriptions state. Strict on
 * purpose, unlike the adapter's reply readers: the simulator is there to catch the adapter
 * sending anything Freepik would refuse.
 */
import type { NextFunction, Request, Response } from 'express';
import express from 'express';
import { z } from 'zod';
import type { SimulatedFault, SimulatorOptions } from '../../core/upstream/provider.js';
import { isHttpUri, KitSimulator, randomId, randomUuid, type KitTask } from '../../sandbox/simulator-kit.js';
import { FREEPIK_PAGED_LIST_FAMILIES, FREEPIK_STATUS_FAMILIES, type FreepikStatusFamily } from './freepik-capabilities.js';
import { signFreepikWebhook } from './freepik-status.js';

// The request schemas, as the simulator checks them.
const duration = z.enum(['3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15']);
const prompt = z.string().max(2500);
// Image fields are plain `type: string` in the seed; only `webhook_url` and `video_url` are `format: uri`.
const imageUrl = z.string().min(1);
/** `format: uri` (RFC 3986): as a validator of the seed's schema reads it, not as a browser mends a URL. */
const uri = z.string().refine(isHttpUri, { error: 'must be a URI (RFC 3986)' });
const element = z.strictObject({
  reference_image_urls: z.array(imageUrl).optional(),
  frontal_image_url: imageUrl.optional(),
});
// "Maximum 2 voices per task" (description of `voice_ids` in both video schemas).
const voiceIds = z.array(z.string().min(1)).max(2);

const requirePromptOrShots = (body: { prompt?: string | undefined; multi_prompt?: unknown[] | undefined }, ctx: z.RefinementCtx) => {
  if (body.prompt === undefined && body.multi_prompt === undefined) {
    ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'prompt is required when multi_prompt is not given' });
  }
};

/** `kling-v3-omni-aspect-ratio`: `auto` matches "the input image aspect ratio (image-to-video only)". */
const requireImageForAutoAspect = (aspectRatio: string | undefined, hasImage: boolean, ctx: z.RefinementCtx) => {
  if (aspectRatio === 'auto' && !hasImage) {
    ctx.addIssue({ code: 'custom', path: ['aspect_ratio'], message: 'auto needs an input image' });
  }
};

/** `POST /v1/ai/video/kling-v3-{pro|std}`. */
const KlingV3RequestSchema = z
  .strictObject({
    webhook_url: uri.optional(),
    prompt: prompt.optional(),
    multi_prompt: z
      .array(z.strictObject({ prompt: prompt.optional(), duration: duration.optional() }))
      .max(6)
      .optional(),
    start_image_url: imageUrl.optional(),
    end_image_url: imageUrl.optional(),
    elements: z.array(element).optional(),
    generate_audio: z.boolean().optional(),
    voice_ids: voiceIds.optional(),
    shot_type: z.enum(['customize', 'intelligent']).optional(),
    aspect_ratio: z.enum(['16:9', '9:16', '1:1']).optional(),
    duration: duration.optional(),
    negative_prompt: prompt.optional(),
    cfg_scale: z.number().min(0).max(2).optional(),
  })
  .superRefine((body, ctx) => {
    requirePromptOrShots(body, ctx);
    // `start_image_url`: "Required for image-to-video mode", which an end frame asks for. (Elements
    // also put the request in that mode, but their own description makes the start frame optional.)
    if (body.end_image_url !== undefined && body.start_image_url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['start_image_url'], message: 'an end frame needs start_image_url' });
    }
    // "Maximum 6 shots, total duration cannot exceed 15 seconds."
    const total = (body.multi_prompt ?? []).reduce((sum, shot) => sum + Number(shot.duration ?? 0), 0);
    if (total > 15) {
      ctx.addIssue({ code: 'custom', path: ['multi_prompt'], message: `shots add up to ${total} s; at most 15 s` });
    }
  });

/** `POST /v1/ai/video/kling-v3-omni-{pro|std}`. */
const KlingV3OmniRequestSchema = z
  .strictObject({
    webhook_url: uri.optional(),
    prompt: prompt.optional(),
    multi_prompt: z.array(prompt).max(6).optional(),
    shot_type: z.enum(['customize']).optional(),
    image_url: imageUrl.optional(),
    start_image_url: imageUrl.optional(),
    end_image_url: imageUrl.optional(),
    image_urls: z.array(imageUrl).optional(),
    elements: z.array(element).optional(),
    generate_audio: z.boolean().optional(),
    voice_ids: voiceIds.optional(),
    aspect_ratio: z.enum(['auto', '16:9', '9:16', '1:1']).optional(),
    duration: duration.optional(),
  })
  .superRefine((body, ctx) => {
    requirePromptOrShots(body, ctx);
    // `image_url`: "Required for image-to-video mode", which a start or end frame asks for.
    if (body.image_url === undefined && (body.start_image_url !== undefined || body.end_image_url !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['image_url'], message: 'image-to-video needs image_url' });
    }
    const hasImage = body.image_url !== undefined;
    // "Image-to-video: Either prompt or multi_prompt must be provided, but not both."
    if (hasImage && body.prompt !== undefined && body.multi_prompt !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['multi_prompt'], message: 'give prompt or multi_prompt, not both' });
    }
    // `image_urls`: "Maximum 4 total (elements + reference images)."
    const references = (body.image_urls?.length ?? 0) + (body.elements?.length ?? 0);
    if (references > 4) {
      ctx.addIssue({ code: 'custom', path: ['image_urls'], message: `${references} images and elements; at most 4 together` });
    }
    requireImageForAutoAspect(body.aspect_ratio, hasImage, ctx);
  });

/**
 * `POST /v1/ai/reference-to-video/kling-v3-omni-{pro|std}`. Its aspect ratio is the same
 * `kling-v3-omni-aspect-ratio`, so `auto` needs the start frame (`image_url`) here too.
 */
const KlingV3OmniVideoReferenceRequestSchema = z
  .strictObject({
    webhook_url: uri.optional(),
    prompt: prompt.optional(),
    image_url: imageUrl.optional(),
    video_url: uri,
    duration: duration.optional(),
    aspect_ratio: z.enum(['auto', '16:9', '9:16', '1:1']).optional(),
    cfg_scale: z.number().min(0).max(2).optional(),
    negative_prompt: prompt.optional(),
  })
  .superRefine((body, ctx) => requireImageForAutoAspect(body.aspect_ratio, body.image_url !== undefined, ctx));

/** One entry of the problem form's `invalid_params`. */
interface InvalidParam {
  name: string;
  reason: string;
}

/** The `invalid_params` Freepik would list for a body `schema` refuses; empty when it is accepted. */
function invalidParamsOf(schema: z.ZodType, body: unknown): InvalidParam[] {
  const result = schema.safeParse(body);
  if (result.success) return [];
  return result.error.issues.flatMap((issue): InvalidParam[] => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => {
        const name = [...issue.path, key].join('.');
        return { name, reason: `Parameter '${name}' is not allowed` };
      });
    }
    const name = issue.path.length > 0 ? issue.path.join('.') : 'body';
    return [{ name, reason: `Parameter '${name}' is not valid: ${issue.message}` }];
  });
}

/** Freepik's status words (`task.status` enum). */
type FreepikStatusWord = 'CREATED' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';

/** Which body schema each family's create endpoints take. */
const SCHEMA_OF_FAMILY: Readonly<Record<FreepikStatusFamily, z.ZodType>> = {
  '/v1/ai/video/kling-v3': KlingV3RequestSchema,
  '/v1/ai/video/kling-v3-omni': KlingV3OmniRequestSchema,
  '/v1/ai/reference-to-video/kling-v3-omni': KlingV3OmniVideoReferenceRequestSchema,
};

// Seed bodies where the seed has them (401, 500, 503); plain `{message}` where it does not.
const BODIES = {
  missingKey: { message: 'Missing API key' },
  invalidKey: { message: 'Invalid API key' },
  badRequest: { message: "Parameter ':attribute' is not valid" },
  rateLimited: { message: 'Too many requests. Please slow down.' },
  noCredits: { message: 'Insufficient credits to run this generation.' },
  serverError: { message: 'Internal Server Error' },
  unavailable: { message: 'Service Unavailable. Please try again later.' },
  notFound: { message: 'Not found' },
} as const;

/** Why a `content_policy` task failed; Freepik documents no field for it, so this one is invented. */
const CONTENT_POLICY_REASON = 'The generation was blocked by the content policy (NSFW filter)';

function errorForFault(fault: SimulatedFault): { status: number; body: unknown; headers?: Record<string, string> } {
  const kind = fault.kind ?? kindOfStatus(fault.status);
  switch (kind) {
    case 'rate_limited':
      return { status: 429, body: BODIES.rateLimited, headers: { 'retry-after': '1' } };
    case 'insufficient_credits':
      return { status: 402, body: BODIES.noCredits };
    case 'unauthorized':
      return { status: 401, body: BODIES.invalidKey };
    case 'invalid':
      return { status: 400, body: BODIES.badRequest };
    case 'unavailable':
      return { status: 503, body: BODIES.unavailable };
    default:
      return { status: fault.status ?? 500, body: BODIES.serverError };
  }
}

function kindOfStatus(status: number | undefined): SimulatedFault['kind'] {
  switch (status) {
    case 400:
      return 'invalid';
    case 401:
      return 'unauthorized';
    case 402:
      return 'insufficient_credits';
    case 429:
      return 'rate_limited';
    case 503:
      return 'unavailable';
    default:
      return 'server_error';
  }
}

/**
 * The problem form of a `400` as seed 001's schema has it (`get_all_style_transfer_tasks_400_response_1`):
 * `message` and `invalid_params` under `problem`. The seed's example puts them at the top level
 * instead; the schema wins (the adapter reads both).
 */
function sendInvalidParams(res: Response, invalidParams: InvalidParam[]): void {
  res
    .status(400)
    .type('application/problem+json')
    .send(JSON.stringify({ problem: { message: "Your request parameters didn't validate.", invalid_params: invalidParams } }));
}

/**
 * A Freepik simulator. Tasks of `setOutcome('fail')` end FAILED with no reason (as the seed's
 * task schema has no field for one); `content_policy` ones end FAILED with an `error` string.
 * Webhooks are sent only when `webhookSecret` is set: Freepik signs every webhook.
 */
export class FreepikSimulator extends KitSimulator {
  /**
   * Not what the seeds document, for tests of what the gateway concludes from a list: an unpaged
   * list answers only its newest `unpagedListLimit` tasks (as a paged list does with its default
   * page size). Undefined: every task, as documented.
   */
  unpagedListLimit: number | undefined;

  constructor(private readonly options: SimulatorOptions) {
    super('freepik', options);
    this.routes();
  }

  private routes(): void {
    const app = this.kit.app;
    app.use('/v1', (req, res, next) => this.authenticate(req, res, next));
    app.use(express.json({ limit: '1mb' }));
    for (const family of FREEPIK_STATUS_FAMILIES) {
      for (const quality of ['pro', 'std'] as const) {
        app.post(`${family}-${quality}`, (req, res) => this.create(family, req, res));
      }
      app.get(family, (req, res) => this.list(family, req, res));
      app.get(`${family}/:taskId`, (req, res) => this.status(family, req, res));
    }
    app.use((_req: Request, res: Response) => {
      res.status(404).json(BODIES.notFound);
    });
    app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
      if (res.headersSent) return next(error);
      const parseFailed = (error as { type?: unknown }).type === 'entity.parse.failed';
      if (parseFailed) res.status(400).json({ message: 'Request body is not valid JSON' });
      else res.status(500).json(BODIES.serverError);
    });
  }

  private authenticate(req: Request, res: Response, next: NextFunction): void {
    const key = req.get('x-freepik-api-key');
    if (!key) {
      res.status(401).json(BODIES.missingKey);
    } else if (key !== this.options.apiKey) {
      res.status(401).json(BODIES.invalidKey);
    } else {
      next();
    }
  }

  private async create(family: FreepikStatusFamily, req: Request, res: Response): Promise<void> {
    if (await this.kit.applyFault('submit', req, res, errorForFault)) return;
    const body: unknown = req.body;
    const invalidParams = invalidParamsOf(SCHEMA_OF_FAMILY[family], body);
    if (invalidParams.length > 0) {
      sendInvalidParams(res, invalidParams);
      return;
    }
    const webhookUrl = (body as { webhook_url?: string }).webhook_url;
    const task = this.kit.createTask(randomUuid(), req.path, body, { family, webhookUrl });
    task.status = 'CREATED';
    this.kit.scheduleTransitions(task, () => this.notify(task));
    res.status(200).json({ data: this.detailOf(task) });
  }

  /**
   * A task created before a restart: its status by the clock, and the webhooks of the changes
   * still to come (those it went through before were sent then, or are left to the safety poll).
   */
  protected override resume(task: KitTask): boolean {
    const { family, webhookUrl } = task.data;
    if (!(FREEPIK_STATUS_FAMILIES as readonly unknown[]).includes(family)) return false;
    if (webhookUrl !== undefined && typeof webhookUrl !== 'string') return false;
    this.statusOf(task);
    this.kit.resumeTransitions(task, () => this.notify(task));
    return true;
  }

  private async status(family: FreepikStatusFamily, req: Request, res: Response): Promise<void> {
    if (await this.kit.applyFault('status', req, res, errorForFault)) return;
    const task = this.kit.findTask(String(req.params.taskId));
    // A task is only known to the family it was created in, as upstream.
    if (!task || task.data.family !== family) {
      res.status(404).json(BODIES.notFound);
      return;
    }
    res.json({ data: this.detailOf(task) });
  }

  /**
   * `GET <family>`: newest first. Only the reference-to-video list documents paging, `page`
   * (from 1) and `page_size` (1-100, default 20); the other two take no parameters and answer
   * every task, and refuse a parameter they do not have (seeds 000 and 001, "List tasks").
   */
  private list(family: FreepikStatusFamily, req: Request, res: Response): void {
    const paged = FREEPIK_PAGED_LIST_FAMILIES.has(family);
    const invalid: InvalidParam[] = paged
      ? []
      : Object.keys(req.query).map((name) => ({ name, reason: `Parameter '${name}' is not valid` }));
    const page = paged ? this.positiveInteger(req.query.page, 1, 'page', invalid) : 1;
    const pageSize = paged ? this.positiveInteger(req.query.page_size, 20, 'page_size', invalid) : Number.POSITIVE_INFINITY;
    if (pageSize > 100 && paged) invalid.push({ name: 'page_size', reason: "Parameter 'page_size' must be at most 100" });
    if (invalid.length > 0) {
      sendInvalidParams(res, invalid);
      return;
    }
    const tasks = this.kit.tasks.filter((task) => task.data.family === family).reverse();
    const listed = paged ? tasks.slice((page - 1) * pageSize, page * pageSize) : tasks.slice(0, this.unpagedListLimit ?? tasks.length);
    const data = listed.map((task) => ({
      task_id: task.id,
      status: this.statusOf(task),
    }));
    res.json({ data });
  }

  private positiveInteger(raw: unknown, fallback: number, name: string, invalid: InvalidParam[]): number {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 1) {
      invalid.push({ name, reason: `Parameter '${name}' must be greater than 0` });
      return fallback;
    }
    return value;
  }

  private statusOf(task: KitTask): FreepikStatusWord {
    const phase = this.kit.phaseOf(task);
    const status: FreepikStatusWord =
      phase === 'queued' ? 'CREATED' : phase === 'processing' ? 'IN_PROGRESS' : task.outcome === 'succeed' ? 'COMPLETED' : 'FAILED';
    task.status = status;
    return status;
  }

  /** `task-detail` as of now. */
  private detailOf(task: KitTask): Record<string, unknown> {
    const status = this.statusOf(task);
    return {
      task_id: task.id,
      status,
      generated: status === 'COMPLETED' ? [this.kit.resultUrl(task.id, 'mp4')] : [],
      ...(status === 'FAILED' && task.outcome === 'content_policy' ? { error: CONTENT_POLICY_REASON } : {}),
    };
  }

  /** POSTs the task as it is now to its `webhook_url`, signed as Freepik does (seed 001, "Webhooks"). */
  private notify(task: KitTask): void {
    const url = task.data.webhookUrl;
    const secret = this.options.webhookSecret;
    if (typeof url !== 'string' || !secret) return;
    const body = JSON.stringify(this.detailOf(task));
    const webhookId = randomId('msg_');
    const timestamp = String(Math.floor(this.kit.clock.now() / 1000));
    this.kit.deliver(url, body, {
      'webhook-id': webhookId,
      'webhook-timestamp': timestamp,
      'webhook-signature': signFreepikWebhook(secret, webhookId, timestamp, body),
    }, task.id);
  }
}
