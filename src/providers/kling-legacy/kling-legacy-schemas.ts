/**
 * The legacy Kling-API on the wire: the create bodies and model names (generated from
 * openapi/kling-legacy.yaml), and loose zod for what it answers: the `{code, message, request_id, data}`
 * envelope (seed 002 "Get task") and the task object, which is also the callback body
 * (official "Callback Protocol", legacy design). Deliberately tolerant: unknown keys pass,
 * numbers may come as strings, absent fields are `undefined`.
 */
import { z } from 'zod';
import type { components } from './kling-legacy-api.generated.js';

/** Every schema of openapi/kling-legacy.yaml, for the enums a create body is built from. */
export type KlingLegacyWireSchemas = components['schemas'];
export type KlingLegacyText2VideoBody = KlingLegacyWireSchemas['Text2VideoRequest'];
export type KlingLegacyImage2VideoBody = KlingLegacyWireSchemas['Image2VideoRequest'];
export type KlingLegacyVideoExtendBody = KlingLegacyWireSchemas['VideoExtendRequest'];
export type KlingLegacyLipSyncBody = KlingLegacyWireSchemas['LipSyncRequest'];
export type KlingLegacyImageGenerationBody = KlingLegacyWireSchemas['ImageGenerationRequest'];
export type KlingLegacyVirtualTryOnBody = KlingLegacyWireSchemas['VirtualTryOnRequest'];
/** Any create body the adapter sends. */
export type KlingLegacyCreateBody =
  | KlingLegacyText2VideoBody
  | KlingLegacyImage2VideoBody
  | KlingLegacyVideoExtendBody
  | KlingLegacyLipSyncBody
  | KlingLegacyImageGenerationBody
  | KlingLegacyVirtualTryOnBody;
/** Upstream `model_name` of text2video / image2video. */
export type KlingLegacyVideoModelName = KlingLegacyWireSchemas['VideoModelName'];
/** Upstream `model_name` of images/generations. */
export type KlingLegacyImageModelName = KlingLegacyWireSchemas['ImageModelName'];
/** Upstream `model_name` of images/kolors-virtual-try-on. */
export type KlingLegacyTryOnModelName = KlingLegacyWireSchemas['TryOnModelName'];

const idString = z.union([z.string(), z.number()]).transform((value) => String(value));
const numeric = z.union([z.number(), z.string()]).transform((value) => Number(value));
/**
 * A field that only informs (a message, an echo, a timestamp): read when it has a usable type,
 * else absent. A reseller that types one differently must not make a finished task unreadable.
 */
function informational<T extends z.ZodType>(schema: T) {
  return schema.nullish().catch(undefined);
}

/** One generated video: `id` feeds video-extend and lip-sync, `duration` is seconds as a string. */
export const KlingLegacyVideoResult = z.looseObject({
  id: informational(idString),
  url: informational(z.string()),
  duration: informational(z.union([z.string(), z.number()])),
});

/** One generated image. */
export const KlingLegacyImageResult = z.looseObject({
  index: informational(numeric),
  url: informational(z.string()),
});

/** A task as the query, the create answer and the callback carry it. */
export const KlingLegacyTask = z.looseObject({
  task_id: idString,
  // Not a word (a number, an object): kept as an unknown status (SPEC §2), never success.
  task_status: informational(idString),
  task_status_msg: informational(idString),
  task_info: informational(z.looseObject({ external_task_id: informational(idString) })),
  created_at: informational(numeric),
  updated_at: informational(numeric),
  task_result: z
    .looseObject({
      videos: z.array(KlingLegacyVideoResult).nullish(),
      images: z.array(KlingLegacyImageResult).nullish(),
    })
    .nullish(),
  /** Units charged, a decimal string in the official callback (a number in some aggregators). */
  final_unit_deduction: informational(z.union([z.string(), z.number()])),
});
export type KlingLegacyTask = z.infer<typeof KlingLegacyTask>;

/** The envelope of every answer. `code` 0 is success; `message` and `request_id` only inform. */
export const KlingLegacyEnvelope = z.looseObject({
  code: z.union([z.number(), z.string()]).nullish(),
  message: informational(z.string()),
  request_id: informational(idString),
  data: z.unknown().optional(),
});
export type KlingLegacyEnvelope = z.infer<typeof KlingLegacyEnvelope>;

/**
 * An error answer: the envelope with a non-zero `code` (official "Error Code" table). Each field
 * is read on its own, so an odd `message` does not hide the code and the other way round.
 */
export const KlingLegacyErrorBody = z.looseObject({
  code: z.union([z.number(), z.string()]).nullish().catch(undefined),
  message: z.string().nullish().catch(undefined),
  /**
   * The OpenAI form an aggregator answers its own refusals with (a key it refuses, a quota spent):
   * `{error: {message, type, code}}`.
   */
  error: z
    .looseObject({ message: z.string().nullish().catch(undefined), code: z.union([z.number(), z.string()]).nullish().catch(undefined) })
    .nullish()
    .catch(undefined),
});
export type KlingLegacyErrorBody = z.infer<typeof KlingLegacyErrorBody>;
