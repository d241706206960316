/**
 * Canonical request → body of `POST /api/generate`.
 * Source: shared/seeds/004_1ace3cef13878ba3.txt, "Request Body" and the four JSON examples.
 */
import type { CapabilityField, VideoRequest } from '../../core/model/canonical.js';
import type { Offering } from '../../core/model/offerings.js';
import { toHttpUri } from '../../core/upstream/upstream-body.js';
import { kling3apiTaskTypeFor } from './kling3api-capabilities.js';
import type { Kling3apiGenerateRequest, Kling3apiTaskType } from './kling3api-schemas.js';

/**
 * The upstream type for this request on this offering. The quality comes from the request,
 * the model and operation from the offering it matched.
 */
export function kling3apiTaskTypeOf(request: VideoRequest, offering: Offering): Kling3apiTaskType {
  const type = kling3apiTaskTypeFor(offering.model, request.quality, offering.operation);
  if (!type) {
    // The router only hands over requests that matched this offering, so this is a bug.
    throw new Error(`kling3api serves no type for ${offering.model} ${request.quality} ${offering.operation}`);
  }
  return type;
}

/**
 * Builds the upstream body. Pure; the request has already matched `offering`
 * (src/core/capabilities.ts), so every field it sets has a rule there.
 *
 * A field is written only when the offering has a rule for it. That matters for defaults:
 * `resolveRequest` fills `audio`, `duration` and `aspect_ratio` for generating operations,
 * and those are written out explicitly (the canonical defaults equal the upstream's: 5 s,
 * 16:9, sound on), so the body says exactly what will be generated.
 */
export function toKling3apiRequest(request: VideoRequest, offering: Offering): Kling3apiGenerateRequest {
  const accepts = (field: CapabilityField): boolean => offering.fields[field] !== undefined;
  if (request.prompt === undefined) {
    // Prompt is required by every kling3api offering; the capability check stops this earlier.
    throw new Error(`kling3api ${offering.model} ${offering.operation} needs a prompt`);
  }

  const body: Kling3apiGenerateRequest = { type: kling3apiTaskTypeOf(request, offering), prompt: request.prompt };
  if (accepts('negative_prompt') && request.negative_prompt !== undefined) body.negative_prompt = request.negative_prompt;
  if (accepts('duration') && request.duration !== undefined) body.duration = request.duration;
  // `auto` has no rule value here, so it never gets this far; the comparison narrows the type.
  if (accepts('aspect_ratio') && request.aspect_ratio !== undefined && request.aspect_ratio !== 'auto') {
    body.aspect_ratio = request.aspect_ratio;
  }
  // "Image URL for image-to-video tasks" / "End frame image URL (image-to-video only)".
  // `end_image` is the inferred name (see openapi/kling3api.yaml). Every URL goes as the URI of
  // the URL given (a space as `%20`, the host in punycode): the fields are URLs the upstream fetches.
  if (accepts('start_image_url') && request.start_image_url !== undefined) body.image = toHttpUri(request.start_image_url);
  if (accepts('end_image_url') && request.end_image_url !== undefined) body.end_image = toHttpUri(request.end_image_url);
  // "Video URL for reference-to-video or video-edit tasks": one upstream field, two canonical ones.
  if (accepts('reference_video_url') && request.reference_video_url !== undefined) body.video = toHttpUri(request.reference_video_url);
  if (accepts('video_url') && request.video_url !== undefined) body.video = toHttpUri(request.video_url);
  if (accepts('reference_images') && request.reference_images !== undefined) body.images = request.reference_images.map(toHttpUri);
  if (accepts('audio') && request.audio !== undefined) body.sound = request.audio;
  if (accepts('cfg_scale') && request.cfg_scale !== undefined) body.cfg_scale = request.cfg_scale;
  if (accepts('keep_original_sound') && request.keep_original_sound !== undefined) {
    body.keep_original_sound = request.keep_original_sound;
  }
  return body;
}
