/**
 * Envelopes around what providers send back. Two shapes recur: the task wrapped as
 * `{data: {...}}` (or sent bare, as callbacks often are), and the `{code, message, data}`
 * answer whose `code` says success or failure even under HTTP 200.
 */
import type { z } from 'zod';
import type { UpstreamResponse } from './provider.js';
import { errorInSuccessAnswer, unreadableAnswer, type MappedUpstreamError, type UpstreamCall } from './upstream-error.js';
import { readJsonBody } from './upstream-body.js';

/**
 * The object a body carries: the one under `data` when the body is a `{data: {...}}` envelope,
 * else the body itself. A body that has `idKey` at its top level is the object itself, even
 * with a `data` field. `undefined` when the body is not a JSON object.
 */
export function unwrapDataEnvelope(body: unknown, idKey: string): Record<string, unknown> | undefined {
  const value = readJsonBody(body);
  if (!isRecord(value)) return undefined;
  if (value[idKey] === undefined && isRecord(value.data)) return value.data;
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** An error a provider reports inside a 2xx answer, with the HTTP status it documents for it. */
export interface ErrorInEnvelope {
  error: MappedUpstreamError;
  httpStatus: number;
  /**
   * The answer names a task beside its error code: on a create answered with a server error, the
   * upstream may hold that task, so it is asked about (adopted when the provider shows it, else
   * looked for or given up on) rather than sent to another provider.
   */
  namedTaskId?: string;
}

/** How one provider's `{code, message, data}` envelope is read. */
export interface CodedEnvelope<Envelope extends { data?: unknown }> {
  /** The envelope's loose schema; a 2xx answer that does not fit it is unreadable. */
  schema: z.ZodType<Envelope>;
  /** The error the envelope reports, or `undefined` when its `code` says success. */
  errorOf(envelope: Envelope, body: unknown): ErrorInEnvelope | undefined;
}

/**
 * The `data` of a 2xx answer in a coded envelope. An envelope that reports an error becomes an
 * `UpstreamError` carrying the status the provider documents for its code, so the router
 * reasons as if the upstream had answered with it; an answer that is no envelope, or whose
 * `data` is not what `dataSchema` reads, is unreadable (`missing` says what was missing).
 */
export function readCodedEnvelope<Envelope extends { data?: unknown }, Data>(
  call: UpstreamCall,
  response: UpstreamResponse,
  envelope: CodedEnvelope<Envelope>,
  dataSchema: z.ZodType<Data>,
  missing: string,
): Data {
  const parsed = envelope.schema.safeParse(response.data);
  if (!parsed.success) throw unreadableAnswer(call, response.status, response.data, 'not a {code, message, data} envelope');
  const reported = envelope.errorOf(parsed.data, response.data);
  if (reported) throw errorInSuccessAnswer(call, reported.error, reported.httpStatus, response, reported.namedTaskId);
  const data = dataSchema.safeParse(parsed.data.data);
  if (!data.success) throw unreadableAnswer(call, response.status, response.data, missing);
  return data.data;
}
