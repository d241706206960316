/**
 * Freepik error answers → canonical errors. Documented bodies (seed 001, every endpoint's
 * `400`/`401`/`500`/`503`): `{message}` and the problem form with `invalid_params`. `402` and
 * `429` are not on the seed pages; they are read the same way.
 */
import { looksLikeContentPolicy } from '../../core/upstream/content-policy.js';
import { errorPageText } from '../../core/upstream/upstream-body.js';
import { errorCodeForHttpStatus, type MappedUpstreamError } from '../../core/upstream/upstream-error.js';
import { readFreepikError } from './freepik-schemas.js';

/**
 * The seed documents no credits error at all; `402` is read as one, and so is a `400` or `403`
 * whose message speaks of credits: `400` is the refusal the seed does document (an upstream
 * keeping to the documented statuses says it there), `403` in case Freepik reports an empty
 * balance as forbidden.
 */
const CREDITS_PATTERN = /insufficient[\s_-]*(credits|balance|funds)|not enough credits|out of credits|no credits/i;

const MAX_MESSAGE = 500;

/** The human text of an error body: its message, and the invalid params named one by one. */
export function describeFreepikError(body: unknown): string {
  const parsed = readFreepikError(body);
  if (!parsed) {
    if (typeof body === 'string' && body.trim()) return errorPageText(body).slice(0, MAX_MESSAGE);
    return '';
  }
  const message = parsed.message ?? parsed.problem?.message ?? '';
  const params = [...(parsed.invalid_params ?? []), ...(parsed.problem?.invalid_params ?? [])]
    .map((param) => [param.name, param.reason].filter(Boolean).join(': '))
    .filter((text) => text.length > 0);
  const text = params.length > 0 ? `${message}${message ? ' ' : ''}(${params.join('; ')})` : message;
  return text.slice(0, MAX_MESSAGE);
}

/** Canonical error for a non-2xx Freepik answer (`VideoProvider.mapHttpError`). */
export function mapFreepikHttpError(status: number, body: unknown): MappedUpstreamError {
  const detail = describeFreepikError(body);
  const said = (fallback: string) => `Freepik answered ${status}: ${detail || fallback}`;

  if (status === 401) return { code: 'provider_error', message: said('unauthorized'), providerCode: 'unauthorized' };
  if (status === 402 || ((status === 400 || status === 403) && CREDITS_PATTERN.test(detail))) {
    return { code: 'insufficient_credits', message: said('insufficient credits'), providerCode: 'insufficient_credits' };
  }
  if (status === 403) return { code: 'provider_error', message: said('forbidden'), providerCode: 'forbidden' };
  if (status === 429) return { code: 'provider_error', message: said('rate limited'), providerCode: 'rate_limited' };
  if (status >= 500) {
    const providerCode = status === 503 ? 'unavailable' : 'server_error';
    return { code: 'provider_error', message: said('server error'), providerCode };
  }
  // Freepik documents no code for a refusal of the content, so its wording is read (the core's
  // one rule). Only a 4xx about the request itself may mean that; a 5xx that says
  // "safety" is still an outage, and must stay eligible for failover.
  if (status >= 400 && looksLikeContentPolicy(detail)) {
    return { code: 'content_policy', message: said('content policy'), providerCode: 'content_policy' };
  }
  if (status === 400) return { code: 'invalid_request', message: said('bad request'), providerCode: 'bad_request' };
  if (status === 404) return { code: 'invalid_request', message: said('not found'), providerCode: 'not_found' };
  return { code: errorCodeForHttpStatus(status), message: said(`HTTP ${status}`), providerCode: `http_${status}` };
}
