/**
 * What Freepik serves (SPEC §3): Kling 3 and Kling 3 Omni, Pro and Standard, on three endpoint
 * families. Upstream: `openapi/freepik.yaml`, written from `../shared/seeds/001_*.txt` and
 * `003_*.txt`. Each offering lists exactly the canonical fields its endpoint's schema takes; a
 * field without a rule is a capability miss, never a silent drop.
 */
import type { VideoRequest } from '../../core/model/canonical.js';
import type { FieldRule, Offering } from '../../core/model/offerings.js';

/**
 * The three families of Freepik task endpoints. A task is created at `<family>-<quality>` and
 * polled at `<family>/<task-id>`; the family is kept on the task (`ref.tracking.family`).
 */
export const FREEPIK_STATUS_FAMILIES = [
  '/v1/ai/video/kling-v3',
  '/v1/ai/video/kling-v3-omni',
  '/v1/ai/reference-to-video/kling-v3-omni',
] as const;
/** One of `FREEPIK_STATUS_FAMILIES`. */
export type FreepikStatusFamily = (typeof FREEPIK_STATUS_FAMILIES)[number];

export function isFreepikStatusFamily(value: unknown): value is FreepikStatusFamily {
  return typeof value === 'string' && (FREEPIK_STATUS_FAMILIES as readonly string[]).includes(value);
}

/**
 * The families whose task list (`GET <family>`) documents paging (`page`, `page_size` ≤ 100):
 * only "Kling 3 Omni Reference-to-Video - List tasks" (seed 001). The Kling 3 list (seed 000)
 * and the Kling 3 Omni list (seed 001) take no parameters and return "the list of all" tasks.
 */
export const FREEPIK_PAGED_LIST_FAMILIES: ReadonlySet<FreepikStatusFamily> = new Set<FreepikStatusFamily>([
  '/v1/ai/reference-to-video/kling-v3-omni',
]);

/** Which request schema an offering's endpoint takes (the `openapi/freepik.yaml` schema names). */
export type FreepikRequestSchema = 'kling-v3-request' | 'kling-v3-omni-request' | 'kling-v3-omni-video-reference-request';

/** A Freepik create endpoint, for both qualities. */
export interface FreepikEndpoint {
  /** Request body schema in `openapi/freepik.yaml`. */
  schema: FreepikRequestSchema;
  /** Where tasks created here are polled. The create path is `<family>-<quality>`. */
  family: FreepikStatusFamily;
  /** `Offering.upstream` of every offering on this endpoint. */
  upstream: string;
}

function endpoint(schema: FreepikRequestSchema, family: FreepikStatusFamily): FreepikEndpoint {
  return { schema, family, upstream: `POST ${family}-{pro|std}` };
}

/** The three create endpoints, by request schema. */
export const FREEPIK_ENDPOINTS: Readonly<Record<FreepikRequestSchema, FreepikEndpoint>> = {
  'kling-v3-request': endpoint('kling-v3-request', '/v1/ai/video/kling-v3'),
  'kling-v3-omni-request': endpoint('kling-v3-omni-request', '/v1/ai/video/kling-v3-omni'),
  'kling-v3-omni-video-reference-request': endpoint(
    'kling-v3-omni-video-reference-request',
    '/v1/ai/reference-to-video/kling-v3-omni',
  ),
};

/** The endpoint an offering of this provider maps to; throws for an offering that is not Freepik's. */
export function freepikEndpointOf(offering: Offering): FreepikEndpoint {
  const found = Object.values(FREEPIK_ENDPOINTS).find((candidate) => candidate.upstream === offering.upstream);
  if (!found) throw new Error(`not a Freepik offering: ${offering.upstream}`);
  return found;
}

// seed 001, `kling-v3-duration`: the string enum '3'..'15'.
const DURATIONS: readonly number[] = Array.from({ length: 13 }, (_, index) => index + 3);
// seed 001, `kling-v3-aspect-ratio` and `kling-v3-omni-aspect-ratio`.
const KLING_V3_ASPECT_RATIOS = ['16:9', '9:16', '1:1'] as const;
const OMNI_ASPECT_RATIOS = ['16:9', '9:16', '1:1', 'auto'] as const;

const PROMPT: FieldRule = { maxLength: 2500 };
const DURATION: FieldRule = { values: DURATIONS };
const AUDIO: FieldRule = { values: [true, false] };
// The schemas' descriptions: "Maximum 2 voices per task".
const VOICES: FieldRule = { maxItems: 2 };
// `multi_prompt.maxItems: 6` in both video schemas.
const SHOTS: FieldRule = { maxItems: 6 };
// `cfg_scale` minimum 0, maximum 2 (the prose says 0-1; the schema wins).
const CFG: FieldRule = { min: 0, max: 2 };

/** Seed 001, `kling-v3-request.prompt`: "Required for text-to-video mode or when not using multi_prompt". */
const PROMPT_OR_SHOTS: Offering['requiredOneOf'] = [['prompt', 'multi_shot']];

/**
 * Kling 3 shots carry their own durations (`kling-v3-multi-prompt-item.duration`, '3'..'15';
 * the overview: "each shot must be at least 3 seconds", total ≤ 15 s). Shots without
 * durations are a miss rather than split evenly: the caller decides how long each scene is.
 */
function checkKlingV3Shots(request: VideoRequest): string[] {
  const shots = request.multi_shot;
  if (!shots) return [];
  const reasons: string[] = [];
  if (shots.some((shot) => shot.duration === undefined)) {
    reasons.push('multi_shot on kling-v3 needs a duration (3-15 s) on every shot');
    return reasons;
  }
  if (shots.some((shot) => (shot.duration ?? 0) < 3)) {
    reasons.push('multi_shot on kling-v3 needs durations of at least 3 s each');
  }
  const total = shots.reduce((sum, shot) => sum + (shot.duration ?? 0), 0);
  if (request.duration !== undefined && request.duration !== total) {
    reasons.push(`duration ${request.duration} differs from the shots' total of ${total} s`);
  }
  return reasons;
}

/**
 * Kling 3 Omni shots are plain strings (`kling-v3-omni-request.multi_prompt: string[]`): a shot
 * duration cannot be sent, so it is a miss, not dropped. The Omni prompt description also says
 * "either prompt or multi_prompt must be provided, but not both"; that is applied to every
 * Omni mode rather than guessing which one tolerates both.
 */
function checkOmniShots(request: VideoRequest): string[] {
  const shots = request.multi_shot;
  if (!shots) return [];
  const reasons: string[] = [];
  if (shots.some((shot) => shot.duration !== undefined)) {
    reasons.push('multi_shot on kling-v3-omni takes no per-shot durations (set duration for the whole video)');
  }
  if (request.prompt !== undefined) {
    // Opening with a field's name, as every reason about fields does (a `422` lists it under `prompt`).
    reasons.push('prompt and multi_shot together: kling-v3-omni takes one or the other, not both');
  }
  return reasons;
}

/** `kling-v3-omni-request.image_urls`: "Maximum 4 total (elements + reference images)". */
function checkOmniReferenceCount(request: VideoRequest): string[] {
  const total = (request.reference_images?.length ?? 0) + (request.elements?.length ?? 0);
  return total > 4 ? [`reference_images and elements together: kling-v3-omni takes at most 4; got ${total}`] : [];
}

/** `kling-v3-omni-aspect-ratio`: `auto` matches the input image, "image-to-video only". */
function checkOmniAutoAspect(request: VideoRequest): string[] {
  return request.aspect_ratio === 'auto' && request.start_image_url === undefined
    ? ['aspect_ratio "auto" on kling-v3-omni needs start_image_url (it matches the input image)']
    : [];
}

const klingV3 = FREEPIK_ENDPOINTS['kling-v3-request'];
const omni = FREEPIK_ENDPOINTS['kling-v3-omni-request'];
const omniReference = FREEPIK_ENDPOINTS['kling-v3-omni-video-reference-request'];

/** seed 001, "Kling 3 Standard - Generate video", schema `kling-v3-request`. */
const KLING_V3_FIELDS: Offering['fields'] = {
  prompt: PROMPT,
  negative_prompt: PROMPT,
  duration: DURATION,
  aspect_ratio: { values: KLING_V3_ASPECT_RATIOS },
  cfg_scale: CFG,
  multi_shot: SHOTS,
  elements: {},
  audio: AUDIO,
  voice_ids: VOICES,
};

/** seed 001, "Kling 3 Omni Pro - Generate video from text or image", schema `kling-v3-omni-request`. */
const OMNI_FIELDS: Offering['fields'] = {
  prompt: PROMPT,
  duration: DURATION,
  multi_shot: SHOTS,
  elements: { maxItems: 4 },
  audio: AUDIO,
  voice_ids: VOICES,
};

/** Reference images without a video: the Omni video endpoint's `image_urls` (seed 001). */
const OMNI_REFERENCE_IMAGES: Offering = {
  model: 'kling-v3-omni',
  qualities: ['pro', 'std'],
  operation: 'reference-to-video',
  upstream: omni.upstream,
  fields: {
    ...OMNI_FIELDS,
    aspect_ratio: { values: OMNI_ASPECT_RATIOS },
    reference_images: { required: true, maxItems: 4 },
    start_image_url: {},
    end_image_url: {},
  },
  requiredOneOf: PROMPT_OR_SHOTS,
  check: (request) => [
    ...checkOmniShots(request),
    ...checkOmniReferenceCount(request),
    ...checkOmniAutoAspect(request),
  ],
};

/** Every Freepik offering. Order matters where two serve the same (model, operation): the first that fits wins. */
export const FREEPIK_OFFERINGS: readonly Offering[] = [
  {
    model: 'kling-v3',
    qualities: ['pro', 'std'],
    operation: 'text-to-video',
    upstream: klingV3.upstream,
    fields: KLING_V3_FIELDS,
    requiredOneOf: PROMPT_OR_SHOTS,
    check: (request) => [...checkKlingV3Shots(request)],
  },
  {
    model: 'kling-v3',
    qualities: ['pro', 'std'],
    operation: 'image-to-video',
    upstream: klingV3.upstream,
    fields: { ...KLING_V3_FIELDS, start_image_url: { required: true }, end_image_url: {} },
    requiredOneOf: PROMPT_OR_SHOTS,
    check: (request) => [...checkKlingV3Shots(request)],
  },
  {
    model: 'kling-v3-omni',
    qualities: ['pro', 'std'],
    operation: 'text-to-video',
    upstream: omni.upstream,
    // `auto` needs an input image, which text-to-video has none of.
    fields: { ...OMNI_FIELDS, aspect_ratio: { values: KLING_V3_ASPECT_RATIOS }, reference_images: { maxItems: 4 } },
    requiredOneOf: PROMPT_OR_SHOTS,
    check: (request) => [...checkOmniShots(request), ...checkOmniReferenceCount(request)],
  },
  {
    model: 'kling-v3-omni',
    qualities: ['pro', 'std'],
    operation: 'image-to-video',
    upstream: omni.upstream,
    fields: {
      ...OMNI_FIELDS,
      aspect_ratio: { values: OMNI_ASPECT_RATIOS },
      start_image_url: { required: true },
      end_image_url: {},
      reference_images: { maxItems: 4 },
    },
    requiredOneOf: PROMPT_OR_SHOTS,
    check: (request) => [...checkOmniShots(request), ...checkOmniReferenceCount(request)],
  },
  {
    // seed 001/003, "Kling 3 Omni - Video-to-video generation", schema `kling-v3-omni-video-reference-request`.
    model: 'kling-v3-omni',
    qualities: ['pro', 'std'],
    operation: 'reference-to-video',
    upstream: omniReference.upstream,
    fields: {
      reference_video_url: { required: true },
      start_image_url: {},
      prompt: PROMPT,
      negative_prompt: PROMPT,
      duration: DURATION,
      aspect_ratio: { values: OMNI_ASPECT_RATIOS },
      cfg_scale: CFG,
    },
    check: checkOmniAutoAspect,
  },
  OMNI_REFERENCE_IMAGES,
];
