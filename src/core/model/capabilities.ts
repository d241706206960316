/**
 * Reads the capability tables providers declare (`Offering`) against a request. The same
 * functions answer validation (`422`), `quote`, `/v1/models` and the router, so they never
 * disagree about what a provider can do.
 */
import {
  CAPABILITY_FIELDS,
  CreateVideoRequest,
  IMAGE_OPERATIONS,
  type CapabilityField,
  type Operation,
  type VideoRequest,
} from './canonical.js';
import type { FieldRule, Offering } from './offerings.js';

/** A request with its defaults applied, and which fields the caller actually wrote. */
export interface ResolvedRequest {
  request: VideoRequest;
  explicit: ReadonlySet<string>;
}

/** Picks the operation from the inputs when the caller did not name one (SPEC §1). */
export function inferOperation(input: CreateVideoRequest): Operation {
  if (input.operation) return input.operation;
  if (input.model.startsWith('kolors-virtual-try-on')) return 'virtual-try-on';
  if (input.lip_sync) return 'lip-sync';
  if (input.video_id) return 'video-extend';
  if (input.video_url) return 'video-edit';
  if (input.reference_video_url || input.reference_images) return 'reference-to-video';
  if (input.start_image_url) return 'image-to-video';
  return 'text-to-video';
}

const GENERATIVE_VIDEO: ReadonlySet<Operation> = new Set(['text-to-video', 'image-to-video', 'reference-to-video']);

/**
 * Applies the canonical defaults: `quality: pro`; for text/image/reference-to-video also
 * `duration: 5` (or the sum of timed shots), `aspect_ratio: 16:9` and `audio: true`.
 * Operations that take no duration (edit, extend, lip-sync, images) get none.
 */
export function resolveRequest(input: CreateVideoRequest): ResolvedRequest {
  const explicit = new Set(Object.keys(input).filter((key) => (input as Record<string, unknown>)[key] !== undefined));
  const operation = inferOperation(input);
  const request: VideoRequest = { ...input, quality: input.quality ?? 'pro', operation };
  if (GENERATIVE_VIDEO.has(operation)) {
    const shots = input.multi_shot;
    const timedShots = shots?.every((shot) => shot.duration !== undefined)
      ? shots.reduce((sum, shot) => sum + (shot.duration ?? 0), 0)
      : undefined;
    request.duration ??= timedShots ?? 5;
    request.aspect_ratio ??= '16:9';
    request.audio ??= true;
  }
  return { request, explicit };
}

/**
 * The request as `offering` will make it, for pricing: an offering with no audio rule makes silent
 * video, so the `audio: true` the canonical default filled in (a warning says it is dropped) is
 * priced as no audio — a price list that charges for sound must not charge it for a silent video.
 */
export function requestAsServed(offering: Offering, request: VideoRequest): VideoRequest {
  if (offering.fields.audio || request.audio !== true) return request;
  return { ...request, audio: false };
}

/** Fields that, when filled by a default the provider cannot honour, are worth a warning. */
const WARN_WHEN_DEFAULT_DROPPED: ReadonlySet<CapabilityField> = new Set(['audio']);

export interface OfferingCheck {
  /** Why the offering cannot serve the request; empty when it can. */
  reasons: string[];
  /** What it will do differently from the defaults. */
  warnings: string[];
}

function describeValue(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : JSON.stringify(value);
}

/**
 * A string's length in characters as JSON Schema's `maxLength` counts them (the providers'
 * OpenAPI documents, and zod's `max` on the API's own schema): Unicode code points, so an emoji
 * is one character, not the two UTF-16 units of `.length`.
 */
export function characterCount(text: string): number {
  let count = text.length;
  for (let i = 0; i < text.length - 1; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        count--;
        i++;
      }
    }
  }
  return count;
}

function checkRule(field: CapabilityField, value: unknown, rule: FieldRule): string | undefined {
  if (rule.values && !Array.isArray(value) && !rule.values.includes(value as string | number | boolean)) {
    return `${field} ${describeValue(value)} is not supported (allowed: ${rule.values.map(describeValue).join(', ')})`;
  }
  if (typeof value === 'number') {
    if (rule.min !== undefined && value < rule.min) return `${field} must be at least ${rule.min}`;
    if (rule.max !== undefined && value > rule.max) return `${field} must be at most ${rule.max}`;
  }
  if (typeof value === 'string' && rule.maxLength !== undefined && value.length > rule.maxLength && characterCount(value) > rule.maxLength) {
    return `${field} is longer than ${rule.maxLength} characters`;
  }
  if (Array.isArray(value) && rule.maxItems !== undefined && value.length > rule.maxItems) {
    return `${field} has ${value.length} items; at most ${rule.maxItems}`;
  }
  return undefined;
}

/** Checks one offering against a request, field by field. */
export function checkOffering(offering: Offering, resolved: ResolvedRequest): OfferingCheck {
  const { request, explicit } = resolved;
  const reasons: string[] = [];
  const warnings: string[] = [];
  if (!offering.qualities.includes(request.quality)) {
    reasons.push(
      `${request.model} ${request.operation} is served at quality ${offering.qualities.join(' or ')}, not ${request.quality}`,
    );
  }
  for (const field of CAPABILITY_FIELDS) {
    const value = request[field];
    const rule = offering.fields[field];
    if (value === undefined) {
      if (rule?.required) reasons.push(`${field} is required for ${request.model} ${request.operation}`);
      continue;
    }
    if (!rule) {
      const hint = offering.unsupportedHints?.[field];
      // Asking for no audio from a provider that only makes silent video is asking for what it
      // does, unless another field decides the sound there (the hint names it).
      if (field === 'audio' && value === false && hint === undefined) continue;
      if (explicit.has(field)) {
        reasons.push(`${field} is not supported for ${request.model} ${request.operation}${hint ? `; ${hint}` : ''}`);
      } else if (WARN_WHEN_DEFAULT_DROPPED.has(field) && value === true) {
        warnings.push(`${field} defaults to true but ${request.model} ${request.operation} here cannot generate it`);
      }
      continue;
    }
    const problem = checkRule(field, value, rule);
    if (problem) reasons.push(problem);
  }
  for (const group of offering.requiredOneOf ?? []) {
    if (group.every((field) => request[field] === undefined)) reasons.push(`${group.join(' or ')} is required for ${request.model} ${request.operation}`);
  }
  reasons.push(...(offering.check?.(request, explicit) ?? []));
  warnings.push(...(offering.warnings?.(request, explicit) ?? []));
  return { reasons, warnings };
}

export interface OfferingMatch {
  offering?: Offering;
  reasons: string[];
  warnings: string[];
}

/** The offering of a provider that serves this request, or every reason none does. */
export function matchOffering(offerings: readonly Offering[], resolved: ResolvedRequest): OfferingMatch {
  const { request } = resolved;
  const candidates = offerings.filter((o) => o.model === request.model && o.operation === request.operation);
  if (candidates.length === 0) {
    const operations = [...new Set(offerings.filter((o) => o.model === request.model).map((o) => o.operation))];
    const detail = operations.length > 0 ? `; it serves ${request.model} for ${operations.join(', ')}` : '';
    return { reasons: [`does not serve ${request.operation} with ${request.model}${detail}`], warnings: [] };
  }
  // When none fits, report the offering that came closest: its reasons are the useful ones.
  // An offering whose required inputs are missing is a poor match for what the caller meant.
  let closest: (OfferingMatch & { score: number }) | undefined;
  for (const offering of candidates) {
    const check = checkOffering(offering, resolved);
    if (check.reasons.length === 0) return { offering, ...check };
    const missingRequired = Object.entries(offering.fields).filter(
      ([field, rule]) => rule?.required && request[field as CapabilityField] === undefined,
    ).length;
    const score = check.reasons.length + 10 * missingRequired;
    if (!closest || score < closest.score) closest = { reasons: check.reasons, warnings: check.warnings, score };
  }
  return closest ? { reasons: closest.reasons, warnings: closest.warnings } : { reasons: [], warnings: [] };
}

const REQUEST_FIELDS: ReadonlySet<string> = new Set(Object.keys(CreateVideoRequest.shape));
/** `checkOffering`'s one reason that does not open with its field's name. */
const QUALITY_REASON = /^\S+ \S+ is served at quality /;

/**
 * The request field a reason is about, when it is about one: every reason of a field opens with
 * the field's name (`duration 12 is not supported …`, `camera_control on kling-v1 needs …`), the
 * quality's excepted. Reasons about no one field (a disabled provider, an operation a model lacks,
 * a budget) have none.
 */
export function fieldOfReason(reason: string): string | undefined {
  if (QUALITY_REASON.test(reason)) return 'quality';
  const first = /^([a-z_]+)(?:\s|$)/.exec(reason)?.[1];
  return first !== undefined && REQUEST_FIELDS.has(first) ? first : undefined;
}

/** Providers' reasons as a capability `422`'s `detail` quotes them: `freepik: …; … | kling3api: …`. */
export function quoteReasons(providers: readonly { provider: string; reasons: readonly string[] }[]): string {
  return providers.map((entry) => `${entry.provider}: ${entry.reasons.join('; ')}`).join(' | ');
}

/** One field some provider cannot serve as asked: `errors[]` of a capability `422`. */
export interface FieldRefusal {
  path: string;
  /** Each provider's reasons, quoted as the problem's `detail` quotes them (`freepik: … | kling3api: …`). */
  message: string;
  providers: { provider: string; reasons: string[] }[];
}

/** Providers' reasons grouped by the field each is about, fields in the order first named. */
export function refusalsByField(providers: readonly { provider: string; reasons: readonly string[] }[]): FieldRefusal[] {
  const byField = new Map<string, Map<string, string[]>>();
  for (const { provider, reasons } of providers) {
    for (const reason of reasons) {
      const field = fieldOfReason(reason);
      if (field === undefined) continue;
      let ofField = byField.get(field);
      if (!ofField) byField.set(field, (ofField = new Map()));
      ofField.set(provider, [...(ofField.get(provider) ?? []), reason]);
    }
  }
  return [...byField].map(([path, ofField]) => {
    const entries = [...ofField].map(([provider, reasons]) => ({ provider, reasons }));
    return { path, message: quoteReasons(entries), providers: entries };
  });
}

/** Kind of output an operation produces. */
export function outputTypeOf(operation: Operation): 'video' | 'image' {
  return IMAGE_OPERATIONS.has(operation) ? 'image' : 'video';
}
