/**
 * kling3api.com on the wire: the request body and enums (generated from openapi/kling3api.yaml),
 * and loose readers for its answers: `{code, message, data}` envelopes from
 * `POST /api/generate` and `GET /api/status`, and error bodies.
 * Source: shared/seeds/004_1ace3cef13878ba3.txt, "Responses" (both endpoints) and "Error Codes".
 *
 * Deliberately permissive (`.nullish()`, `.loose()`): the upstream is a reseller whose answers
 * may grow fields or drop them, and a reply we can still use must not fail on a detail.
 */
import { z } from 'zod';
import { statedCharge } from '../../core/upstream/remembered-charge.js';
import type { components } from './kling3api-api.generated.js';

/** Body of `POST /api/generate`, generated from openapi/kling3api.yaml: a field outside it does not compile. */
export type Kling3apiGenerateRequest = components['schemas']['GenerateRequest'];
/** An upstream task type, e.g. `pro-text-to-video` or `o3-std-video-edit`. */
export type Kling3apiTaskType = components['schemas']['TaskType'];
/** An error code of the seed's table. */
export type Kling3apiErrorCode = components['schemas']['ErrorCode'];

/**
 * A charge: a number, or a decimal figure as text (resellers are not always careful with JSON
 * types). A blank string is no number (`Number('')` is 0, which would read "not said" as "charged
 * nothing"), nor is `0x10` (`statedCharge`).
 */
const looseNumber = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const number = statedCharge(value);
  if (number === undefined) {
    ctx.addIssue({ code: 'custom', message: 'not a charge' });
    return z.NEVER;
  }
  return number;
});

/** The text of one entry of a list of messages: a string, or an object's `message` / `msg`. */
function entryText(item: unknown): string | undefined {
  if (typeof item === 'string') return item.trim() || undefined;
  if (item === null || typeof item !== 'object') return undefined;
  const { message, msg } = item as { message?: unknown; msg?: unknown };
  const text = typeof message === 'string' ? message : typeof msg === 'string' ? msg : undefined;
  return text?.trim() || undefined;
}

/** A list of messages as one text, joined; `undefined` when no entry has any. */
export function listText(items: readonly unknown[]): string | undefined {
  const parts = items.map(entryText).filter((part): part is string => part !== undefined);
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/**
 * Human text: a string, or what resellers send instead (a number, a list of validation
 * messages, joined). Anything else reads as absent, so an odd message never hides the rest.
 */
const looseText = z
  .union([z.string(), z.number(), z.array(z.unknown())])
  .nullish()
  .transform((value) => {
    if (value === null || value === undefined) return value;
    return Array.isArray(value) ? listText(value) : String(value);
  })
  .catch(undefined)
  .optional();

/** An identifier: a string, or a number sent for one. */
const looseId = z.union([z.string(), z.number().transform(String)]);

/** The envelope around every answer. `code: 200` means success, even inside HTTP 200 (seed 004 "Responses"). */
export const Kling3apiEnvelope = z
  .object({
    code: z.union([z.number(), z.string()]).nullish(),
    message: looseText,
    data: z.unknown().nullish(),
  })
  .loose();
export type Kling3apiEnvelope = z.infer<typeof Kling3apiEnvelope>;

/** `data` of a `POST /api/generate` answer. */
export const Kling3apiGenerateData = z
  .object({
    task_id: looseId.pipe(z.string().min(1)),
    status: z.string().nullish().catch(undefined),
    consumed_credits: looseNumber.nullish().catch(undefined),
  })
  .loose();
export type Kling3apiGenerateData = z.infer<typeof Kling3apiGenerateData>;

/** `data` of a `GET /api/status` answer. */
export const Kling3apiStatusData = z
  .object({
    // Fields only reported, never acted on (`task_id`, `created_at`, `request`, `type`), are
    // read as anything: an epoch `created_at` or a numeric id must not make the answer unusable.
    task_id: z.unknown().optional(),
    // A status that is no string is no known word: the task stays in progress (SPEC §2).
    status: z.string().nullish().catch(undefined),
    consumed_credits: looseNumber.nullish().catch(undefined),
    created_at: z.unknown().optional(),
    request: z.unknown().optional(),
    // The seed documents an array of URLs; a single string is accepted too.
    response: z.union([z.array(z.unknown()), z.string()]).nullish().catch(undefined),
    error_message: looseText,
    type: z.unknown().optional(),
  })
  .loose();
export type Kling3apiStatusData = z.infer<typeof Kling3apiStatusData>;

/** An error nested in the body: `{code, message}`. */
const NestedError = z
  .object({ code: z.union([z.string(), z.number()]).nullish().catch(undefined), message: looseText })
  .loose();

/**
 * An error body. Its shape is not in the seed, so every plausible place for the string code
 * is read: `code` (string), `error` / `error_code` (string), or a nested `error` or `detail`
 * `{code, message}`.
 * Each field is read on its own, so an odd one does not hide the others.
 */
export const Kling3apiErrorBody = z
  .object({
    code: z.union([z.string(), z.number()]).nullish().catch(undefined),
    message: looseText,
    error: z.union([z.string(), NestedError]).nullish().catch(undefined),
    error_code: z.union([z.string(), z.number()]).nullish().catch(undefined),
    error_message: looseText,
    // Where a web framework puts an error: text, `{code, message}`, or a list of `{msg}`.
    detail: z.union([z.string(), NestedError, z.array(z.unknown())]).nullish().catch(undefined),
  })
  .loose();
export type Kling3apiErrorBody = z.infer<typeof Kling3apiErrorBody>;
