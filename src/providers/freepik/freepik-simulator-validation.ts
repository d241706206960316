/**
 * What the Freepik simulator accepts: strict zod mirrors of the request schemas in
 * `openapi/freepik.yaml` (seed 001 `kling-v3-request`, `kling-v3-omni-request`; seeds 001/003
 * `kling-v3-omni-video-reference-request`) plus the rules their descriptions state. Strict on
 * purpose, unlike the adapter's reply readers: the simulator is there to catch the adapter
 * sending anything Freepik would refuse.
 */
import { z } from 'zod';

const duration = z.enum(['3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15']);
const prompt = z.string().max(2500);
// Image fields are plain `type: string` in the seed; only `webhook_url` and `video_url` are `format: uri`.
const imageUrl = z.string().min(1);
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

/** `POST /v1/ai/video/kling-v3-{pro|std}`. */
export const KlingV3RequestSchema = z
  .strictObject({
    webhook_url: z.url().optional(),
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
    // "Maximum 6 shots, total duration cannot exceed 15 seconds."
    const total = (body.multi_prompt ?? []).reduce((sum, shot) => sum + Number(shot.duration ?? 0), 0);
    if (total > 15) {
      ctx.addIssue({ code: 'custom', path: ['multi_prompt'], message: `shots add up to ${total} s; at most 15 s` });
    }
  });

/** `POST /v1/ai/video/kling-v3-omni-{pro|std}`. */
export const KlingV3OmniRequestSchema = z
  .strictObject({
    webhook_url: z.url().optional(),
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
    const hasImage = body.image_url !== undefined || body.start_image_url !== undefined;
    // "Image-to-video: Either prompt or multi_prompt must be provided, but not both."
    if (hasImage && body.prompt !== undefined && body.multi_prompt !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['multi_prompt'], message: 'give prompt or multi_prompt, not both' });
    }
    // `image_urls`: "Maximum 4 total (elements + reference images)."
    const references = (body.image_urls?.length ?? 0) + (body.elements?.length ?? 0);
    if (references > 4) {
      ctx.addIssue({ code: 'custom', path: ['image_urls'], message: `${references} images and elements; at most 4 together` });
    }
    // `kling-v3-omni-aspect-ratio`: `auto` is "image-to-video only".
    if (body.aspect_ratio === 'auto' && !hasImage) {
      ctx.addIssue({ code: 'custom', path: ['aspect_ratio'], message: 'auto needs image_url or start_image_url' });
    }
  });

/** `POST /v1/ai/reference-to-video/kling-v3-omni-{pro|std}`. */
export const KlingV3OmniVideoReferenceRequestSchema = z.strictObject({
  webhook_url: z.url().optional(),
  prompt: prompt.optional(),
  image_url: imageUrl.optional(),
  video_url: z.url(),
  duration: duration.optional(),
  aspect_ratio: z.enum(['auto', '16:9', '9:16', '1:1']).optional(),
  cfg_scale: z.number().min(0).max(2).optional(),
  negative_prompt: prompt.optional(),
});

/** One entry of the problem form's `invalid_params`. */
export interface InvalidParam {
  name: string;
  reason: string;
}

/** The `invalid_params` Freepik would list for a body `schema` refuses; empty when it is accepted. */
export function invalidParamsOf(schema: z.ZodType, body: unknown): InvalidParam[] {
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
