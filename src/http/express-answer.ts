/**
 * The bytes express sends, for the paths that answer on the HTTP server ahead of it (`hot-read.ts`,
 * `hot-webhook.ts`): the headers `everyRequest` sets first, then those of `res.send` for a string
 * body (`Content-Type` with its charset, `Content-Length`, the app's `ETag`), with the same names,
 * values and order. Tests hold each path to express's own answer byte for byte.
 */
import type { ServerResponse } from 'node:http';
import type { ProblemError } from '../core/model/problems.js';

/** The app's `etag fn`, as `res.send` calls it on a body. */
export type EtagOf = (body: Buffer) => string | undefined;

/** What `everyRequest` puts on every answer (the console's static files aside, which never come here). */
export function setEveryRequestHeaders(res: ServerResponse, requestId: string): void {
  res.setHeader('x-request-id', requestId);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('cache-control', 'no-store');
}

/** `res.status(status).type(type).send(text)`: `type` gets express's `; charset=utf-8`. */
export function sendText(res: ServerResponse, status: number, type: string, text: string, etag: EtagOf): void {
  const body = Buffer.from(text);
  res.setHeader('Content-Type', `${type}; charset=utf-8`);
  res.setHeader('Content-Length', body.length);
  const tag = etag(body);
  if (tag) res.setHeader('ETag', tag);
  res.statusCode = status;
  res.end(body);
}

/**
 * A problem's JSON as the gateway answers it: with its `instance`, the occurrence — the request's
 * own id (`RequestIds.occurrence` in middleware.ts), as a URN (`urn:request:<id>`): unlike the
 * path, it tells one occurrence from every other at the same route (also when a client repeats its
 * `x-request-id`), it names the request's log line, and every answer has one (a request node's
 * parser refused before any path was read included).
 */
export function problemJson(error: ProblemError, occurrence: string): string {
  return JSON.stringify({ ...error.problem, instance: `urn:request:${occurrence}` });
}

/** `sendProblem` (middleware.ts) on a plain response: the problem's headers, then the problem as JSON. */
export function sendProblemText(res: ServerResponse, error: ProblemError, occurrence: string, etag: EtagOf): void {
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  sendText(res, error.status, 'application/problem+json', problemJson(error, occurrence), etag);
}
