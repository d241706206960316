/**
 * A kling3api.com look-alike on loopback: `POST /api/generate` and `GET /api/status` with the
 * seed's envelope, Bearer auth, documented validation errors, credit table and task ids, on
 * the injected clock. Used by the sandbox, the tests and the benchmarks.
 * Source: shared/seeds/004_1ace3cef13878ba3.txt (whole document).
 *
 * Choices the seed leaves open (written down in the README):
 * - Error bodies are `{code: "<STRING_CODE>", message}` with the seed's HTTP status.
 * - Validation the seed has no code for (unknown field, cfg_scale out of range or on O3, more
 *   than 7 images, a field on a type that does not take it) answers 400 `INVALID_PARAMETER`.
 * - A video-edit body with `duration` answers 400 `INVALID_DURATION` (its duration is "auto").
 * - An unknown `task_id` answers 404 `{code: "TASK_NOT_FOUND", message}`; a missing one 400
 *   `INVALID_PARAMETER`.
 * - `consumed_credits` is charged at creation and still reported after FAILED / EXPIRED (the
 *   seed does not mention refunds).
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { SimulatedFault, SimulatorOptions } from '../../core/upstream/provider.js';
import { characterCount } from '../../core/model/capabilities.js';
import { isHttpUri, KitSimulator, randomId, type KitTask, type SimulatedPhase } from '../../sandbox/simulator-kit.js';
import {
  KLING3API_ALL_TASK_TYPES,
  KLING3API_MAX_PROMPT_LENGTH,
  KLING3API_MAX_REFERENCE_IMAGES,
  isKling3apiO3Type,
} from './kling3api-capabilities.js';
import type { Kling3apiTaskType } from './kling3api-schemas.js';

/** The `error_message` of a task that ends with the `fail` outcome. */
export const KLING3API_SIM_FAILURE_MESSAGE = 'Video generation failed: the render worker stopped unexpectedly';
/** The `error_message` of a task that ends with the `content_policy` outcome. */
export const KLING3API_SIM_CONTENT_POLICY_MESSAGE =
  'Generation blocked by the safety system: the content violates the content policy';
/** The `error_message` of a task that ends EXPIRED. */
export const KLING3API_SIM_EXPIRED_MESSAGE = 'Task expired before it completed';

/** Seed 004 "Available Models", Credits column, by type. */
const CREDIT_TABLE: Readonly<
  Record<Kling3apiTaskType, { withSound: number; withoutSound: number } | { perSecond: number } | { fixed: number }>
> = {
  'pro-text-to-video': { withSound: 80, withoutSound: 54 },
  'pro-image-to-video': { withSound: 80, withoutSound: 54 },
  'std-text-to-video': { withSound: 60, withoutSound: 40 },
  'std-image-to-video': { withSound: 60, withoutSound: 40 },
  'o3-pro-text-to-video': { perSecond: 48 },
  'o3-pro-image-to-video': { perSecond: 48 },
  'o3-pro-reference-to-video': { perSecond: 72 },
  'o3-pro-video-edit': { fixed: 435 },
  'o3-std-text-to-video': { perSecond: 36 },
  'o3-std-image-to-video': { perSecond: 36 },
  'o3-std-reference-to-video': { perSecond: 20 },
  'o3-std-video-edit': { fixed: 360 },
};

/** Credits kling3api charges for a task (seed defaults: 5 s, sound on). */
export function kling3apiSimulatedCredits(type: Kling3apiTaskType, duration = 5, sound = true): number {
  const price = CREDIT_TABLE[type];
  if ('fixed' in price) return price.fixed;
  if ('perSecond' in price) return price.perSecond * duration;
  return (sound ? price.withSound : price.withoutSound) * duration;
}

/** A rejected body: the seed's (or the simulator's) code and a message. */
export interface Kling3apiSimulatedRejection {
  status: number;
  code: string;
  message: string;
}

const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  'type',
  'prompt',
  'duration',
  'aspect_ratio',
  'image',
  'end_image',
  'video',
  'images',
  'sound',
  'negative_prompt',
  'cfg_scale',
  'keep_original_sound',
]);
const ASPECT_RATIOS: ReadonlySet<unknown> = new Set(['16:9', '9:16', '1:1']);

function isTaskType(value: unknown): value is Kling3apiTaskType {
  return typeof value === 'string' && (KLING3API_ALL_TASK_TYPES as readonly string[]).includes(value);
}

/** `format: uri` in `openapi/kling3api.yaml` (the seed's "Image URL", "Video URL"): an RFC 3986 URI as written. */
const isUrl = isHttpUri;

const reject = (status: number, code: string, message: string): Kling3apiSimulatedRejection => ({ status, code, message });
const invalid = (message: string) => reject(400, 'INVALID_PARAMETER', message);

/**
 * Checks a generate body as the simulator's upstream would. Stricter than the seed where the
 * seed is silent (a field on a type that cannot use it is an error, not ignored), so that an
 * adapter sending something the upstream would drop fails in tests.
 */
export function validateKling3apiGenerateBody(body: unknown): Kling3apiSimulatedRejection | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return invalid('body must be a JSON object');
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).find((key) => !KNOWN_FIELDS.has(key));
  if (unknown !== undefined) return invalid(`unknown field "${unknown}"`);

  const type = fields.type;
  if (!isTaskType(type)) return reject(400, 'INVALID_TYPE', `Unsupported task type: ${JSON.stringify(type)}`);
  const isO3 = isKling3apiO3Type(type);
  const isImageToVideo = type.endsWith('image-to-video');
  const isReference = type.endsWith('reference-to-video');
  const isEdit = type.endsWith('video-edit');

  const prompt = fields.prompt;
  if (typeof prompt !== 'string' || prompt.trim() === '') return reject(400, 'INVALID_PROMPT', 'The prompt is invalid or empty');
  if (characterCount(prompt) > KLING3API_MAX_PROMPT_LENGTH) {
    return reject(400, 'INVALID_PROMPT', `The prompt is longer than ${KLING3API_MAX_PROMPT_LENGTH} characters`);
  }
  if (fields.negative_prompt !== undefined && typeof fields.negative_prompt !== 'string') {
    return invalid('negative_prompt must be a string');
  }

  const duration = fields.duration;
  if (duration !== undefined) {
    if (isEdit) return reject(400, 'INVALID_DURATION', 'Video edit takes no duration: it follows the source video');
    if (typeof duration !== 'number' || !Number.isInteger(duration) || duration < 3 || duration > 15) {
      return reject(400, 'INVALID_DURATION', 'Duration out of supported range (3-15 seconds)');
    }
  }
  if (fields.aspect_ratio !== undefined) {
    if (isEdit) return invalid('aspect_ratio is not supported for video edit');
    if (!ASPECT_RATIOS.has(fields.aspect_ratio)) return invalid('aspect_ratio must be 16:9, 9:16 or 1:1');
  }

  if (isImageToVideo && fields.image === undefined) return reject(400, 'MISSING_IMAGE', 'Image is required for image-to-video tasks');
  if (fields.image !== undefined && (!isImageToVideo || !isUrl(fields.image))) {
    return invalid(isImageToVideo ? 'image must be an http(s) URL' : `image is not supported for ${type}`);
  }
  if (fields.end_image !== undefined && (!isImageToVideo || !isUrl(fields.end_image))) {
    return invalid(isImageToVideo ? 'end_image must be an http(s) URL' : `end_image is not supported for ${type}`);
  }

  if (isEdit && fields.video === undefined) return reject(400, 'MISSING_VIDEO', 'Video is required for video-edit tasks');
  if (fields.video !== undefined && (!(isEdit || isReference) || !isUrl(fields.video))) {
    return invalid(isEdit || isReference ? 'video must be an http(s) URL' : `video is not supported for ${type}`);
  }
  const images = fields.images;
  if (images !== undefined) {
    if (!isReference) return invalid(`images is not supported for ${type}`);
    if (!Array.isArray(images) || images.length === 0 || !images.every(isUrl)) {
      return invalid('images must be a non-empty array of http(s) URLs');
    }
    if (images.length > KLING3API_MAX_REFERENCE_IMAGES) {
      return invalid(`images has ${images.length} items; at most ${KLING3API_MAX_REFERENCE_IMAGES}`);
    }
  }
  if (isReference && images === undefined && fields.video === undefined) {
    return reject(400, 'MISSING_IMAGE', 'Reference-to-video needs reference images or a video');
  }

  if (fields.sound !== undefined && (isEdit || typeof fields.sound !== 'boolean')) {
    return invalid(isEdit ? 'sound is not supported for video edit; use keep_original_sound' : 'sound must be a boolean');
  }
  const cfgScale = fields.cfg_scale;
  if (cfgScale !== undefined) {
    if (isO3) return invalid('cfg_scale is supported for Kling 3.0 only');
    if (typeof cfgScale !== 'number' || cfgScale < 0 || cfgScale > 1) return invalid('cfg_scale must be between 0 and 1');
  }
  if (fields.keep_original_sound !== undefined && (!isEdit || typeof fields.keep_original_sound !== 'boolean')) {
    return invalid(isEdit ? 'keep_original_sound must be a boolean' : `keep_original_sound is not supported for ${type}`);
  }
  return undefined;
}

/** Per-task data the simulator keeps on the kit's task. */
interface Kling3apiTaskData extends Record<string, unknown> {
  type: Kling3apiTaskType;
  credits: number;
  expire: boolean;
}

function errorBody(code: string, message: string): { code: string; message: string } {
  return { code, message };
}

/** The answer an injected fault produces, in kling3api's error shape. */
function faultAnswer(fault: SimulatedFault): { status: number; body: unknown; headers?: Record<string, string> } {
  const kind =
    fault.kind ??
    (fault.status === 429
      ? 'rate_limited'
      : fault.status === 402
        ? 'insufficient_credits'
        : fault.status === 503
          ? 'unavailable'
          : fault.status === 401
            ? 'unauthorized'
            : fault.status !== undefined && fault.status < 500
              ? 'invalid'
              : 'server_error');
  switch (kind) {
    case 'rate_limited':
      return { status: 429, body: errorBody('RATE_LIMITED', 'Too many requests, please slow down'), headers: { 'retry-after': '2' } };
    case 'insufficient_credits':
      return { status: 402, body: errorBody('INSUFFICIENT_CREDITS', 'Not enough credits for this operation') };
    case 'unauthorized':
      return { status: 401, body: errorBody('INVALID_API_KEY', 'API key is missing or invalid') };
    case 'invalid':
      return { status: 400, body: errorBody('INVALID_PROMPT', 'The prompt is invalid or empty') };
    case 'unavailable':
      // Not in the seed's table: what a load balancer in front of it would say.
      return { status: 503, body: errorBody('SERVICE_UNAVAILABLE', 'Service temporarily unavailable'), headers: { 'retry-after': '5' } };
    case 'server_error':
      return { status: 500, body: errorBody('INTERNAL_ERROR', 'Server error, please try again later') };
  }
}

/** The kling3api.com simulator. Besides the common controls it can make tasks end EXPIRED. */
export class Kling3apiSimulator extends KitSimulator {
  private expiries = 0;

  constructor(private readonly options: SimulatorOptions) {
    super('kling3api', options);
    const app = this.kit.app;
    app.post('/api/generate', express.json({ limit: '1mb' }), (req, res) => this.generate(req, res));
    app.get('/api/status', (req, res) => this.status(req, res));
    // Body parse errors and the like: answer in the upstream's shape, not express's HTML page.
    app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
      if (res.headersSent) {
        next(error);
        return;
      }
      const status = (error as { status?: number }).status;
      if (status !== undefined && status >= 400 && status < 500) {
        res.status(400).json(errorBody('INVALID_PARAMETER', 'The body could not be read as a JSON object'));
      } else {
        res.status(500).json(errorBody('INTERNAL_ERROR', 'Server error, please try again later'));
      }
    });
  }

  /** The next `times` created tasks end EXPIRED instead of their outcome. */
  expireNext(times = 1): void {
    this.expiries += times;
  }

  private authorized(req: Request): boolean {
    return req.get('authorization') === `Bearer ${this.options.apiKey}`;
  }

  private async generate(req: Request, res: Response): Promise<void> {
    if (await this.kit.applyFault('submit', req, res, faultAnswer)) return;
    if (!this.authorized(req)) {
      res.status(401).json(errorBody('INVALID_API_KEY', 'API key is missing or invalid'));
      return;
    }
    const body: unknown = req.body;
    const rejection = validateKling3apiGenerateBody(body);
    if (rejection) {
      res.status(rejection.status).json(errorBody(rejection.code, rejection.message));
      return;
    }
    const fields = body as { type: Kling3apiTaskType; duration?: number; sound?: boolean };
    const type = fields.type;
    const credits = kling3apiSimulatedCredits(type, fields.duration, fields.sound);
    const expire = this.expiries > 0;
    if (expire) this.expiries -= 1;
    // Seed 004: "n75 for Kling 3.0, n71 for Kling O3".
    const id = randomId(isKling3apiO3Type(type) ? 'n71' : 'n75', 12);
    const data: Kling3apiTaskData = { type, credits, expire };
    const task = this.kit.createTask(id, '/api/generate', body, data);
    task.status = 'IN_PROGRESS';
    this.kit.scheduleTransitions(task, (phase) => {
      task.status = this.wordOf(task, phase);
    });
    res.json({ code: 200, message: 'success', data: { task_id: id, status: task.status, consumed_credits: credits } });
  }

  /** A task created before a restart: its status word by the clock, and the words still to come. */
  protected override resume(task: KitTask): boolean {
    const data = task.data as Partial<Kling3apiTaskData>;
    if (!isTaskType(data.type) || typeof data.credits !== 'number' || typeof data.expire !== 'boolean') return false;
    task.status = this.wordOf(task, this.kit.phaseOf(task));
    this.kit.resumeTransitions(task, (phase) => {
      task.status = this.wordOf(task, phase);
    });
    return true;
  }

  private wordOf(task: KitTask, phase: SimulatedPhase): string {
    // kling3api has no queued word: a task is IN_PROGRESS from creation (SPEC §2).
    if (phase !== 'done') return 'IN_PROGRESS';
    if ((task.data as Kling3apiTaskData).expire) return 'EXPIRED';
    return task.outcome === 'succeed' ? 'SUCCESS' : 'FAILED';
  }

  private async status(req: Request, res: Response): Promise<void> {
    if (await this.kit.applyFault('status', req, res, faultAnswer)) return;
    if (!this.authorized(req)) {
      res.status(401).json(errorBody('INVALID_API_KEY', 'API key is missing or invalid'));
      return;
    }
    const taskId = req.query.task_id;
    if (typeof taskId !== 'string' || taskId === '') {
      res.status(400).json(errorBody('INVALID_PARAMETER', 'task_id is required'));
      return;
    }
    const task = this.kit.findTask(taskId);
    if (!task) {
      res.status(404).json(errorBody('TASK_NOT_FOUND', `Task ${taskId} not found`));
      return;
    }
    const data = task.data as Kling3apiTaskData;
    task.status = this.wordOf(task, this.kit.phaseOf(task));
    const errorMessage =
      task.status === 'EXPIRED'
        ? KLING3API_SIM_EXPIRED_MESSAGE
        : task.status === 'FAILED'
          ? task.outcome === 'content_policy'
            ? KLING3API_SIM_CONTENT_POLICY_MESSAGE
            : KLING3API_SIM_FAILURE_MESSAGE
          : null;
    res.json({
      code: 200,
      message: 'success',
      data: {
        task_id: task.id,
        status: task.status,
        consumed_credits: data.credits,
        created_at: new Date(task.createdAt).toISOString(),
        request: task.body,
        response: task.status === 'SUCCESS' ? [this.kit.resultUrl(task.id, 'mp4')] : [],
        error_message: errorMessage,
        type: data.type,
      },
    });
  }
}
