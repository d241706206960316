/**
 * What kling3api.com serves, as Offerings: one per (canonical model, operation), both
 * qualities, each naming the upstream `type` it maps to.
 * Source: shared/seeds/004_1ace3cef13878ba3.txt, "Available Models" and "Request Body".
 */
import type { Model, Operation, Quality } from '../../core/model/canonical.js';
import { blankPromptReasons, type FieldRule, type Offering } from '../../core/model/offerings.js';
import type { Kling3apiTaskType } from './kling3api-schemas.js';

/** Canonical operations kling3api serves, and for each quality the upstream type. */
type TypesByOperation = Partial<Record<Operation, Record<Quality, Kling3apiTaskType>>>;

/**
 * Canonical (model × operation × quality) → upstream `type`.
 * Seed 004 "Available Models": Kling 3.0 has text/image-to-video; Kling Video O3 adds
 * reference-to-video and video-edit.
 */
export const KLING3API_TASK_TYPES: Partial<Record<Model, TypesByOperation>> = {
  'kling-v3': {
    'text-to-video': { pro: 'pro-text-to-video', std: 'std-text-to-video' },
    'image-to-video': { pro: 'pro-image-to-video', std: 'std-image-to-video' },
  },
  'kling-v3-omni': {
    'text-to-video': { pro: 'o3-pro-text-to-video', std: 'o3-std-text-to-video' },
    'image-to-video': { pro: 'o3-pro-image-to-video', std: 'o3-std-image-to-video' },
    'reference-to-video': { pro: 'o3-pro-reference-to-video', std: 'o3-std-reference-to-video' },
    'video-edit': { pro: 'o3-pro-video-edit', std: 'o3-std-video-edit' },
  },
};

/** Every upstream type, in the seed's order (used by the simulator and tests). */
export const KLING3API_ALL_TASK_TYPES: readonly Kling3apiTaskType[] = [
  'pro-text-to-video',
  'pro-image-to-video',
  'std-text-to-video',
  'std-image-to-video',
  'o3-pro-text-to-video',
  'o3-pro-image-to-video',
  'o3-pro-reference-to-video',
  'o3-pro-video-edit',
  'o3-std-text-to-video',
  'o3-std-image-to-video',
  'o3-std-reference-to-video',
  'o3-std-video-edit',
];

/** The upstream type for a request, or `undefined` when kling3api does not serve it. */
export function kling3apiTaskTypeFor(model: Model, quality: Quality, operation: Operation): Kling3apiTaskType | undefined {
  return KLING3API_TASK_TYPES[model]?.[operation]?.[quality];
}

/** Kling 3.0 (`n75…` ids) or Kling Video O3 (`n71…` ids). */
export function isKling3apiO3Type(type: Kling3apiTaskType): boolean {
  return type.startsWith('o3-');
}

/** Seed 004 "Request Body": "max 2000 chars" (Freepik and the legacy API take 2500: SPEC §3). */
export const KLING3API_MAX_PROMPT_LENGTH = 2000;
/** Seed 004 "Request Body": images "O3 reference-to-video, max 7". */
export const KLING3API_MAX_REFERENCE_IMAGES = 7;

// Prompt is required on every type: the seed's INVALID_PROMPT reads "invalid or empty".
const prompt: FieldRule = { required: true, maxLength: KLING3API_MAX_PROMPT_LENGTH };
// The seed gives no length limit for the negative prompt; the canonical 2500 caps it.
const negativePrompt: FieldRule = {};
const duration: FieldRule = { min: 3, max: 15 };
// No `auto`: seed 004 lists 16:9, 9:16, 1:1 only.
const aspectRatio: FieldRule = { values: ['16:9', '9:16', '1:1'] };
// "Prompt adherence (0-1, Kling 3.0 only)": narrower than Freepik's 0-2, absent on O3.
const cfgScale: FieldRule = { min: 0, max: 1 };
// `sound` is listed in the request body without a type restriction (unlike cfg_scale and
// images, which the seed restricts explicitly), so every generating type takes it. Video
// edit keeps or drops the source's sound instead (`keep_original_sound`).
const audio: FieldRule = { values: [true, false] };
const startImage: FieldRule = { required: true };
const endImage: FieldRule = {};
const referenceImages: FieldRule = { maxItems: KLING3API_MAX_REFERENCE_IMAGES };
const referenceVideo: FieldRule = {};
const sourceVideo: FieldRule = { required: true };
const keepOriginalSound: FieldRule = { values: [true, false] };

function upstreamOf(types: Record<Quality, Kling3apiTaskType>): string {
  return `POST /api/generate type=${types.pro}|${types.std}`;
}

function offering(
  model: Model,
  operation: Operation,
  fields: Offering['fields'],
  rules: Pick<Offering, 'requiredOneOf' | 'check' | 'unsupportedHints'> = {},
): Offering {
  const types = KLING3API_TASK_TYPES[model]?.[operation];
  if (!types) throw new Error(`kling3api has no type for ${model} ${operation}`);
  const { check, ...groups } = rules;
  return {
    model,
    qualities: ['pro', 'std'],
    operation,
    upstream: upstreamOf(types),
    fields,
    ...groups,
    // Seed 004's INVALID_PROMPT: "The prompt is invalid or empty" on every type.
    check: (request, explicit) => [...blankPromptReasons(request), ...(check?.(request, explicit) ?? [])],
  };
}

/**
 * Reference-to-video needs something to refer to: a video, images, or both (seed 004 "Request
 * Body"). A group, not a check of its own, so that `/v1/models` lists it as `required_one_of`.
 */
const REFERENCE_INPUTS: Offering['requiredOneOf'] = [['reference_images', 'reference_video_url']];

/**
 * A video edit is not silent video: the source's sound stays or goes by `keep_original_sound`,
 * whose default the seed does not give. So an explicit `audio`, `true` or `false`, is refused
 * with this hint (an `audio: false` would otherwise be taken as the silent video an offering
 * with no audio rule makes, and dropped unsaid).
 */
const EDIT_AUDIO_HINT = "keep_original_sound keeps or drops the source video's sound";

/** Everything kling3api.com serves. Read by validation, quotes, `/v1/models` and the router. */
export const KLING3API_OFFERINGS: readonly Offering[] = [
  offering('kling-v3', 'text-to-video', {
    prompt,
    negative_prompt: negativePrompt,
    duration,
    aspect_ratio: aspectRatio,
    cfg_scale: cfgScale,
    audio,
  }),
  offering('kling-v3', 'image-to-video', {
    prompt,
    negative_prompt: negativePrompt,
    duration,
    aspect_ratio: aspectRatio,
    cfg_scale: cfgScale,
    audio,
    start_image_url: startImage,
    end_image_url: endImage,
  }),
  offering('kling-v3-omni', 'text-to-video', {
    prompt,
    negative_prompt: negativePrompt,
    duration,
    aspect_ratio: aspectRatio,
    audio,
  }),
  offering('kling-v3-omni', 'image-to-video', {
    prompt,
    negative_prompt: negativePrompt,
    duration,
    aspect_ratio: aspectRatio,
    audio,
    start_image_url: startImage,
    end_image_url: endImage,
  }),
  offering(
    'kling-v3-omni',
    'reference-to-video',
    {
      prompt,
      negative_prompt: negativePrompt,
      duration,
      aspect_ratio: aspectRatio,
      audio,
      reference_images: referenceImages,
      reference_video_url: referenceVideo,
    },
    { requiredOneOf: REFERENCE_INPUTS },
  ),
  // Video edit: duration is "auto" (seed 004 "Kling Video O3" table), and the output follows
  // the source video's frame, so neither duration nor aspect_ratio has a rule: a caller who
  // sets one gets a capability miss rather than a silently ignored field.
  offering('kling-v3-omni', 'video-edit', {
    prompt,
    negative_prompt: negativePrompt,
    video_url: sourceVideo,
    keep_original_sound: keepOriginalSound,
  }, { unsupportedHints: { audio: EDIT_AUDIO_HINT } }),
];
