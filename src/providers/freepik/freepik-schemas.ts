/**
 * Loose readers for what Freepik sends back: task answers (create, status, webhooks) and error
 * bodies. Deliberately forgiving (`.nullish()`, `.loose()`): an extra or missing field upstream
 * must not turn a finished video into a parse error. Shapes: `openapi/freepik.yaml`
 * (`task-detail`, `get_all_style_transfer_tasks_400_response*`), from seed 001.
 */
import { z } from 'zod';
import { unwrapDataEnvelope } from '../../core/upstream/answer-envelope.js';
import { readJsonBody } from '../../core/upstream/upstream-body.js';
import type { components } from './freepik-api.generated.js';

/** The request bodies the adapter sends, one per create endpoint (generated from `openapi/freepik.yaml`). */
type Schemas = components['schemas'];

/** Body of `POST /v1/ai/video/kling-v3-{pro|std}`. */
export type FreepikKlingV3Body = Schemas['kling-v3-request'];
/** Body of `POST /v1/ai/video/kling-v3-omni-{pro|std}`. */
export type FreepikOmniBody = Schemas['kling-v3-omni-request'];
/** Body of `POST /v1/ai/reference-to-video/kling-v3-omni-{pro|std}`. */
export type FreepikOmniReferenceBody = Schemas['kling-v3-omni-video-reference-request'];
/** Any create body. */
export type FreepikCreateBody = FreepikKlingV3Body | FreepikOmniBody | FreepikOmniReferenceBody;

/** `kling-v3-duration`: seconds as a string enum. */
export type FreepikDuration = Schemas['kling-v3-duration'];
/** `kling-v3-aspect-ratio` (no `auto`). */
export type FreepikKlingV3AspectRatio = Schemas['kling-v3-aspect-ratio'];
/** `kling-v3-omni-aspect-ratio` (with `auto`). */
export type FreepikOmniAspectRatio = Schemas['kling-v3-omni-aspect-ratio'];

/** A task as Freepik reports it (`task-detail`), read loosely. */
export const FreepikTask = z
  .object({
    task_id: z.string().nullish(),
    status: z.string().nullish(),
    // Documented as URL strings; anything else in the list is skipped, not fatal.
    generated: z.array(z.unknown()).nullish().catch(null),
  })
  .loose();
/** A task as Freepik reports it (`task-detail`), read loosely. */
export type FreepikTask = z.infer<typeof FreepikTask>;

/**
 * The task in an answer: `{data: {...}}` as documented for create and status, or a bare task
 * object (how webhook payloads arrive). `undefined` when neither reads as a task.
 */
export function readFreepikTask(body: unknown): FreepikTask | undefined {
  const task = FreepikTask.safeParse(unwrapDataEnvelope(body, 'task_id'));
  return task.success ? task.data : undefined;
}

/** `GET <family>` (seed 000 "Kling 3 - List tasks", seed 001 "... - List tasks"): `{data: [task]}`. */
const FreepikTaskList = z.object({ data: z.array(z.object({ task_id: z.string() }).loose()) }).loose();

/** The task ids of a list answer; `undefined` when it does not read as a list. */
export function readFreepikTaskIds(body: unknown): string[] | undefined {
  const list = FreepikTaskList.safeParse(readJsonBody(body));
  return list.success ? list.data.data.map((task) => task.task_id) : undefined;
}

/** The URLs in `generated`: strings, or objects with a `url` string (tolerated, not documented). */
export function generatedUrls(task: FreepikTask): string[] {
  const urls: string[] = [];
  for (const item of task.generated ?? []) {
    if (typeof item === 'string' && item.length > 0) urls.push(item);
    else if (item && typeof item === 'object' && typeof (item as { url?: unknown }).url === 'string') {
      urls.push((item as { url: string }).url);
    }
  }
  return urls;
}

const InvalidParam = z.object({ name: z.string().nullish(), reason: z.string().nullish() }).loose();
const InvalidParams = z.array(InvalidParam).nullish().catch(null);

/**
 * A Freepik error body: `{message}`, or the problem form with `invalid_params`, which the seed's
 * schema nests under `problem` while its example puts it at the top level. Both are read.
 */
export const FreepikErrorBody = z
  .object({
    message: z.string().nullish().catch(null),
    invalid_params: InvalidParams,
    problem: z
      .object({ message: z.string().nullish().catch(null), invalid_params: InvalidParams })
      .loose()
      .nullish()
      .catch(null),
  })
  .loose();
export type FreepikErrorBody = z.infer<typeof FreepikErrorBody>;

/** Parses an error body; `undefined` when it is not a JSON object. */
export function readFreepikError(body: unknown): FreepikErrorBody | undefined {
  const parsed = readJsonBody(body);
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const result = FreepikErrorBody.safeParse(parsed);
  return result.success ? result.data : undefined;
}
