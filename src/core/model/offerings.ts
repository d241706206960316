/**
 * What a provider serves, as data: offerings (model, qualities, operation) and the limits on each
 * canonical field. Declared once per provider; read by validation, quotes, `/v1/models` and the
 * router.
 */
import type { CapabilityField, Model, Operation, Quality, VideoRequest } from './canonical.js';

/** Limits on one canonical field for one offering. A field without a rule is not accepted. */
export interface FieldRule {
  /** The offering cannot run without it. */
  required?: boolean;
  /** Allowed values (durations in seconds, aspect ratios, booleans). */
  values?: readonly (string | number | boolean)[];
  /** Numeric range, inclusive. */
  min?: number;
  max?: number;
  /** Longest string. */
  maxLength?: number;
  /** Most array items. */
  maxItems?: number;
}

/**
 * One thing a provider serves: a model, at some qualities, for one operation, and the canonical
 * fields it takes with their limits. Declared once per provider, read by validation, quotes,
 * `/v1/models` and the router.
 */
export interface Offering {
  model: Model;
  qualities: readonly Quality[];
  operation: Operation;
  /** Upstream route or type this maps to, for `/v1/models` and logs (e.g. `POST /v1/ai/video/kling-v3-pro`). */
  upstream: string;
  fields: Partial<Record<CapabilityField, FieldRule>>;
  /**
   * Groups of fields of which the offering needs at least one each (`[['prompt', 'multi_shot']]`):
   * required as a group where no one of them is. Checked with the fields, and listed in `/v1/models`.
   */
  requiredOneOf?: readonly (readonly CapabilityField[])[];
  /**
   * Rules across fields that the table cannot say; each string is a reason the request is not
   * served. `explicit` holds the fields the caller wrote (the rest are defaults).
   */
  check?: (request: VideoRequest, explicit: ReadonlySet<string>) => string[];
  /**
   * What to say after "field is not supported" for a field the offering has no rule for, where
   * another field does what the caller asked (`keep_original_sound` for a video edit's `audio`).
   * An explicit `audio: false` with a hint is refused too: the other field decides the sound.
   */
  unsupportedHints?: Partial<Record<CapabilityField, string>>;
  /** What the offering will do differently from defaults the caller did not write (shown on the task). */
  warnings?: (request: VideoRequest, explicit: ReadonlySet<string>) => string[];
}

/**
 * The reason a prompt of white space only gives where an upstream takes none as a prompt
 * (kling3api's `INVALID_PROMPT`, "invalid or empty"; the legacy API's 1201 "prompt is required"):
 * sent, it was a `202` and a failed task; as a reason, routing looks elsewhere, and a request no
 * other provider serves is a `422` naming the prompt. A `422` quotes it after the provider's
 * name, so it names the model and operation.
 */
export function blankPromptReasons(request: VideoRequest): string[] {
  return request.prompt !== undefined && isBlankText(request.prompt) ? [`prompt is blank; ${request.model} ${request.operation} needs a prompt`] : [];
}

/** White space and invisible format characters (zero-width spaces and joiners, a byte-order mark, soft hyphens). */
const INVISIBLE = /[\p{White_Space}\p{Cf}]/gu;

/** A text that shows nothing: empty, white space, or characters that are never drawn. */
export function isBlankText(text: string): boolean {
  return text.replace(INVISIBLE, '') === '';
}
