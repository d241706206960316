/**
 * What the legacy Kling-API serves, as Offerings: one per (canonical model, operation);
 * features that only some modes or durations have are checked across fields. Declared from
 * the official Kling AI API "Capability Map"
 * (app.klingai.com/global/dev/document-api/apiReference/model/skillsMap) and
 * the create-task pages it links; see openapi/kling-legacy.yaml for the upstream bodies.
 *
 * Conservative by design: a field the official pages do not confirm for a model is not
 * declared, so a caller who sets it gets a capability miss instead of a silent drop.
 */
import type { Model, Operation, Quality, VideoRequest } from '../../core/model/canonical.js';
import { blankPromptReasons, isBlankText, type FieldRule, type Offering } from '../../core/model/offerings.js';
import type { KlingLegacyImageModelName, KlingLegacyTryOnModelName, KlingLegacyVideoModelName } from './kling-legacy-schemas.js';

/** `videos` or `images`: the first path segment after `/kling/v1`, also of the status path. */
export type KlingLegacyFamily = 'videos' | 'images';

/** Upstream create action (the second segment), also the `action2` of the status path (seed 002). */
export type KlingLegacyAction =
  | 'text2video'
  | 'image2video'
  | 'video-extend'
  | 'lip-sync'
  | 'generations'
  | 'kolors-virtual-try-on';

/** Where each canonical operation goes upstream. */
export const KLING_LEGACY_ROUTES: Partial<Record<Operation, { family: KlingLegacyFamily; action: KlingLegacyAction }>> = {
  'text-to-video': { family: 'videos', action: 'text2video' },
  'image-to-video': { family: 'videos', action: 'image2video' },
  'video-extend': { family: 'videos', action: 'video-extend' },
  'lip-sync': { family: 'videos', action: 'lip-sync' },
  'image-generation': { family: 'images', action: 'generations' },
  'virtual-try-on': { family: 'images', action: 'kolors-virtual-try-on' },
};

/**
 * The API shapes the adapter speaks: `aggregator` (seed 002: the Kling API resold under
 * `/kling/v1`, the default) and `official` (Kling's own hosts, the same routes under `/v1`).
 */
export const KLING_LEGACY_API_SHAPES = ['aggregator', 'official'] as const;

/** Base of every upstream path of the aggregator shape (seed 002). */
export const KLING_LEGACY_BASE_PATH = '/kling/v1';
/** Base of every path of Kling's own API (official API reference, e.g. `POST /v1/videos/text2video`). */
export const KLING_OFFICIAL_BASE_PATH = '/v1';

/**
 * `/kling/v1/<family>/<action>` (or `/v1/…` on Kling's own API): the create path, and the status
 * path without the task id.
 */
export function klingLegacyActionPath(family: KlingLegacyFamily, action: KlingLegacyAction, apiShape?: string): string {
  const base = apiShape === 'official' ? KLING_OFFICIAL_BASE_PATH : KLING_LEGACY_BASE_PATH;
  return `${base}/${family}/${action}`;
}

/** Official prompt limits: video 2500 (Text/Image to Video), image 500 / negative 200 (Image Generation). */
export const KLING_LEGACY_VIDEO_PROMPT_MAX = 2500;
export const KLING_LEGACY_IMAGE_PROMPT_MAX = 500;
export const KLING_LEGACY_IMAGE_NEGATIVE_PROMPT_MAX = 200;

/** A feature that only some qualities and durations of a model have. */
interface FeatureScope {
  qualities: readonly Quality[];
  durations: readonly number[];
}

/**
 * One legacy video model as the Capability Map describes it. Every entry cites its row of
 * the map (or the updates log entry that changed it).
 */
export interface KlingLegacyVideoModelSpec {
  model: Model;
  /** Upstream `model_name`: the canonical names are the official ones. */
  modelName: KlingLegacyVideoModelName;
  /** Qualities served, and whether the upstream takes a `mode` for them (the master models take none). */
  qualities: readonly Quality[];
  sendsMode: boolean;
  durations: readonly number[];
  /** `cfg_scale` 0–1: "Not supported by the kling-v2.x models" (Text/Image to Video, field cfg_scale). */
  cfgScale: boolean;
  /** image2video `image_tail` (Capability Map "start/end frame"). */
  endFrame?: FeatureScope;
  /** text2video `camera_control` (Capability Map "camera control"). */
  cameraControl?: FeatureScope;
  /** `sound: on|off`: "Supported on V2.6 and later models only"; which qualities generate it. */
  audio?: { qualities: readonly Quality[]; withEndFrame: boolean };
  /** Capability Map "Video Extension". */
  extendable: boolean;
}

const FIVE_OR_TEN = [5, 10] as const;
const THREE_TO_FIFTEEN = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] as const;

/** The legacy video models, from the Capability Map and the API updates log. */
export const KLING_LEGACY_VIDEO_MODELS: readonly KlingLegacyVideoModelSpec[] = [
  {
    // Map "kling-v1": T2V and I2V std/pro 5 s and 10 s; camera control T2V std 5 s only;
    // start/end frame std 5 s and pro 5 s; video extension in every mode.
    model: 'kling-v1',
    modelName: 'kling-v1',
    qualities: ['pro', 'std'],
    sendsMode: true,
    durations: FIVE_OR_TEN,
    cfgScale: true,
    endFrame: { qualities: ['std', 'pro'], durations: [5] },
    cameraControl: { qualities: ['std'], durations: [5] },
    extendable: true,
  },
  {
    // Map "kling-v1-6": T2V std/pro (pro since 08/12/2025), I2V std/pro; start/end frame pro
    // only; video extension in every mode. No camera control.
    model: 'kling-v1-6',
    modelName: 'kling-v1-6',
    qualities: ['pro', 'std'],
    sendsMode: true,
    durations: FIVE_OR_TEN,
    cfgScale: true,
    endFrame: { qualities: ['pro'], durations: FIVE_OR_TEN },
    extendable: true,
  },
  {
    // Map "kling-v2-master": T2V and I2V, 5 s and 10 s, no mode ("Kling-v2-master currently
    // does not support mode parameter", updates 05/13/2025). One tier, declared as `pro`.
    model: 'kling-v2-master',
    modelName: 'kling-v2-master',
    qualities: ['pro'],
    sendsMode: false,
    durations: FIVE_OR_TEN,
    cfgScale: false,
    extendable: false,
  },
  {
    // Map "kling-v2-1-master": T2V and I2V, 5 s and 10 s, no mode (1080p only).
    model: 'kling-v2-1-master',
    modelName: 'kling-v2-1-master',
    qualities: ['pro'],
    sendsMode: false,
    durations: FIVE_OR_TEN,
    cfgScale: false,
    extendable: false,
  },
  {
    // Map "kling-v2-5-turbo": T2V and I2V std/pro (std since 11/11/2025); start/end frame pro
    // (11/17/2025).
    model: 'kling-v2-5-turbo',
    modelName: 'kling-v2-5-turbo',
    qualities: ['pro', 'std'],
    sendsMode: true,
    durations: FIVE_OR_TEN,
    cfgScale: false,
    endFrame: { qualities: ['pro'], durations: FIVE_OR_TEN },
    extendable: false,
  },
  {
    // Map "kling-v2-6": std generates silent video only; pro with audio; start/end frame pro
    // "(no audio)".
    model: 'kling-v2-6',
    modelName: 'kling-v2-6',
    qualities: ['pro', 'std'],
    sendsMode: true,
    durations: FIVE_OR_TEN,
    cfgScale: false,
    endFrame: { qualities: ['pro'], durations: FIVE_OR_TEN },
    audio: { qualities: ['pro'], withEndFrame: false },
    extendable: false,
  },
  {
    // kling-v3 on the legacy text2video / image2video (model_name enum of both pages):
    // std/pro, 3–15 s, sound on/off, end frame. cfg_scale 0–1 is listed by the official field
    // ("not supported by kling-v2.x", v3 is not v2.x) and by resellers of kling-v3.
    model: 'kling-v3',
    modelName: 'kling-v3',
    qualities: ['pro', 'std'],
    sendsMode: true,
    durations: THREE_TO_FIFTEEN,
    cfgScale: true,
    endFrame: { qualities: ['std', 'pro'], durations: THREE_TO_FIFTEEN },
    audio: { qualities: ['std', 'pro'], withEndFrame: true },
    extendable: false,
  },
];

/** The spec of a canonical video model, when the legacy API serves it. */
export function klingLegacyVideoModel(model: Model): KlingLegacyVideoModelSpec | undefined {
  return KLING_LEGACY_VIDEO_MODELS.find((spec) => spec.model === model);
}

/**
 * Canonical model → images/generations `model_name`. The canonical models are video names;
 * the image family of the same generation is used: kling-v1 → kling-v1, kling-v2-master →
 * kling-v2 (launched with it, 05/13/2025), kling-v2-1-master → kling-v2-1 (07/30/2025). No
 * canonical model maps to kling-v1-5 / kling-v2-new, and kling-v1-6 has no image model.
 */
export const KLING_LEGACY_IMAGE_MODELS: Partial<Record<Model, { modelName: KlingLegacyImageModelName; referenceImage: boolean }>> = {
  // Map "kling-v1": text to image and image to image ("entire" reference, no image_reference).
  'kling-v1': { modelName: 'kling-v1', referenceImage: true },
  // Map "kling-v2": text to image; its image-to-image is restyle / multi-image (other
  // endpoints or semantics), so no single reference image here.
  'kling-v2-master': { modelName: 'kling-v2', referenceImage: false },
  // Map "kling-v2-1": text to image; image to image is the multi-image endpoint.
  'kling-v2-1-master': { modelName: 'kling-v2-1', referenceImage: false },
};

/** Virtual Try-On models: the canonical names are the official ones. */
export const KLING_LEGACY_TRY_ON_MODELS: Partial<Record<Model, KlingLegacyTryOnModelName>> = {
  'kolors-virtual-try-on-v1': 'kolors-virtual-try-on-v1',
  'kolors-virtual-try-on-v1-5': 'kolors-virtual-try-on-v1-5',
};

// Lip-sync is "model-independent" in the Capability Map and takes no model_name: it is
// declared for the legacy video models whose videos it is meant for, and `model` only names
// the source video's model (for price rules and bookkeeping).
const LIP_SYNC_MODELS: readonly Model[] = [
  'kling-v1',
  'kling-v1-6',
  'kling-v2-master',
  'kling-v2-1-master',
  'kling-v2-5-turbo',
  'kling-v2-6',
];

// Operations with no `mode` upstream produce one tier; it is declared as the canonical default.
const SINGLE_TIER: readonly Quality[] = ['pro'];
const VIDEO_ASPECT_RATIOS: FieldRule = { values: ['16:9', '9:16', '1:1'] };
const CFG_SCALE: FieldRule = { min: 0, max: 1 };
const AUDIO: FieldRule = { values: [true, false] };

function upstreamLabel(operation: Operation, modelName?: string): string {
  const route = KLING_LEGACY_ROUTES[operation];
  if (!route) throw new Error(`kling-legacy has no route for ${operation}`);
  const path = `POST ${klingLegacyActionPath(route.family, route.action)}`;
  return modelName ? `${path} (model_name ${modelName})` : path;
}

function scopeReasons(request: VideoRequest, field: string, scope: FeatureScope | undefined): string[] {
  if (!scope) return [];
  const reasons: string[] = [];
  if (!scope.qualities.includes(request.quality)) {
    reasons.push(`${field} on ${request.model} needs quality ${scope.qualities.join(' or ')}`);
  }
  const duration = request.duration ?? 5;
  if (!scope.durations.includes(duration)) {
    reasons.push(`${field} on ${request.model} needs duration ${scope.durations.join(' or ')}`);
  }
  return reasons;
}

function videoFieldRules(spec: KlingLegacyVideoModelSpec): Offering['fields'] {
  return {
    negative_prompt: { maxLength: KLING_LEGACY_VIDEO_PROMPT_MAX },
    duration: { values: spec.durations },
    ...(spec.cfgScale ? { cfg_scale: CFG_SCALE } : {}),
    ...(spec.audio ? { audio: AUDIO } : {}),
  };
}

/**
 * Where the model generates audio only in some cases (kling-v2-6: pro only, and not with an
 * end frame), what stands in the way of `audio: true` (empty when nothing does).
 */
function audioObstacles(request: VideoRequest, spec: KlingLegacyVideoModelSpec): string[] {
  if (!spec.audio || request.audio !== true) return [];
  const reasons: string[] = [];
  if (!spec.audio.qualities.includes(request.quality)) {
    reasons.push(
      `${request.model} generates audio only at quality ${spec.audio.qualities.join(' or ')}: send audio: false or quality ${spec.audio.qualities.join(' or ')}`,
    );
  }
  if (request.end_image_url !== undefined && !spec.audio.withEndFrame) {
    reasons.push(`${request.model} generates no audio with an end frame (end_image_url): send audio: false`);
  }
  return reasons;
}

/** True when this request can get native audio on this model. */
export function klingLegacyAudioPossible(request: VideoRequest, model: string): boolean {
  const spec = KLING_LEGACY_VIDEO_MODELS.find((candidate) => candidate.model === model);
  return spec?.audio !== undefined && audioObstacles({ ...request, audio: true }, spec).length === 0;
}

/**
 * An explicit `audio: true` that cannot be honoured is refused, with what to change. Each reason
 * opens with the field's name, so a capability `422` lists it under `audio` in `errors[]`.
 */
function audioReasons(request: VideoRequest, spec: KlingLegacyVideoModelSpec, explicit: ReadonlySet<string>): string[] {
  return explicit.has('audio') ? audioObstacles(request, spec).map((obstacle) => `audio is not possible here: ${obstacle}`) : [];
}

/** A defaulted `audio: true` that cannot be honoured becomes silent video, with a warning. */
function audioWarnings(request: VideoRequest, spec: KlingLegacyVideoModelSpec, explicit: ReadonlySet<string>): string[] {
  if (explicit.has('audio')) return [];
  return audioObstacles(request, spec).map((reason) => `audio defaulted to true but ${reason.replace(/: send audio: false.*$/, '')}; the video will be silent`);
}

function textToVideoOffering(spec: KlingLegacyVideoModelSpec): Offering {
  return {
    model: spec.model,
    qualities: spec.qualities,
    operation: 'text-to-video',
    upstream: upstreamLabel('text-to-video', spec.modelName),
    fields: {
      prompt: { required: true, maxLength: KLING_LEGACY_VIDEO_PROMPT_MAX },
      aspect_ratio: VIDEO_ASPECT_RATIOS,
      ...videoFieldRules(spec),
      ...(spec.cameraControl ? { camera_control: {} } : {}),
    },
    check: (request, explicit) => [
      // The create page makes the prompt "Required"; the aggregator answers a blank one 1201.
      ...blankPromptReasons(request),
      ...(request.camera_control ? scopeReasons(request, 'camera_control', spec.cameraControl) : []),
      ...audioReasons(request, spec, explicit),
    ],
    warnings: (request, explicit) => audioWarnings(request, spec, explicit),
  };
}

function imageToVideoOffering(spec: KlingLegacyVideoModelSpec): Offering {
  return {
    model: spec.model,
    qualities: spec.qualities,
    operation: 'image-to-video',
    upstream: upstreamLabel('image-to-video', spec.modelName),
    // No aspect_ratio: the official Image to Video body has none (the image decides).
    fields: {
      start_image_url: { required: true },
      prompt: { maxLength: KLING_LEGACY_VIDEO_PROMPT_MAX },
      ...videoFieldRules(spec),
      ...(spec.endFrame ? { end_image_url: {} } : {}),
    },
    check: (request, explicit) => [
      ...(request.end_image_url ? scopeReasons(request, 'end_image_url', spec.endFrame) : []),
      ...audioReasons(request, spec, explicit),
    ],
    warnings: (request, explicit) => audioWarnings(request, spec, explicit),
  };
}

function videoExtendOffering(spec: KlingLegacyVideoModelSpec): Offering {
  return {
    model: spec.model,
    qualities: SINGLE_TIER,
    operation: 'video-extend',
    // No model_name upstream: the extension follows its source video.
    upstream: upstreamLabel('video-extend'),
    fields: {
      video_id: { required: true },
      prompt: { maxLength: KLING_LEGACY_VIDEO_PROMPT_MAX },
      negative_prompt: { maxLength: KLING_LEGACY_VIDEO_PROMPT_MAX },
      cfg_scale: CFG_SCALE,
    },
  };
}

function lipSyncOffering(model: Model): Offering {
  return {
    model,
    qualities: SINGLE_TIER,
    operation: 'lip-sync',
    upstream: upstreamLabel('lip-sync'),
    fields: {
      lip_sync: { required: true },
      video_id: {},
      video_url: {},
    },
    check: (request) => [...sourceReasons(request), ...blankSpeechReasons(request)],
  };
}

/**
 * Words or a voice of white space only are none: the simulator answers them as it answers a
 * missing one (1201 "text is required", "voice_id is required"), as for a blank prompt.
 */
function blankSpeechReasons(request: VideoRequest): string[] {
  const speech = request.lip_sync;
  if (!speech || !('text' in speech)) return [];
  return [
    ...(isBlankText(speech.text) ? [`lip_sync text is blank; ${request.model} lip-sync needs words to speak`] : []),
    ...(isBlankText(speech.voice_id) ? [`lip_sync voice_id is blank; ${request.model} lip-sync needs a voice`] : []),
  ];
}

/**
 * Lip-sync's source video: a Kling video id or a URL, one of them. Each reason opens with a field's
 * name, as every reason about fields does, so that a `422` lists it under that field in `errors[]`.
 */
function sourceReasons(request: VideoRequest): string[] {
  const sources = [request.video_id, request.video_url].filter((value) => value !== undefined);
  if (sources.length === 0) return ['video_id or video_url is required for lip-sync: the source video (video_id a Kling video, or its URL)'];
  if (sources.length > 1) return ['video_id and video_url together: lip-sync takes one source video, not both'];
  return [];
}

function imageGenerationOffering(model: Model, image: { modelName: KlingLegacyImageModelName; referenceImage: boolean }): Offering {
  return {
    model,
    qualities: SINGLE_TIER,
    operation: 'image-generation',
    upstream: upstreamLabel('image-generation', image.modelName),
    fields: {
      prompt: { required: true, maxLength: KLING_LEGACY_IMAGE_PROMPT_MAX },
      negative_prompt: { maxLength: KLING_LEGACY_IMAGE_NEGATIVE_PROMPT_MAX },
      // The canonical ratios upstream has (it also has 4:3, 3:4, 3:2, 2:3, 21:9).
      aspect_ratio: VIDEO_ASPECT_RATIOS,
      ...(image.referenceImage ? { start_image_url: {} } : {}),
    },
    check: (request) => [
      // Image Generation, field prompt: "Required"; the aggregator answers a blank one 1201.
      ...blankPromptReasons(request),
      // Image Generation, field negative_prompt: not supported in the image-to-image case.
      ...(request.negative_prompt !== undefined && request.start_image_url !== undefined
        ? ['negative_prompt is not supported with a reference image (start_image_url) on image-generation']
        : []),
    ],
  };
}

function virtualTryOnOffering(model: Model, modelName: KlingLegacyTryOnModelName): Offering {
  return {
    model,
    qualities: SINGLE_TIER,
    operation: 'virtual-try-on',
    upstream: upstreamLabel('virtual-try-on', modelName),
    fields: {
      // human_image ← start_image_url; cloth_image ← reference_images[0] (exactly one garment).
      start_image_url: { required: true },
      reference_images: { required: true, maxItems: 1 },
    },
  };
}

function buildOfferings(): Offering[] {
  const offerings: Offering[] = [];
  for (const spec of KLING_LEGACY_VIDEO_MODELS) {
    offerings.push(textToVideoOffering(spec), imageToVideoOffering(spec));
    if (spec.extendable) offerings.push(videoExtendOffering(spec));
  }
  for (const model of LIP_SYNC_MODELS) offerings.push(lipSyncOffering(model));
  for (const [model, image] of Object.entries(KLING_LEGACY_IMAGE_MODELS)) {
    if (image) offerings.push(imageGenerationOffering(model as Model, image));
  }
  for (const [model, modelName] of Object.entries(KLING_LEGACY_TRY_ON_MODELS)) {
    if (modelName) offerings.push(virtualTryOnOffering(model as Model, modelName));
  }
  return offerings;
}

/** Every offering of the legacy Kling-API provider. */
export const KLING_LEGACY_OFFERINGS: readonly Offering[] = buildOfferings();
