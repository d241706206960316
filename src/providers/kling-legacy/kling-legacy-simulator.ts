/**
 * The legacy Kling-API on loopback, for the sandbox, tests and benchmarks: the six create
 * routes under `/kling/v1`, `GET /kling/v1/{action}/{action2}/{task_id}` (seed 002), Bearer
 * auth, the official error envelope and codes, the task lifecycle `submitted → processing →
 * succeed | failed` on the injected clock, playable results, `final_unit_deduction`, and the
 * legacy callback (the task object POSTed to `callback_url` on each status change).
 *
 * Validation follows the official create pages closely enough that a body the adapter should
 * never send is refused with 1201, as the real API would; so is a field a page does not list.
 * Unit charges are simulated values.
 *
 * Status paths: by default each task answers at its create's action, as Kling's own API does
 * (`videos/video-extend/<id>` for an extension). `setStatusActions('seed')` makes it a reseller
 * that keeps to seed 002's list of action2 (generations, text2video, image2video, lip-sync,
 * kolors-virtual-try-on): `video-extend` is refused like an unknown route, and an extension
 * answers at `videos/text2video/<id>`.
 */
import { randomInt } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { SimulatedFault, SimulatorOptions } from '../../core/upstream/provider.js';
import { characterCount } from '../../core/model/capabilities.js';
import { KitSimulator, randomUuid, type KitTask } from '../../sandbox/simulator-kit.js';
import { KLING_LEGACY_ERROR_CODES, KLING_LEGACY_NOT_FOUND_CODE } from './kling-legacy-errors.js';

const PROVIDER_ID = 'kling-legacy';
/** The aggregator shape (seed 002) and Kling's own API: the same routes under two bases. */
const BASES = ['/kling/v1', '/v1'] as const;

/** What the simulator knows about an upstream video model (official Capability Map). */
interface SimVideoModel {
  textToVideo: boolean;
  /** `mode` values; empty for the master models, which take none (it is ignored). */
  modes: readonly string[];
  durations: readonly string[];
  cfgScale: boolean;
  imageTail: boolean;
  cameraControl: boolean;
  sound: boolean;
}

const FIVE_OR_TEN = ['5', '10'] as const;
const THREE_TO_FIFTEEN = ['3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15'] as const;
const STD_PRO = ['std', 'pro'] as const;

const VIDEO_MODELS: Readonly<Record<string, SimVideoModel>> = {
  'kling-v1': { textToVideo: true, modes: STD_PRO, durations: FIVE_OR_TEN, cfgScale: true, imageTail: true, cameraControl: true, sound: false },
  'kling-v1-5': { textToVideo: false, modes: STD_PRO, durations: FIVE_OR_TEN, cfgScale: true, imageTail: true, cameraControl: false, sound: false },
  'kling-v1-6': { textToVideo: true, modes: STD_PRO, durations: FIVE_OR_TEN, cfgScale: true, imageTail: true, cameraControl: false, sound: false },
  'kling-v2-master': { textToVideo: true, modes: [], durations: FIVE_OR_TEN, cfgScale: false, imageTail: false, cameraControl: false, sound: false },
  'kling-v2-1': { textToVideo: false, modes: STD_PRO, durations: FIVE_OR_TEN, cfgScale: false, imageTail: true, cameraControl: false, sound: false },
  'kling-v2-1-master': { textToVideo: true, modes: [], durations: FIVE_OR_TEN, cfgScale: false, imageTail: false, cameraControl: false, sound: false },
  'kling-v2-5-turbo': { textToVideo: true, modes: STD_PRO, durations: FIVE_OR_TEN, cfgScale: false, imageTail: true, cameraControl: false, sound: false },
  'kling-v2-6': { textToVideo: true, modes: STD_PRO, durations: FIVE_OR_TEN, cfgScale: false, imageTail: true, cameraControl: false, sound: true },
  'kling-v3': { textToVideo: true, modes: STD_PRO, durations: THREE_TO_FIFTEEN, cfgScale: true, imageTail: true, cameraControl: false, sound: true },
};
const IMAGE_MODELS: ReadonlySet<string> = new Set(['kling-v1', 'kling-v1-5', 'kling-v2', 'kling-v2-new', 'kling-v2-1']);
const TRY_ON_MODELS: ReadonlySet<string> = new Set(['kolors-virtual-try-on-v1', 'kolors-virtual-try-on-v1-5']);
const VIDEO_ASPECT_RATIOS: ReadonlySet<string> = new Set(['16:9', '9:16', '1:1']);
const IMAGE_ASPECT_RATIOS: ReadonlySet<string> = new Set(['16:9', '9:16', '1:1', '4:3', '3:4', '3:2', '2:3', '21:9']);
const CAMERA_TYPES: ReadonlySet<string> = new Set(['simple', 'down_back', 'forward_up', 'right_turn_forward', 'left_turn_forward']);

/** The failure message of a task refused by content moderation (Kling "risk control"). */
export const KLING_LEGACY_SIM_RISK_CONTROL_MESSAGE = 'Failure to pass the risk control system';
/** The failure message of a task that failed for no stated reason. */
export const KLING_LEGACY_SIM_FAILURE_MESSAGE = 'Task failed due to an internal error, please try again later';

type CreateAction = 'text2video' | 'image2video' | 'video-extend' | 'lip-sync' | 'generations' | 'kolors-virtual-try-on';
const CREATE_ROUTES: readonly { family: 'videos' | 'images'; action: CreateAction }[] = [
  { family: 'videos', action: 'text2video' },
  { family: 'videos', action: 'image2video' },
  { family: 'videos', action: 'video-extend' },
  { family: 'videos', action: 'lip-sync' },
  { family: 'images', action: 'generations' },
  { family: 'images', action: 'kolors-virtual-try-on' },
];

/** Text to Video and Image to Video share these; each adds its own below. */
const GENERATION_FIELDS = ['model_name', 'prompt', 'negative_prompt', 'cfg_scale', 'mode', 'sound', 'camera_control', 'duration', 'callback_url', 'external_task_id'];

/**
 * The fields each create body takes (`openapi/kling-legacy.yaml`, from the official create
 * pages): any other is refused like a bad value, not ignored, so that an adapter sending a
 * field a page does not list fails in tests.
 */
const FIELDS_OF: Readonly<Record<CreateAction, ReadonlySet<string>>> = {
  text2video: new Set([...GENERATION_FIELDS, 'aspect_ratio']),
  image2video: new Set([...GENERATION_FIELDS, 'image', 'image_tail']),
  'video-extend': new Set(['video_id', 'prompt', 'negative_prompt', 'cfg_scale', 'callback_url']),
  'lip-sync': new Set(['input', 'callback_url']),
  generations: new Set(['model_name', 'prompt', 'negative_prompt', 'image', 'image_reference', 'image_fidelity', 'n', 'aspect_ratio', 'callback_url']),
  'kolors-virtual-try-on': new Set(['model_name', 'human_image', 'cloth_image', 'callback_url']),
};
/** Lip-Sync's `input` object. */
const LIP_SYNC_INPUT_FIELDS: ReadonlySet<string> = new Set([
  'video_id',
  'video_url',
  'mode',
  'text',
  'voice_id',
  'voice_language',
  'voice_speed',
  'audio_type',
  'audio_file',
  'audio_url',
]);

/** Which action2 values the query answers at: each create's own (official), or seed 002's list. */
export type KlingLegacyStatusActions = 'official' | 'seed';

/** Seed 002 "Get task", path param action2. */
const SEED_STATUS_ACTIONS: ReadonlySet<string> = new Set(['generations', 'text2video', 'image2video', 'lip-sync', 'kolors-virtual-try-on']);

/** What a valid create turns into. */
interface Accepted {
  kind: 'mp4' | 'png';
  /** Seconds of the result video. */
  duration: number;
  /** Number of images. */
  count: number;
  units: number;
  externalTaskId?: string;
  callbackUrl?: string;
}

/** Per-task data kept on the kit task. */
interface LegacyTaskData extends Record<string, unknown> {
  family: string;
  action: CreateAction;
  accepted: Accepted;
  /** Last status a callback was sent for. */
  notified: string;
}

/** Whether journaled task data holds an `Accepted` as the simulator wrote it. */
function isAccepted(value: unknown): value is Accepted {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const accepted = value as Record<string, unknown>;
  const optionalText = (field: unknown) => field === undefined || typeof field === 'string';
  return (
    (accepted.kind === 'mp4' || accepted.kind === 'png') &&
    [accepted.duration, accepted.count, accepted.units].every((field) => typeof field === 'number' && Number.isFinite(field)) &&
    optionalText(accepted.externalTaskId) &&
    optionalText(accepted.callbackUrl)
  );
}

class InvalidParameter extends Error {}

function fail(message: string): never {
  throw new InvalidParameter(message);
}

/** The official error envelope for a service code. */
export function klingLegacyErrorBody(code: number, message?: string): { code: number; message: string; request_id: string } {
  return { code, message: message ?? KLING_LEGACY_ERROR_CODES[code]?.meaning ?? 'error', request_id: randomUuid() };
}

function record(value: unknown, name: string): Record<string, unknown> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) fail(`${name} must be an object`);
  return value as Record<string, unknown>;
}

function refuseUnknownFields(body: Record<string, unknown>, allowed: ReadonlySet<string>, prefix = ''): void {
  const unknown = Object.keys(body).find((key) => !allowed.has(key));
  if (unknown !== undefined) fail(`${prefix}${unknown} is not a parameter of this endpoint`);
}

function optionalString(body: Record<string, unknown>, key: string, maxLength = 10_000): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') fail(`${key} must be a string`);
  if (characterCount(value) > maxLength) fail(`${key} cannot exceed ${maxLength} characters`);
  return value;
}

function requiredString(body: Record<string, unknown>, key: string, maxLength = 10_000): string {
  const value = optionalString(body, key, maxLength);
  if (value === undefined || value.trim() === '') fail(`${key} is required`);
  return value;
}

function optionalNumber(body: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`${key} must be a number`);
  if (value < min || value > max) fail(`${key} must be between ${min} and ${max}`);
  return value;
}

function oneOf(body: Record<string, unknown>, key: string, allowed: ReadonlySet<string> | readonly string[]): string | undefined {
  const value = optionalString(body, key);
  if (value === undefined) return undefined;
  const values = allowed instanceof Set ? allowed : new Set(allowed);
  if (!values.has(value)) fail(`${key} ${JSON.stringify(value)} is invalid`);
  return value;
}

function round(units: number): number {
  return Math.round(units * 100) / 100;
}

/** The legacy Kling-API simulator. */
export class KlingLegacySimulator extends KitSimulator {
  /** Video ids this simulator produced, with their durations (sources for extend and lip-sync). */
  private readonly videos = new Map<string, number>();
  private readonly externalTaskIds = new Set<string>();
  private statusActions: KlingLegacyStatusActions = 'official';

  constructor(private readonly options: SimulatorOptions) {
    super(PROVIDER_ID, options);
    const app = this.kit.app;
    app.use(express.json({ limit: '4mb' }));
    for (const base of BASES) {
      for (const route of CREATE_ROUTES) {
        app.post(`${base}/${route.family}/${route.action}`, (req, res) => this.create(route.family, route.action, req, res));
      }
      app.get(`${base}/:family/:action/:taskId`, (req, res) => this.query(req, res));
      app.use(base, (_req: Request, res: Response) => {
        res.status(404).json(klingLegacyErrorBody(1202, 'The requested method is invalid'));
      });
    }
    // Malformed JSON (express.json's parse error) is a parameter error; anything else is ours.
    app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
      if (res.headersSent) {
        next(error);
        return;
      }
      const parseError = (error as { type?: string } | null)?.type === 'entity.parse.failed';
      if (parseError) res.status(400).json(klingLegacyErrorBody(1200, 'Invalid request parameters: body is not valid JSON'));
      else res.status(500).json(klingLegacyErrorBody(5000));
    });
  }

  /**
   * Official auth answers (HTTP 401): 1001 when the header is empty, 1002 when it is not a
   * Bearer token the API can read, 1003 before the token's `nbf`, 1004 after its `exp`, 1000
   * when the key, the issuer or the signature is wrong. A token is an HS256 JWT whose `iss` is
   * the access key, signed with its secret key (official API reference, authentication).
   */
  private async authorized(req: Request, res: Response): Promise<boolean> {
    const header = req.get('authorization')?.trim() ?? '';
    const refuse = (code: number, message: string) => {
      res.status(401).json(klingLegacyErrorBody(code, message));
      return false;
    };
    if (header === '') return refuse(1001, 'Authorization is empty');
    const bearer = /^Bearer (\S+)$/.exec(header);
    if (!bearer?.[1]) return refuse(1002, 'Authorization is invalid');
    const token = bearer[1];
    if (token === this.options.apiKey) return true;
    if (!this.options.accessKey || !this.options.secretKey || token.split('.').length !== 3) {
      return refuse(1000, 'Authentication failed');
    }
    let issuer: unknown;
    try {
      const protectedHeader = decodeProtectedHeader(token);
      if (protectedHeader.alg !== 'HS256') return refuse(1002, 'Authorization is invalid');
      issuer = decodeJwt(token).iss;
    } catch {
      return refuse(1002, 'Authorization is invalid');
    }
    if (issuer !== this.options.accessKey) return refuse(1000, 'Authentication failed');
    try {
      await jwtVerify(token, new TextEncoder().encode(this.options.secretKey), {
        algorithms: ['HS256'],
        issuer: this.options.accessKey,
        requiredClaims: ['exp'],
        currentDate: new Date(this.kit.clock.now()),
      });
      return true;
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) return refuse(1004, 'Authorization has expired');
      if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'nbf') return refuse(1003, 'Authorization is not yet valid');
      if (error instanceof joseErrors.JWSSignatureVerificationFailed) return refuse(1000, 'Authentication failed');
      return refuse(1002, 'Authorization is invalid');
    }
  }

  private faultAnswer(fault: SimulatedFault): { status: number; body: unknown; headers?: Record<string, string> } {
    const byKind: Record<NonNullable<SimulatedFault['kind']>, number> = {
      rate_limited: 1302,
      insufficient_credits: 1102,
      server_error: 5000,
      unavailable: 5001,
      unauthorized: 1000,
      invalid: 1201,
    };
    const byStatus: Record<number, number> = { 400: 1201, 401: 1000, 403: 1103, 404: 1203, 429: 1302, 500: 5000, 503: 5001, 504: 5002 };
    const code = fault.kind ? byKind[fault.kind] : (byStatus[fault.status ?? 500] ?? 5000);
    const status = KLING_LEGACY_ERROR_CODES[code]?.httpStatus ?? 500;
    const headers = code === 1302 || code === 1303 ? { 'retry-after': '1' } : undefined;
    return { status, body: klingLegacyErrorBody(code), ...(headers ? { headers } : {}) };
  }

  private async create(family: 'videos' | 'images', action: CreateAction, req: Request, res: Response): Promise<void> {
    if (!(await this.authorized(req, res))) return;
    if (await this.kit.applyFault('submit', req, res, (fault) => this.faultAnswer(fault))) return;
    let accepted: Accepted;
    try {
      accepted = this.validate(action, record(req.body, 'body'));
    } catch (error) {
      if (!(error instanceof InvalidParameter)) throw error;
      res.status(400).json(klingLegacyErrorBody(1201, `Invalid parameters: ${error.message}`));
      return;
    }
    if (accepted.externalTaskId !== undefined) this.externalTaskIds.add(accepted.externalTaskId);
    const data: LegacyTaskData = { family, action, accepted, notified: 'submitted' };
    const task = this.kit.createTask(this.newTaskId(), req.path, req.body, data);
    task.status = 'submitted';
    this.kit.scheduleTransitions(task, () => this.notify(task));
    res.json({ code: 0, message: 'SUCCEED', request_id: randomUuid(), data: this.taskObject(task, false) });
  }

  /**
   * A task created before a restart: its `external_task_id` taken again, its video a source for
   * extend and lip-sync once it succeeded, its status by the clock (the last one a callback went
   * out for, or was due), and the callbacks of the changes still to come.
   */
  protected override resume(task: KitTask): boolean {
    const data = task.data as Partial<LegacyTaskData>;
    if (!CREATE_ROUTES.some((route) => route.family === data.family && route.action === data.action)) return false;
    if (!isAccepted(data.accepted)) return false;
    const { accepted } = data;
    if (accepted.externalTaskId !== undefined) this.externalTaskIds.add(accepted.externalTaskId);
    task.status = this.currentStatus(task);
    data.notified = task.status;
    if (task.status === 'succeed' && accepted.kind === 'mp4') this.videos.set(`${task.id}-video`, accepted.duration);
    this.kit.resumeTransitions(task, () => this.notify(task));
    return true;
  }

  /** Where tasks answer from now on: at their create's action (default), or only at seed 002's action2 values. */
  setStatusActions(actions: KlingLegacyStatusActions): void {
    this.statusActions = actions;
  }

  /** The action2 a task of `action` answers at. */
  private statusActionOf(action: CreateAction): string {
    return this.statusActions === 'seed' && action === 'video-extend' ? 'text2video' : action;
  }

  private async query(req: Request, res: Response): Promise<void> {
    if (!(await this.authorized(req, res))) return;
    if (await this.kit.applyFault('status', req, res, (fault) => this.faultAnswer(fault))) return;
    const { family, action, taskId } = req.params as Record<string, string>;
    if (this.statusActions === 'seed' && !SEED_STATUS_ACTIONS.has(action ?? '')) {
      res.status(404).json(klingLegacyErrorBody(1202, 'The requested method is invalid'));
      return;
    }
    // The official query accepts the task id or the caller's external_task_id.
    const task = this.kit.tasks.find((candidate) => {
      const data = candidate.data as LegacyTaskData;
      const matches = candidate.id === taskId || (taskId !== '' && data.accepted.externalTaskId === taskId);
      return matches && data.family === family && this.statusActionOf(data.action) === action;
    });
    if (!task) {
      res.status(404).json(klingLegacyErrorBody(KLING_LEGACY_NOT_FOUND_CODE, 'task not found'));
      return;
    }
    res.json({ code: 0, message: 'SUCCEED', request_id: randomUuid(), data: this.taskObject(task, true) });
  }

  private newTaskId(): string {
    // Official ids are 18-digit decimal strings (e.g. "831922345719271433").
    let id = String(randomInt(1, 10));
    while (id.length < 18) id += String(randomInt(0, 10));
    return id;
  }

  private currentStatus(task: KitTask): string {
    const phase = this.kit.phaseOf(task);
    if (phase === 'queued') return 'submitted';
    if (phase === 'processing') return 'processing';
    return task.outcome === 'succeed' ? 'succeed' : 'failed';
  }

  /** Sends the legacy callback when the status changed since the last one. */
  private notify(task: KitTask): void {
    const data = task.data as LegacyTaskData;
    const status = this.currentStatus(task);
    task.status = status;
    if (status === data.notified) return;
    data.notified = status;
    const url = data.accepted.callbackUrl;
    if (url) this.kit.deliver(url, JSON.stringify(this.taskObject(task, true)), {}, task.id);
  }

  /** The task object: the query's `data` and the callback body (official legacy callback). */
  private taskObject(task: KitTask, withResult: boolean): Record<string, unknown> {
    const data = task.data as LegacyTaskData;
    const status = withResult ? this.currentStatus(task) : 'submitted';
    task.status = status;
    const { queuedMs, processingMs } = this.kit;
    const updatedAt =
      status === 'submitted' ? task.createdAt : status === 'processing' ? task.createdAt + queuedMs : task.createdAt + queuedMs + processingMs;
    const object: Record<string, unknown> = {
      task_id: task.id,
      task_status: status,
      task_status_msg: '',
      task_info: data.accepted.externalTaskId !== undefined ? { external_task_id: data.accepted.externalTaskId } : {},
      created_at: task.createdAt,
      updated_at: updatedAt,
    };
    if (status === 'failed') {
      object.task_status_msg =
        task.outcome === 'content_policy' ? KLING_LEGACY_SIM_RISK_CONTROL_MESSAGE : KLING_LEGACY_SIM_FAILURE_MESSAGE;
    }
    if (status === 'succeed') {
      object.task_result = this.result(task);
      object.final_unit_deduction = String(data.accepted.units);
    }
    return object;
  }

  private result(task: KitTask): Record<string, unknown> {
    const { accepted } = task.data as LegacyTaskData;
    if (accepted.kind === 'png') {
      const images = Array.from({ length: accepted.count }, (_, index) => ({
        index,
        url: this.kit.resultUrl(accepted.count === 1 ? task.id : `${task.id}-${index}`, 'png'),
      }));
      return { images };
    }
    // The video id is stable per task so extend and lip-sync can refer to it.
    const videoId = `${task.id}-video`;
    this.videos.set(videoId, accepted.duration);
    return { videos: [{ id: videoId, url: this.kit.resultUrl(task.id, 'mp4'), duration: String(accepted.duration) }] };
  }

  private commonVideoFields(body: Record<string, unknown>): { externalTaskId?: string; callbackUrl?: string } {
    const callbackUrl = optionalString(body, 'callback_url', 2048);
    if (callbackUrl !== undefined && !/^https?:\/\//.test(callbackUrl)) fail('callback_url must be an http(s) URL');
    return { callbackUrl, externalTaskId: this.externalTaskId(body) };
  }

  private externalTaskId(body: Record<string, unknown>): string | undefined {
    const id = optionalString(body, 'external_task_id', 256);
    if (id !== undefined && this.externalTaskIds.has(id)) fail('external_task_id must be unique, this one already exists');
    return id;
  }

  private validate(action: CreateAction, body: Record<string, unknown>): Accepted {
    refuseUnknownFields(body, FIELDS_OF[action]);
    switch (action) {
      case 'text2video':
      case 'image2video':
        return this.validateGeneration(action, body);
      case 'video-extend':
        return this.validateExtend(body);
      case 'lip-sync':
        return this.validateLipSync(body);
      case 'generations':
        return this.validateImage(body);
      case 'kolors-virtual-try-on':
        return this.validateTryOn(body);
    }
  }

  private validateGeneration(action: 'text2video' | 'image2video', body: Record<string, unknown>): Accepted {
    // The official default model is kling-v1.
    const modelName = optionalString(body, 'model_name') ?? 'kling-v1';
    const model = VIDEO_MODELS[modelName];
    if (!model) fail(`model_name ${JSON.stringify(modelName)} is invalid`);
    if (action === 'text2video') {
      if (!model.textToVideo) fail(`${modelName} does not support text to video`);
      requiredString(body, 'prompt', 2500);
      oneOf(body, 'aspect_ratio', VIDEO_ASPECT_RATIOS);
    } else {
      requiredString(body, 'image');
      optionalString(body, 'prompt', 2500);
      if (optionalString(body, 'image_tail') !== undefined && !model.imageTail) fail(`${modelName} does not support image_tail`);
    }
    optionalString(body, 'negative_prompt', 2500);
    const mode = oneOf(body, 'mode', STD_PRO);
    if (mode !== undefined && model.modes.length > 0 && !model.modes.includes(mode)) fail(`${modelName} does not support mode ${mode}`);
    if (body.duration !== undefined && typeof body.duration !== 'string') fail('duration must be a string');
    const duration = oneOf(body, 'duration', model.durations) ?? '5';
    if (optionalNumber(body, 'cfg_scale', 0, 1) !== undefined && !model.cfgScale) fail(`cfg_scale is not supported by ${modelName}`);
    if (oneOf(body, 'sound', ['on', 'off']) !== undefined && !model.sound) fail(`sound is not supported by ${modelName}`);
    if (body.camera_control !== undefined && body.camera_control !== null) {
      if (!model.cameraControl) fail(`camera_control is not supported by ${modelName}`);
      const camera = record(body.camera_control, 'camera_control');
      oneOf(camera, 'type', CAMERA_TYPES);
    }
    const seconds = Number(duration);
    // Simulated units: 10 per 5 s for the master models, else 3.5 (pro) or 1.5 (std) per 5 s.
    const per5s = model.modes.length === 0 ? 10 : mode === 'pro' ? 3.5 : 1.5;
    return { kind: 'mp4', duration: seconds, count: 1, units: round((per5s * seconds) / 5), ...this.commonVideoFields(body) };
  }

  private validateExtend(body: Record<string, unknown>): Accepted {
    const videoId = requiredString(body, 'video_id', 128);
    optionalString(body, 'prompt', 2500);
    optionalString(body, 'negative_prompt', 2500);
    optionalNumber(body, 'cfg_scale', 0, 1);
    const callbackUrl = optionalString(body, 'callback_url', 2048);
    // An extension adds about 5 s to its source; a video id from elsewhere counts as 5 s.
    const duration = (this.videos.get(videoId) ?? 5) + 5;
    return { kind: 'mp4', duration, count: 1, units: 3.5, ...(callbackUrl ? { callbackUrl } : {}) };
  }

  private validateLipSync(body: Record<string, unknown>): Accepted {
    const input = record(body.input, 'input');
    refuseUnknownFields(input, LIP_SYNC_INPUT_FIELDS, 'input.');
    const videoId = optionalString(input, 'video_id', 128);
    const videoUrl = optionalString(input, 'video_url', 2048);
    if ((videoId === undefined) === (videoUrl === undefined)) fail('input takes exactly one of video_id and video_url');
    const mode = oneOf(input, 'mode', ['text2video', 'audio2video']);
    if (mode === 'text2video') {
      requiredString(input, 'text', 120);
      requiredString(input, 'voice_id', 128);
      oneOf(input, 'voice_language', ['zh', 'en']);
      optionalNumber(input, 'voice_speed', 0.8, 2);
    } else if (mode === 'audio2video') {
      const audioType = oneOf(input, 'audio_type', ['url', 'file']);
      if (audioType === 'url') requiredString(input, 'audio_url', 2048);
      else if (audioType === 'file') requiredString(input, 'audio_file');
      else fail('audio_type is required for audio2video');
    } else {
      fail('input.mode is required');
    }
    const callbackUrl = optionalString(body, 'callback_url', 2048);
    const duration = (videoId !== undefined ? this.videos.get(videoId) : undefined) ?? 5;
    return { kind: 'mp4', duration, count: 1, units: round(duration / 5), ...(callbackUrl ? { callbackUrl } : {}) };
  }

  private validateImage(body: Record<string, unknown>): Accepted {
    const modelName = optionalString(body, 'model_name') ?? 'kling-v1';
    if (!IMAGE_MODELS.has(modelName)) fail(`model_name ${JSON.stringify(modelName)} is invalid`);
    requiredString(body, 'prompt', 500);
    const negative = optionalString(body, 'negative_prompt', 200);
    const image = optionalString(body, 'image');
    if (negative !== undefined && image !== undefined) fail('negative_prompt is not supported with image');
    oneOf(body, 'aspect_ratio', IMAGE_ASPECT_RATIOS);
    const n = body.n === undefined ? 1 : body.n;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 9) fail('n must be an integer from 1 to 9');
    const callbackUrl = optionalString(body, 'callback_url', 2048);
    return { kind: 'png', duration: 0, count: n, units: round(0.25 * n), ...(callbackUrl ? { callbackUrl } : {}) };
  }

  private validateTryOn(body: Record<string, unknown>): Accepted {
    const modelName = optionalString(body, 'model_name') ?? 'kolors-virtual-try-on-v1';
    if (!TRY_ON_MODELS.has(modelName)) fail(`model_name ${JSON.stringify(modelName)} is invalid`);
    requiredString(body, 'human_image');
    requiredString(body, 'cloth_image');
    const callbackUrl = optionalString(body, 'callback_url', 2048);
    return { kind: 'png', duration: 0, count: 1, units: 1, ...(callbackUrl ? { callbackUrl } : {}) };
  }
}
