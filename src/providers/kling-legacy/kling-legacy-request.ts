/**
 * Canonical request → legacy Kling-API create call (`POST /kling/v1/<family>/<action>`).
 * Pure: the offering says which route and model; the capability check has already
 * rejected what the route cannot take, so every mapped field is sent, none is dropped.
 * Upstream bodies: openapi/kling-legacy.yaml (official Kling AI API create-task pages).
 */
import type { VideoRequest } from '../../core/model/canonical.js';
import type { Offering } from '../../core/model/offerings.js';
import { compact } from '../../core/upstream/upstream-body.js';
import {
  KLING_LEGACY_IMAGE_MODELS,
  KLING_LEGACY_ROUTES,
  KLING_LEGACY_TRY_ON_MODELS,
  klingLegacyActionPath,
  klingLegacyVideoModel,
  type KlingLegacyAction,
  type KlingLegacyFamily,
  klingLegacyAudioPossible,
} from './kling-legacy-capabilities.js';

import type {
  KlingLegacyCreateBody,
  KlingLegacyImage2VideoBody,
  KlingLegacyImageGenerationBody,
  KlingLegacyLipSyncBody,
  KlingLegacyText2VideoBody,
  KlingLegacyVideoExtendBody,
  KlingLegacyVirtualTryOnBody,
  KlingLegacyWireSchemas as Schemas,
} from './kling-legacy-schemas.js';

/** One create call, and where its task is polled afterwards. */
export interface KlingLegacyCreateCall {
  family: KlingLegacyFamily;
  action: KlingLegacyAction;
  /** `POST` path under the base URL. */
  path: string;
  body: KlingLegacyCreateBody;
  /** Status path without the task id: `GET <statusPath>/<task_id>` (seed 002 "Get task"). */
  statusPath: string;
}

/** Per-attempt values the submit context supplies. */
export interface KlingLegacyCallOptions {
  /** The gateway's per-task callback URL (`callback_url`), when configured. */
  callbackUrl?: string;
  /**
   * Unique per attempt (`external_task_id`). Only text2video and image2video document it;
   * the other create pages do not, so it is not sent there.
   */
  externalTaskId?: string;
  /** `official` for Kling's own API (paths under `/v1`); the aggregator shape otherwise. */
  apiShape?: string | undefined;
}

function videoModel(request: VideoRequest) {
  const spec = klingLegacyVideoModel(request.model);
  if (!spec) throw new Error(`kling-legacy has no video model ${request.model}`);
  return spec;
}

function durationOf(request: VideoRequest): Schemas['Duration'] {
  // Text/Image to Video take the duration as a string ("5", "10"; "3"–"15" on kling-v3).
  return String(request.duration ?? 5) as Schemas['Duration'];
}

function soundOf(request: VideoRequest, offering: Offering): Schemas['Sound'] | undefined {
  // Only where the offering declares audio (kling-v2-6, kling-v3). An explicit audio: true the
  // model cannot honour was refused by the capability check; a defaulted one goes up as `off`
  // (the task carries a warning saying so).
  if (!offering.fields.audio || request.audio === undefined) return undefined;
  return request.audio && klingLegacyAudioPossible(request, offering.model) ? 'on' : 'off';
}

/** Text to Video (official "Text to Video - Create Task"). */
function toText2Video(request: VideoRequest, offering: Offering, options: KlingLegacyCallOptions): KlingLegacyText2VideoBody {
  const spec = videoModel(request);
  return compact<KlingLegacyText2VideoBody>({
    model_name: spec.modelName,
    prompt: request.prompt ?? '',
    negative_prompt: request.negative_prompt,
    cfg_scale: request.cfg_scale,
    mode: spec.sendsMode ? request.quality : undefined,
    sound: soundOf(request, offering),
    camera_control: request.camera_control,
    aspect_ratio: request.aspect_ratio as Schemas['AspectRatio'] | undefined,
    duration: durationOf(request),
    callback_url: options.callbackUrl,
    external_task_id: options.externalTaskId,
  });
}

/** Image to Video: `image` ← start_image_url, `image_tail` ← end_image_url. */
function toImage2Video(request: VideoRequest, offering: Offering, options: KlingLegacyCallOptions): KlingLegacyImage2VideoBody {
  const spec = videoModel(request);
  return compact<KlingLegacyImage2VideoBody>({
    model_name: spec.modelName,
    image: request.start_image_url ?? '',
    image_tail: request.end_image_url,
    prompt: request.prompt,
    negative_prompt: request.negative_prompt,
    cfg_scale: request.cfg_scale,
    mode: spec.sendsMode ? request.quality : undefined,
    sound: soundOf(request, offering),
    duration: durationOf(request),
    callback_url: options.callbackUrl,
    external_task_id: options.externalTaskId,
  });
}

/** Video Extension: no model_name and no mode (the extension follows its source video). */
function toVideoExtend(request: VideoRequest, options: KlingLegacyCallOptions): KlingLegacyVideoExtendBody {
  return compact<KlingLegacyVideoExtendBody>({
    video_id: request.video_id ?? '',
    prompt: request.prompt,
    negative_prompt: request.negative_prompt,
    cfg_scale: request.cfg_scale,
    callback_url: options.callbackUrl,
  });
}

/**
 * Lip-Sync: `input.video_id` or `input.video_url`; text → `mode: text2video` with the voice,
 * audio → `mode: audio2video`, `audio_type: url`.
 */
function toLipSync(request: VideoRequest, options: KlingLegacyCallOptions): KlingLegacyLipSyncBody {
  const lipSync = request.lip_sync;
  if (!lipSync) throw new Error('lip-sync needs lip_sync');
  const source = { video_id: request.video_id, video_url: request.video_url };
  const input: Schemas['LipSyncInput'] =
    'audio_url' in lipSync
      ? compact({ ...source, mode: 'audio2video', audio_type: 'url', audio_url: lipSync.audio_url })
      : compact({
          ...source,
          mode: 'text2video',
          text: lipSync.text,
          voice_id: lipSync.voice_id,
          voice_language: lipSync.voice_language,
          voice_speed: lipSync.voice_speed,
        });
  return compact<KlingLegacyLipSyncBody>({ input, callback_url: options.callbackUrl });
}

/** Image Generation: the canonical model's image family, `image` ← start_image_url, one image. */
function toImageGeneration(request: VideoRequest, options: KlingLegacyCallOptions): KlingLegacyImageGenerationBody {
  const image = KLING_LEGACY_IMAGE_MODELS[request.model];
  if (!image) throw new Error(`kling-legacy has no image model for ${request.model}`);
  return compact<KlingLegacyImageGenerationBody>({
    model_name: image.modelName,
    prompt: request.prompt ?? '',
    negative_prompt: request.negative_prompt,
    image: request.start_image_url,
    aspect_ratio: request.aspect_ratio as Schemas['ImageAspectRatio'] | undefined,
    // One image per task: the Task carries one output per generation, and n is also the
    // number of concurrency slots the task takes upstream.
    n: 1,
    callback_url: options.callbackUrl,
  });
}

/** Virtual Try-On: `human_image` ← start_image_url, `cloth_image` ← reference_images[0]. */
function toVirtualTryOn(request: VideoRequest, options: KlingLegacyCallOptions): KlingLegacyVirtualTryOnBody {
  const modelName = KLING_LEGACY_TRY_ON_MODELS[request.model];
  if (!modelName) throw new Error(`kling-legacy has no try-on model ${request.model}`);
  return compact<KlingLegacyVirtualTryOnBody>({
    model_name: modelName,
    human_image: request.start_image_url ?? '',
    cloth_image: request.reference_images?.[0] ?? '',
    callback_url: options.callbackUrl,
  });
}

/** The create call for a request the offering serves. */
export function toKlingLegacyRequest(
  request: VideoRequest,
  offering: Offering,
  options: KlingLegacyCallOptions = {},
): KlingLegacyCreateCall {
  const route = KLING_LEGACY_ROUTES[offering.operation];
  if (!route) throw new Error(`kling-legacy does not serve ${offering.operation}`);
  const path = klingLegacyActionPath(route.family, route.action, options.apiShape);
  const body = ((): KlingLegacyCreateBody => {
    switch (offering.operation) {
      case 'text-to-video':
        return toText2Video(request, offering, options);
      case 'image-to-video':
        return toImage2Video(request, offering, options);
      case 'video-extend':
        return toVideoExtend(request, options);
      case 'lip-sync':
        return toLipSync(request, options);
      case 'image-generation':
        return toImageGeneration(request, options);
      case 'virtual-try-on':
        return toVirtualTryOn(request, options);
      default:
        throw new Error(`kling-legacy does not serve ${offering.operation}`);
    }
  })();
  return { family: route.family, action: route.action, path, body, statusPath: path };
}
