/**
 * Canonical request → Freepik create call: `POST /v1/ai/video/kling-v3-{pro|std}`,
 * `POST /v1/ai/video/kling-v3-omni-{pro|std}` or `POST /v1/ai/reference-to-video/kling-v3-omni-{pro|std}`
 * (`openapi/freepik.yaml`, from seeds 001 and 003). Pure: no HTTP, no clock.
 */
import { CAPABILITY_FIELDS, type VideoRequest } from '../../core/model/canonical.js';
import type { Offering } from '../../core/model/offerings.js';
import { compact, toHttpUri } from '../../core/upstream/upstream-body.js';
import { freepikEndpointOf, type FreepikStatusFamily } from './freepik-capabilities.js';
import type {
  FreepikCreateBody,
  FreepikDuration,
  FreepikKlingV3AspectRatio,
  FreepikKlingV3Body,
  FreepikOmniAspectRatio,
  FreepikOmniBody,
  FreepikOmniReferenceBody,
} from './freepik-schemas.js';

/** One create call to Freepik, before base URL, auth and `webhook_url`. */
export interface FreepikRequest {
  /** `<family>-<quality>`, e.g. `/v1/ai/video/kling-v3-omni-pro`. */
  path: string;
  body: FreepikCreateBody;
  /** Where the task will be polled: `<family>/<task-id>`. */
  statusFamily: FreepikStatusFamily;
}

const DURATIONS: readonly FreepikDuration[] = ['3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15'];
const KLING_V3_ASPECT_RATIOS: readonly FreepikKlingV3AspectRatio[] = ['16:9', '9:16', '1:1'];
const OMNI_ASPECT_RATIOS: readonly FreepikOmniAspectRatio[] = ['auto', '16:9', '9:16', '1:1'];

/** `kling-v3-duration`: whole seconds 3-15 as the string enum. */
export function toFreepikDuration(seconds: number): FreepikDuration {
  const value = DURATIONS.find((duration) => duration === String(seconds));
  if (!value) throw new Error(`Freepik takes durations of 3-15 whole seconds, not ${seconds}`);
  return value;
}

function oneOf<T extends string>(allowed: readonly T[], value: string | undefined, field: string): T | undefined {
  if (value === undefined) return undefined;
  const found = allowed.find((candidate) => candidate === value);
  if (!found) throw new Error(`${field} "${value}" is not one of ${allowed.join(', ')}`);
  return found;
}

/** Elements: `{frontal_image_url, reference_image_urls}` in both schemas; an empty reference list is left out. */
function toFreepikElements(elements: VideoRequest['elements']) {
  return elements?.map((element) =>
    compact({
      frontal_image_url: element.frontal_image_url,
      reference_image_urls: element.reference_image_urls.length > 0 ? element.reference_image_urls : undefined,
    }),
  );
}

/**
 * seed 001, `kling-v3-request`. Shots become `multi_prompt: [{prompt, duration: "<n>"}]` with
 * `shot_type: "customize"`; the capability check has already required a duration on every shot.
 */
function toKlingV3Body(request: VideoRequest): FreepikKlingV3Body {
  const shots = request.multi_shot;
  return compact<FreepikKlingV3Body>({
    prompt: request.prompt,
    negative_prompt: request.negative_prompt,
    start_image_url: request.start_image_url,
    end_image_url: request.end_image_url,
    multi_prompt: shots?.map((shot) => {
      if (shot.duration === undefined) throw new Error('kling-v3 multi_shot needs a duration on every shot');
      return { prompt: shot.prompt, duration: toFreepikDuration(shot.duration) };
    }),
    shot_type: shots ? 'customize' : undefined,
    elements: toFreepikElements(request.elements),
    generate_audio: request.audio,
    voice_ids: request.voice_ids,
    aspect_ratio: oneOf(KLING_V3_ASPECT_RATIOS, request.aspect_ratio, 'aspect_ratio'),
    duration: request.duration === undefined ? undefined : toFreepikDuration(request.duration),
    cfg_scale: request.cfg_scale,
  });
}

/**
 * seed 001, `kling-v3-omni-request`. The start frame always goes in `image_url`, which the
 * schema calls "Required for image-to-video mode" (and which `aspect_ratio: auto` matches);
 * with an end frame it goes in `start_image_url` too, the field to "use together with
 * end_image_url". So neither reading of the schema sees image-to-video without `image_url`
 * nor an end frame without its start frame. Shots are plain strings; reference images are
 * `image_urls`.
 */
function toOmniBody(request: VideoRequest): FreepikOmniBody {
  const shots = request.multi_shot;
  const framePair = request.end_image_url !== undefined;
  return compact<FreepikOmniBody>({
    prompt: request.prompt,
    multi_prompt: shots?.map((shot) => {
      if (shot.duration !== undefined) throw new Error('kling-v3-omni multi_shot takes no per-shot durations');
      return shot.prompt;
    }),
    shot_type: shots ? 'customize' : undefined,
    image_url: request.start_image_url,
    start_image_url: framePair ? request.start_image_url : undefined,
    end_image_url: request.end_image_url,
    image_urls: request.reference_images,
    elements: toFreepikElements(request.elements),
    generate_audio: request.audio,
    voice_ids: request.voice_ids,
    aspect_ratio: oneOf(OMNI_ASPECT_RATIOS, request.aspect_ratio, 'aspect_ratio'),
    duration: request.duration === undefined ? undefined : toFreepikDuration(request.duration),
  });
}

/**
 * seed 001/003, `kling-v3-omni-video-reference-request`: the reference video is `video_url`
 * (`@Video1`), `format: uri`, so it is sent as the URI of the URL the caller gave (a space in it
 * as `%20`). The image fields are plain strings in every schema and go as written.
 */
function toOmniReferenceBody(request: VideoRequest): FreepikOmniReferenceBody {
  if (request.reference_video_url === undefined) throw new Error('reference-to-video needs reference_video_url');
  return compact<FreepikOmniReferenceBody>({
    video_url: toHttpUri(request.reference_video_url),
    image_url: request.start_image_url,
    prompt: request.prompt,
    negative_prompt: request.negative_prompt,
    duration: request.duration === undefined ? undefined : toFreepikDuration(request.duration),
    aspect_ratio: oneOf(OMNI_ASPECT_RATIOS, request.aspect_ratio, 'aspect_ratio'),
    cfg_scale: request.cfg_scale,
  });
}

/**
 * The Freepik create call for a request the offering accepted. Throws when the request carries
 * a field the offering has no rule for (other than the `audio` default, which the core reports
 * as a warning): that would be a silent drop, and means the capability table and this mapping
 * disagree.
 */
export function toFreepikRequest(request: VideoRequest, offering: Offering): FreepikRequest {
  const endpoint = freepikEndpointOf(offering);
  for (const field of CAPABILITY_FIELDS) {
    if (request[field] !== undefined && !offering.fields[field] && field !== 'audio') {
      throw new Error(`${field} is not taken by ${offering.upstream}; the capability check should have refused it`);
    }
  }
  const path = `${endpoint.family}-${request.quality}`;
  switch (endpoint.schema) {
    case 'kling-v3-request':
      return { path, body: toKlingV3Body(request), statusFamily: endpoint.family };
    case 'kling-v3-omni-request':
      return { path, body: toOmniBody(request), statusFamily: endpoint.family };
    case 'kling-v3-omni-video-reference-request':
      return { path, body: toOmniReferenceBody(request), statusFamily: endpoint.family };
  }
}
