/**
 * `GET /v1/videos/{id}/content?index=N`: the stored copy of an output (SPEC §7). With the
 * gateway key, or with the signed link a Task carries. Byte ranges (`206`, `416`), `ETag` from
 * the SHA-256 and conditional requests (`304`) are answered here; on S3 the caller may be
 * redirected to a presigned URL instead.
 */
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { ProblemError, problems } from '../core/model/problems.js';
import type { OutputContent, StoredContent } from '../core/tasks/output-content.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { logTaskId, rememberMountPath } from './middleware.js';

/** Whether an `If-None-Match` list names this ETag (weak comparison, as RFC 9110 asks for it). */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === etag);
}

/** Whether an `If-Match` list names this ETag (strong comparison: a weak ETag never matches; `*` is any file). */
function ifMatchHolds(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  return header.split(',').some((candidate) => candidate.trim() === etag);
}

/** The three forms of an HTTP date (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms. */
const IMF_FIXDATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE = /^[A-Z][a-z]{5,8}, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * The date of an `If-Modified-Since` or `If-Unmodified-Since` in milliseconds, or undefined when it is
 * not one HTTP date (RFC 9110 §13.1.3, §13.1.4: such a header is ignored). `Date.parse` alone took
 * anything it could read (`1` as the year 2001) and an asctime date as local time: asctime is UTC.
 */
function headerDate(header: string | undefined): number | undefined {
  const text = header?.trim();
  if (text === undefined) return undefined;
  const asUtc = IMF_FIXDATE.test(text) || RFC850_DATE.test(text) ? text : ASCTIME_DATE.test(text) ? `${text} GMT` : undefined;
  const date = asUtc === undefined ? NaN : Date.parse(asUtc);
  return Number.isNaN(date) ? undefined : date;
}

/** Decimal digits or nothing: a range's first or last byte. */
const DIGITS = /^\d*$/;

/**
 * The byte ranges of a `Range` header for a file of `size` bytes: the satisfiable ones, or
 * `malformed` (another unit, a spec that does not read; the header is ignored). A suffix longer
 * than the file is the whole file (RFC 9110 §14.1.1: "the entire representation is used"), where
 * express's `req.range` (range-parser) called it unsatisfiable; a suffix of 0, a first byte past
 * the end and a last byte before the first are unsatisfiable, as range-parser has them.
 */
function byteRanges(header: string, size: number): { start: number; end: number }[] | 'malformed' {
  const match = /^\s*bytes\s*=(.*)$/i.exec(header);
  if (!match) return 'malformed';
  const ranges: { start: number; end: number }[] = [];
  // Empty list elements (`bytes=0-9,`) are skipped, as RFC 9110 §5.6.1.2 asks of a recipient; a set
  // of nothing but them is no range at all.
  const specs = (match[1] ?? '').split(',').filter((spec) => spec.trim() !== '');
  if (specs.length === 0) return 'malformed';
  for (const spec of specs) {
    // Cut at the dash and trimmed, never one pattern with whitespace on both sides of it: that one
    // tried every split of a long run of spaces (cubic), and a header of spaces held the event loop for minutes.
    const dash = spec.indexOf('-');
    if (dash < 0) return 'malformed';
    const first = spec.slice(0, dash).trim();
    const last = spec.slice(dash + 1).trim();
    if (!DIGITS.test(first) || !DIGITS.test(last) || (first === '' && last === '')) return 'malformed';
    if (first === '') {
      const suffix = Number(last);
      if (suffix > 0) ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const start = Number(first);
    const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
    if (start <= end) ranges.push({ start, end });
  }
  return ranges;
}

/** The one range to serve, `undefined` for the whole file, or `unsatisfiable`. */
function rangeOf(req: Request, content: StoredContent, etag: string): { start: number; end: number } | 'unsatisfiable' | undefined {
  const header = req.header('range');
  if (!header) return undefined;
  // A range of an older version is not what the caller wants: If-Range with another validator gets
  // the whole file. Compared strongly (RFC 9110 §13.1.5): a weak ETag never matches, and a date is
  // not resumed on (the ETag is the SHA-256, the one validator that says the bytes are the same).
  const ifRange = req.header('if-range');
  if (ifRange !== undefined && ifRange.trim() !== etag) return undefined;
  const ranges = byteRanges(header, content.bytes);
  // Malformed, another unit, or several ranges: answered with the whole file (RFC 9110 allows ignoring Range).
  if (ranges === 'malformed') return undefined;
  if (ranges.length === 0) return 'unsatisfiable';
  return ranges.length === 1 ? ranges[0] : undefined;
}

async function sendStored(req: Request, res: Response, content: StoredContent, metrics: GatewayMetrics): Promise<void> {
  const etag = `"${content.sha256}"`;
  // The file's own headers go on the answers that are the file (200, 206, 304) and on nothing else:
  // a problem carrying them (a copy storage cannot read, one deleted meanwhile) would be cached for
  // an hour, revalidated as the file by its ETag, and saved under the file's name.
  const fileHeaders = {
    etag,
    'accept-ranges': 'bytes',
    'last-modified': new Date(content.storedAt).toUTCString(),
    'cache-control': 'private, max-age=3600',
    'content-disposition': `inline; filename="${content.filename}"`,
    // Bytes a third party made, served from the gateway's origin: opened directly they run nothing
    // and reach nothing of it (the console's session included). Media plays as before.
    'content-security-policy': 'sandbox',
  };
  // The preconditions in RFC 9110 §13.2.2's order: If-Match (else If-Unmodified-Since), then
  // If-None-Match (else If-Modified-Since), then If-Range. Dates are compared to the second, as
  // Last-Modified gives it.
  const modifiedAt = Math.floor(content.storedAt / 1000) * 1000;
  const ifMatch = req.header('if-match');
  if (ifMatch !== undefined ? !ifMatchHolds(ifMatch, etag) : modifiedAt > (headerDate(req.header('if-unmodified-since')) ?? Infinity)) {
    throw problems.preconditionFailed(
      ifMatch !== undefined
        ? `If-Match does not name this file's ETag (${etag}); nothing was sent.`
        : `the file was stored after the If-Unmodified-Since date (${new Date(modifiedAt).toUTCString()}); nothing was sent.`,
    );
  }
  const ifNoneMatch = req.header('if-none-match');
  const notModified =
    ifNoneMatch !== undefined ? matchesEtag(ifNoneMatch, etag) : modifiedAt <= (headerDate(req.header('if-modified-since')) ?? -Infinity);
  if (notModified) {
    metrics.contentServed.inc({ outcome: 'not_modified' });
    res.status(304).set(fileHeaders).end();
    return;
  }
  const range = rangeOf(req, content, etag);
  if (range === 'unsatisfiable') {
    res.set('accept-ranges', 'bytes');
    throw problems.rangeNotSatisfiable(`the file has ${content.bytes} bytes; the range asked for is outside it`, content.bytes);
  }
  // Opened before anything of the answer is set: a copy that cannot be read is answered as a problem.
  // A HEAD opens it too (and lets it go), so it says what a GET would: gone, or storage failing.
  const opened = await content.open(range);
  const head = req.method === 'HEAD';
  if (head) opened.destroy();
  const body = head ? undefined : opened;
  const length = range ? range.end - range.start + 1 : content.bytes;
  res.status(range ? 206 : 200).set({ ...fileHeaders, 'content-type': content.contentType, 'content-length': String(length) });
  if (range) res.set('content-range', `bytes ${range.start}-${range.end}/${content.bytes}`);
  metrics.contentServed.inc({ outcome: range ? 'partial' : 'file' });
  if (!body) {
    res.end();
    return;
  }
  res.flushHeaders();
  await pipeline(body, res).catch((error: unknown) => {
    // The client went away mid-file, or storage failed mid-read: the headers are gone, so end the response.
    if (!res.destroyed) res.destroy(error instanceof Error ? error : undefined);
  });
}

/** How a refused content request is counted, by the status it was answered with. */
const REFUSED_OUTCOMES: Partial<Record<number, string>> = {
  400: 'invalid',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'not_ready',
  410: 'gone',
  412: 'precondition_failed',
  416: 'unsatisfiable',
  503: 'unavailable',
};

/** `auth` authenticates a gateway key when one is sent and lets the request on without one (a signed link). */
export function contentRoutes(content: OutputContent, metrics: GatewayMetrics, auth: RequestHandler): Router {
  const router = Router();
  router.use(rememberMountPath());
  router.param('id', logTaskId);
  router.get('/:id/content', auth, async (req, res) => {
    try {
      const found = await content.locate(req.tenant, String(req.params.id), req.query, req.method === 'HEAD' ? 'HEAD' : 'GET');
      if (found.kind === 'redirect') {
        metrics.contentServed.inc({ outcome: found.via === 'presigned' ? 'redirect' : 'upstream_redirect' });
        // A presigned URL is short-lived and the upstream's may change: never cached.
        res.set('cache-control', 'no-store').redirect(found.via === 'presigned' ? 302 : 307, found.location);
        return;
      }
      await sendStored(req, res, found, metrics);
    } catch (error) {
      // Refusals are counted too, by a closed set of reasons (never the problem's own words).
      if (error instanceof ProblemError) metrics.contentServed.inc({ outcome: REFUSED_OUTCOMES[error.status] ?? 'refused' });
      throw error;
    }
  });
  return router;
}
