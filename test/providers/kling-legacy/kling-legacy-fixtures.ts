/** Shared helpers for the kling-legacy tests: canonical requests as the core accepts them. */
import { matchOffering, resolveRequest, type OfferingMatch } from '../../../src/core/model/capabilities.js';
import { CreateVideoRequest, type VideoRequest } from '../../../src/core/model/canonical.js';
import type { Offering } from '../../../src/core/model/offerings.js';
import { KLING_LEGACY_OFFERINGS } from '../../../src/providers/kling-legacy/kling-legacy-capabilities.js';

/** Parses a create body strictly, applies defaults, and matches the legacy offerings. */
export function matchLegacy(input: unknown): OfferingMatch & { request: VideoRequest } {
  const resolved = resolveRequest(CreateVideoRequest.parse(input));
  return { ...matchOffering(KLING_LEGACY_OFFERINGS, resolved), request: resolved.request };
}

/** The request and the offering that serves it; fails the test when none does. */
export function served(input: unknown): { request: VideoRequest; offering: Offering } {
  const match = matchLegacy(input);
  if (!match.offering) throw new Error(`not served: ${match.reasons.join('; ')}`);
  return { request: match.request, offering: match.offering };
}

export const IMAGE = 'https://assets.example.com/start.png';
export const END_IMAGE = 'https://assets.example.com/end.png';
export const GARMENT = 'https://assets.example.com/shirt.png';
export const SOURCE_VIDEO = 'https://assets.example.com/talk.mp4';
export const CALLBACK = 'https://gateway.example.com/v1/webhooks/kling-legacy/tok_123';
