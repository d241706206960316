/**
 * Shared test helpers: canonical request → resolved request + matched kling3api offering,
 * exactly as the gateway does it (src/core/capabilities.ts).
 */
import { expect } from 'vitest';
import { CreateVideoRequest, type VideoRequest } from '../../../src/core/model/canonical.js';
import { matchOffering, resolveRequest, type OfferingMatch } from '../../../src/core/model/capabilities.js';
import type { Offering } from '../../../src/core/model/offerings.js';
import { KLING3API_OFFERINGS } from '../../../src/providers/kling3api/kling3api-capabilities.js';

/** Validates (strict canonical zod), resolves and matches; the request must be served. */
export function served(input: unknown): { request: VideoRequest; offering: Offering; warnings: string[] } {
  const resolved = resolveRequest(CreateVideoRequest.parse(input));
  const match = matchOffering(KLING3API_OFFERINGS, resolved);
  expect(match.reasons).toEqual([]);
  if (!match.offering) throw new Error('no offering matched');
  return { request: resolved.request, offering: match.offering, warnings: match.warnings };
}

/**
 * Resolves and matches without the canonical zod parse, so a test can hand over what the
 * canonical schema itself would already refuse (8 reference images, an end frame alone).
 */
export function matchUnparsed(input: CreateVideoRequest): OfferingMatch {
  return matchOffering(KLING3API_OFFERINGS, resolveRequest(input));
}

/** Same, through the strict canonical parse first. */
export function match(input: unknown): OfferingMatch {
  return matchOffering(KLING3API_OFFERINGS, resolveRequest(CreateVideoRequest.parse(input)));
}
