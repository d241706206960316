/**
 * Loose zod for what the legacy Kling-API answers: the `{code, message, request_id, data}`
 * envelope (seed 002 "Get task") and the task object, which is also the callback body
 * (official "Callback Protocol", legacy design). Deliberately tolerant: unknown keys pass,
 * numbers may come as strings, absent fields are `undefined`.
 */
import { z } from 'zod';

const idString = z.union([z.string(), z.number()]).transform((value) => String(value));
const numeric = z.union([z.number(), z.string()]).transform((value) => Number(value));

/** One generated video: `id` feeds video-extend and lip-sync, `duration` is seconds as a string. */
export const KlingLegacyVideoResult = z.looseObject({
  id: idString.nullish(),
  url: z.string().nullish(),
  duration: z.union([z.string(), z.number()]).nullish(),
});

/** One generated image. */
export const KlingLegacyImageResult = z.looseObject({
  index: z.number().nullish(),
  url: z.string().nullish(),
});

/** A task as the query, the create answer and the callback carry it. */
export const KlingLegacyTask = z.looseObject({
  task_id: idString,
  task_status: z.string().nullish(),
  task_status_msg: z.string().nullish(),
  task_info: z.looseObject({ external_task_id: z.string().nullish() }).nullish(),
  created_at: numeric.nullish(),
  updated_at: numeric.nullish(),
  task_result: z
    .looseObject({
      videos: z.array(KlingLegacyVideoResult).nullish(),
      images: z.array(KlingLegacyImageResult).nullish(),
    })
    .nullish(),
  /** Units charged, a decimal string in the official callback (a number in some aggregators). */
  final_unit_deduction: z.union([z.string(), z.number()]).nullish(),
});
export type KlingLegacyTask = z.infer<typeof KlingLegacyTask>;

/** The envelope of every answer. `code` 0 is success. */
export const KlingLegacyEnvelope = z.looseObject({
  code: z.union([z.number(), z.string()]).nullish(),
  message: z.string().nullish(),
  request_id: z.string().nullish(),
  data: z.unknown().optional(),
});
export type KlingLegacyEnvelope = z.infer<typeof KlingLegacyEnvelope>;
