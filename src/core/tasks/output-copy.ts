/**
 * Copies one result file from the provider's URL into the gateway's storage, streaming: the
 * bytes go from the upstream socket through a hash into the storage backend, never whole into
 * memory. The source must be http(s) and, unless configured otherwise, on a public address:
 * the address guard of outbound webhooks (`address-guard.ts`: checked lookup, checked peer, no
 * proxy), applied to every redirect too. The sandbox's own simulators are the only origins exempt.
 * The download itself is a plain GET on node's http (`result-download.ts`).
 */
import { createHash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { extname } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { ObjectStorage } from '../../storage/object-storage.js';
import { guardedAgents, PrivateTargetError, refuseLiteralTarget, trustedHostOf } from './address-guard.js';
import { download } from './result-download.js';
import { errorText } from './error-text.js';

/** What a copy may do. */
export interface CopyPolicy {
  allowPrivate: boolean;
  /** Origins exempt from the address checks (`http://127.0.0.1:port` of the sandbox's simulators). */
  trustedOrigins: ReadonlySet<string>;
  /** Longest the whole copy may take. */
  timeoutMs: number;
  /** Longest the source may send nothing. */
  idleTimeoutMs: number;
  maxBytes: number;
}

export type CopyOutcome =
  | { ok: true; sha256: string; bytes: number; contentType: string }
  | {
      ok: false;
      /** Worth trying again later (network, 5xx, storage errors, and 404/410/403: see `gone`). */
      retryable: boolean;
      /**
       * The source answered 404/410: the provider's copy may be gone. Retried all the same (a CDN
       * often answers 404 or 403 for a few seconds after the provider says the result is done);
       * custody decides when it lasted long enough to be gone (`result-custody.ts`).
       */
      gone: boolean;
      /** Why, as the tenant may read it (on the output's `storage_error`). */
      reason: string;
      /** The private address the source's name resolved to (for the log, not the task). */
      address?: string;
      /**
       * The storage backend's own error, when storage failed: for the operator's log only. Its
       * message names what the tenant must not see (paths on the gateway's disk, the addresses of
       * the operator's S3 endpoint); the tenant reads that the gateway's storage failed.
       */
      storageError?: unknown;
    };

/** Why a copy failed when the gateway's own storage (disk, bucket) could not write it, as the tenant reads it. */
export const STORAGE_WRITE_FAILED = "the gateway's storage could not write the copy";

/** Raised when the copy was stopped from outside (the gateway is stopping): not a failure of the copy. */
export class CopyAbortedError extends Error {
  override readonly name = 'CopyAbortedError';
}

const MEDIA_TYPES: Record<string, string> = {
  '.mp4': 'video/mp4',
  '.mov': 'video/quicktime',
  '.webm': 'video/webm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
};

/**
 * The media types a stored output is served with (`GET /v1/videos/{id}/content`): these, or
 * another `video/…` or `image/…` type its source named (`mediaTypeOf`).
 */
export const OUTPUT_MEDIA_TYPES: readonly string[] = [...new Set(Object.values(MEDIA_TYPES))];

const EXTENSIONS: Record<string, string> = {
  'video/mp4': 'mp4',
  'video/quicktime': 'mov',
  'video/webm': 'webm',
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
};

/**
 * The media type to record: the source's own when it is one of the output's kind (`video/…` for
 * a video, `image/…` but SVG for an image); then the URL's extension, then the kind. Anything else
 * says nothing (`application/octet-stream`, S3's `binary/octet-stream`) or is not a result: the
 * copy is served from the gateway's own origin, where an upstream's `text/html` or SVG would be a
 * page running its scripts.
 */
export function mediaTypeOf(header: string | undefined, url: string, kind: 'video' | 'image'): string {
  const given = header?.split(';')[0]?.trim().toLowerCase();
  if (given?.startsWith(`${kind}/`) && given !== 'image/svg+xml' && /^[a-z]+\/[a-z0-9.+-]+$/.test(given)) return given;
  let extension = '';
  try {
    extension = extname(new URL(url).pathname).toLowerCase();
  } catch {
    // Not a URL we can read: fall through to the kind.
  }
  return MEDIA_TYPES[extension] ?? (kind === 'video' ? 'video/mp4' : 'image/png');
}

/**
 * Media types no video or image is ever sent as: text (an HTML error page, a plain "not found"),
 * JSON, XML and `+xml`/`+json` (SVG included), JavaScript, and HLS playlists (a list of segment
 * URLs, not the file). A CDN that answers its error page with 200 sends one of these.
 */
const NOT_MEDIA = new Set([
  'application/json',
  'application/xml',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/vnd.apple.mpegurl',
  'application/x-mpegurl',
  'audio/mpegurl',
  'audio/x-mpegurl',
]);

/**
 * The source's media type when it says the body is not a result file of `kind` at all (a page, a
 * document, a playlist; an audio file; an image for a video, as a CDN's placeholder picture is,
 * or a video for an image), else undefined. Recorded as the URL's type instead, such a file would
 * be stored and served as the result, and its task reported succeeded.
 */
export function notMediaType(header: string | undefined, kind: 'video' | 'image'): string | undefined {
  const given = header?.split(';')[0]?.trim().toLowerCase();
  if (!given) return undefined;
  const otherKind = given.startsWith('audio/') || given.startsWith(kind === 'video' ? 'image/' : 'video/');
  const refused = otherKind || given.startsWith('text/') || NOT_MEDIA.has(given) || given.endsWith('+xml') || given.endsWith('+json');
  return refused ? given : undefined;
}

/**
 * The successes that carry the whole file: `200`, and `203` (a `200` a transforming proxy
 * changed, RFC 9110 §15.3.4). No other does, and storing one as the file would serve a cut or
 * empty video as whole: `206` is a part (the gateway sends no `Range`, so a host or cache that
 * answers one is misbehaving), `202` a file not ready yet, `226` a delta, `204`/`205` nothing,
 * `201`/`207`/`208` something else.
 */
const WHOLE_FILE = new Set([200, 203]);

/** A file extension for a media type (storage keys and download names). */
export function extensionOf(mediaType: string): string {
  return EXTENSIONS[mediaType] ?? 'bin';
}

/** Why a source URL may not be fetched at all, or undefined. */
export function refuseSource(url: string, policy: Pick<CopyPolicy, 'allowPrivate' | 'trustedOrigins'>): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `is not http(s) (${parsed.protocol.replace(/:$/, '')})`;
  if (policy.trustedOrigins.has(parsed.origin)) return undefined;
  return refuseLiteralTarget(url, policy.allowPrivate);
}

/** Agents per policy: a policy is built once per custody pass, agents are not worth rebuilding per file. */
const agentsByPolicy = new WeakMap<CopyPolicy, ReturnType<typeof guardedAgents>>();

/** Connections of a copy: checked as outbound webhooks are, except to the trusted origins. */
function sourceAgents(policy: CopyPolicy): ReturnType<typeof guardedAgents> {
  let agents = agentsByPolicy.get(policy);
  if (!agents) {
    agents = guardedAgents({
      allowPrivate: policy.allowPrivate,
      trustedHosts: new Set([...policy.trustedOrigins].map(trustedHostOf)),
      lookupTimeoutMs: policy.idleTimeoutMs,
      // Results come from a few hosts of each provider, one copy after another.
      keepAlive: true,
    });
    agentsByPolicy.set(policy, agents);
  }
  return agents;
}

/** The first bytes of a body at most that are looked at for the start of a page or a document. */
const SNIFFED_BYTES = 512;

const isBlank = (byte: number) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09 || byte === 0x0c;
const isLetter = (byte: number) => (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);

/**
 * Whether a body beginning with `head` is a page or a document: after blanks (and a UTF-8 BOM),
 * markup (`<` then a letter, `!`, `?` or `/`: HTML, XML, SVG) or a JSON object (`{` then `"`, `}`
 * or a blank). Undefined while `head` is too short to tell. No video or image begins so: PNG, JPEG,
 * GIF, WebP and WebM begin with their signatures, an MP4 or QuickTime file with the size of its
 * first box (a first box of a gigabyte or more would be needed).
 */
function beginsAsDocument(head: Buffer): boolean | undefined {
  let at = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  while (at < head.length && isBlank(head[at]!)) at++;
  if (at + 1 >= head.length) return undefined;
  const first = head[at]!;
  const next = head[at + 1]!;
  if (first === 0x3c) return isLetter(next) || next === 0x21 || next === 0x3f || next === 0x2f;
  if (first === 0x7b) return next === 0x22 || next === 0x7d || isBlank(next);
  return false;
}

/**
 * Hashes and counts what passes through; fails once more than `maxBytes` went by, at the end when
 * nothing did, and at the start when the body begins as a page or a document (`beginsAsDocument`):
 * a CDN's error page answered 200 without a type, or as `application/octet-stream`, is never the file.
 */
class MeasuringStream extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  /** The error this stream failed the copy with (the source's, or its own checks'), if any. */
  failure: Error | undefined;
  /** The first bytes, until they tell whether the body begins as a document. */
  private head: Buffer | undefined = Buffer.alloc(0);

  constructor(
    private readonly maxBytes: number,
    private readonly notDocument: () => NotMediaError,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      this.failure = new TooLargeError(`the file is larger than storage.max_bytes (${this.maxBytes} bytes)`);
      callback(this.failure);
      return;
    }
    if (this.head) {
      const head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
      const document = beginsAsDocument(head.subarray(0, SNIFFED_BYTES));
      if (document) {
        this.failure = this.notDocument();
        callback(this.failure);
        return;
      }
      this.head = document === undefined && head.length < SNIFFED_BYTES ? Buffer.from(head) : undefined;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  /** No bytes at all is no result (a CDN not ready yet, a broken upstream): failing here keeps it out of storage. */
  override _flush(callback: TransformCallback): void {
    if (this.bytes === 0) this.failure = new Error('the provider sent an empty file');
    callback(this.failure ?? null);
  }
}

class TooLargeError extends Error {
  override readonly name = 'TooLargeError';
}

/** The body is not a result file (it begins as a page or a document); its message is the reason. */
class NotMediaError extends Error {
  override readonly name = 'NotMediaError';
}

function failure(reason: string, retryable: boolean, gone = false, address?: string): Extract<CopyOutcome, { ok: false }> {
  return { ok: false, retryable, gone, reason: reason.slice(0, 500), ...(address ? { address } : {}) };
}

/**
 * Copies `url` into `storage` under `key`. Never throws for a failed copy (the outcome says
 * whether it is worth retrying); throws `CopyAbortedError` when `signal` stopped it.
 */
export async function copyToStorage(input: {
  url: string;
  key: string;
  kind: 'video' | 'image';
  storage: ObjectStorage;
  policy: CopyPolicy;
  signal?: AbortSignal;
}): Promise<CopyOutcome> {
  const { url, policy } = input;
  const refused = refuseSource(url, policy);
  if (refused) return failure(`the result URL ${refused}`, false);
  // One controller, aborted by the copy's time limit or by the caller's signal. The caller's signal
  // lives as long as the gateway: joined with `AbortSignal.any`, it would keep an entry for every
  // copy ever made, and `AbortSignal.timeout` left a timer running for the whole limit after each
  // copy. A listener and a timer, both removed when the copy ends, leave nothing.
  const stopped = new AbortController();
  let timedOut = false;
  /**
   * The time ran out with the source sent whole, or held back by storage not taking more: the
   * storage's failure (a bucket that never answers an upload), copied again later as one that
   * answers an error is, not the file host's.
   */
  let storageHeld = false;
  let source: Readable | undefined;
  const deadline = setTimeout(() => {
    timedOut = true;
    storageHeld = source !== undefined && (source.readableEnded || source.readableFlowing === false);
    stopped.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
  }, policy.timeoutMs).unref();
  const stop = () => stopped.abort();
  if (input.signal?.aborted) stop();
  else input.signal?.addEventListener('abort', stop, { once: true });
  const signal = stopped.signal;
  let measuring: MeasuringStream | undefined;
  try {
    const response = await download(url, {
      headers: { 'user-agent': 'kling-gateway-custody/0.1', accept: '*/*' },
      signal,
      idleTimeoutMs: policy.idleTimeoutMs,
      agents: sourceAgents(policy),
      // Every hop of a redirect is checked as the first one was.
      refuseHop: (next) => {
        const refusedHop = refuseSource(next, policy);
        return refusedHop ? new PrivateTargetError(`redirected to a URL that ${refusedHop}`) : undefined;
      },
    });
    source = response.body;
    const status = response.status;
    if (status < 200 || status >= 300) {
      source.destroy();
      const gone = status === 404 || status === 410;
      const retryable = gone || status === 403 || status >= 500 || status === 408 || status === 429;
      return failure(`the provider answered ${status} for the result URL`, retryable, gone);
    }
    if (!WHOLE_FILE.has(status)) {
      // As a page typed as one: a failed try, retried (the next answer may be the file).
      source.destroy();
      return failure(`the provider answered ${status} (${STATUS_CODES[status] ?? 'unknown'}), which is not the whole file`, true);
    }
    const notMedia = notMediaType(response.contentType, input.kind);
    if (notMedia !== undefined) {
      // A CDN's error page or placeholder answered 200 is never stored as the video: a failed try, retried (the file may come next).
      source.destroy();
      return failure(`the provider answered ${status} with Content-Type ${notMedia}, which is ${input.kind === 'video' ? 'not a video' : 'not an image'}`, true);
    }
    if (response.contentLength !== undefined && response.contentLength > policy.maxBytes) {
      // Said before the first byte: nothing is downloaded (up to the limit, or for as long as a slow host takes) only to be thrown away.
      source.destroy();
      return failure(`the file is larger than storage.max_bytes (${policy.maxBytes} bytes): the provider announced ${response.contentLength} bytes`, false);
    }
    const contentType = mediaTypeOf(response.contentType ?? '', url, input.kind);
    const notDocument = () =>
      new NotMediaError(`the provider answered ${status} with a body that begins as a page or a document, which is ${input.kind === 'video' ? 'not a video' : 'not an image'}`);
    const measured = (measuring = new MeasuringStream(policy.maxBytes, notDocument));
    // Bytes flow before the backend starts reading (it may create folders first): an error in that
    // window stays on the stream (`errored`) for the backend's pipeline to report, not unhandled.
    measured.on('error', () => undefined);
    source.on('error', (error) => {
      measured.failure ??= error;
      measured.destroy(error);
    });
    source.pipe(measured);
    await input.storage.write(input.key, measured, { contentType, signal });
    return { ok: true, sha256: measured.hash.digest('hex'), bytes: measured.bytes, contentType };
  } catch (error) {
    source?.destroy();
    if (input.signal?.aborted) throw new CopyAbortedError('the copy was stopped');
    if (error instanceof PrivateTargetError) return failure(`the result URL was refused: ${error.message}`, false, false, error.address);
    if (error instanceof TooLargeError) return failure(error.message, false);
    // As a page typed as one: a failed try, retried (the file may come next).
    if (error instanceof NotMediaError) return failure(error.message, true);
    if (timedOut && measuring && storageHeld) {
      return { ...failure(STORAGE_WRITE_FAILED, true), storageError: new Error(`storage did not take the copy within ${policy.timeoutMs} ms`) };
    }
    if (timedOut) return failure(`the copy did not finish within ${policy.timeoutMs} ms`, true);
    if (measuring && error !== measuring.failure) {
      // Not the source's failure, passed on by the backend: the backend's own (disk, bucket, network to it).
      return { ...failure(STORAGE_WRITE_FAILED, true), storageError: error };
    }
    return failure(`the copy failed: ${errorText(error)}`, true);
  } finally {
    clearTimeout(deadline);
    input.signal?.removeEventListener('abort', stop);
  }
}
