/**
 * The GET of a result file, on node's own `http`/`https` clients. A copy is one plain byte
 * download, and axios's machinery around it (config merging, interceptors, follow-redirects'
 * wrapper request, its response pipeline) cost CPU the download itself does not need: 0.59 ms
 * per 18 KB file through axios, 0.34 ms here (README, Benchmarks). Calls to provider APIs keep axios.
 *
 * It behaves as the axios call it replaced did, so a copy stores the same bytes and fails for the
 * same reasons: the same request headers (`Accept-Encoding` included, and a compressed answer is
 * decoded as axios decodes it, except that a compressed stream cut short fails), redirects followed up to five hops with every hop checked by
 * `refuseHop` before it is requested, `timeout of <n>ms exceeded` when the source sends nothing for
 * the idle time, and the connection's own errors as they are.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';

/** What axios asks for (and then decodes): gzip, compress, deflate and br. */
export const ACCEPT_ENCODING = 'gzip, compress, deflate, br';
/** Redirects followed before giving up, as axios's `maxRedirects: 5`. */
const MAX_REDIRECTS = 5;
/**
 * Compressed streams must end where their format says they end: a body cut short inside a whole
 * HTTP answer (a proxy's truncation with a recomputed length) is an error, where axios's lenient
 * finish would have stored the first part of the file as all of it. A deflate body with its zlib
 * header ends with its checksum; a raw one (no header, as some servers send) with its last block.
 */
const STRICT_ZLIB_OPTIONS = { flush: zlib.constants.Z_SYNC_FLUSH };
const BROTLI_OPTIONS = { flush: zlib.constants.BROTLI_OPERATION_FLUSH };

export interface DownloadOptions {
  headers: Record<string, string>;
  signal: AbortSignal;
  /** Longest the source may send nothing (connecting included). */
  idleTimeoutMs: number;
  agents: { httpAgent: http.Agent; httpsAgent: https.Agent };
  /** Why a redirect target may not be fetched (thrown as is), or undefined to follow it. */
  refuseHop: (url: string) => Error | undefined;
}

export interface Download {
  status: number;
  /** The content type the source gave, if any. */
  contentType: string | undefined;
  /**
   * The length the source announced for the body as it is read (`Content-Length`), when it sent
   * one and the body is not decoded (a compressed body's length says nothing of the file's).
   */
  contentLength: number | undefined;
  /** The body, decoded when the source compressed it. */
  body: Readable;
}

/** A source that sent nothing for the idle time. */
export class DownloadTimeoutError extends Error {
  override readonly name = 'DownloadTimeoutError';
}

/** Whether a deflate body beginning with `head` has a zlib header (RFC 1950: method 8, the first two bytes a multiple of 31). */
function hasZlibHeader(head: Buffer): boolean {
  if (head.length < 2) return head[0] === 0x78;
  return (head[0]! & 0x0f) === 8 && ((head[0]! << 8) | head[1]!) % 31 === 0;
}

/**
 * Decodes a deflate body, with its zlib header or raw (told by its first bytes), strictly: a body
 * that ends before its compressed stream does is an error. (Before, a raw body was given a zlib
 * header, and the check of the trailer it never has was turned off for both.)
 */
class DeflateDecoder extends Transform {
  private inflater: zlib.Inflate | zlib.InflateRaw | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (chunk.length === 0) return callback();
    if (!this.inflater) {
      const inflater = hasZlibHeader(chunk) ? zlib.createInflate(STRICT_ZLIB_OPTIONS) : zlib.createInflateRaw(STRICT_ZLIB_OPTIONS);
      inflater.on('data', (data: Buffer) => {
        // Held while what was decoded is not read: the inflater then stops taking input too.
        if (!this.push(data)) inflater.pause();
      });
      inflater.on('error', (error) => this.destroy(error));
      this.inflater = inflater;
    }
    this.inflater.write(chunk, () => callback());
  }

  override _read(size: number): void {
    this.inflater?.resume();
    super._read(size);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.inflater) return callback();
    this.inflater.once('end', () => callback());
    this.inflater.end();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.inflater?.destroy();
    callback(error);
  }
}

/** The decoders of a `Content-Encoding` axios decodes; none for anything else (the bytes as sent). */
function decodersFor(status: number, headers: IncomingHttpHeaders): Transform[] {
  // No content (204) is nothing to decode, whatever the header says.
  if (status === 204) return [];
  switch ((headers['content-encoding'] ?? '').toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
    case 'compress':
    case 'x-compress':
      return [zlib.createUnzip(STRICT_ZLIB_OPTIONS)];
    case 'deflate':
      return [new DeflateDecoder()];
    case 'br':
      return [zlib.createBrotliDecompress(BROTLI_OPTIONS)];
    default:
      return [];
  }
}

/** A response's body as axios reads it: decoded when it was compressed in an encoding axios decodes. */
export function decodedBody(response: IncomingMessage): Readable {
  const decoders = decodersFor(response.statusCode ?? 0, response.headers);
  return decoders.length === 0 ? response : (pipeline([response, ...decoders], () => undefined) as unknown as Readable);
}

/** Node's client for `url`'s scheme, with the agent of that scheme. */
export function clientFor(url: URL, agents: { httpAgent: http.Agent; httpsAgent: https.Agent }): { client: typeof http | typeof https; agent: http.Agent } {
  return url.protocol === 'https:' ? { client: https, agent: agents.httpsAgent } : { client: http, agent: agents.httpAgent };
}

/**
 * Fails `request` (and its answer) once the source has sent nothing for `idleMs` while the answer
 * was being read. Time the answer is held back (storage slower than the source, an S3 part upload
 * on a slow link, pauses the body; or it is not read yet) does not count: the source is waiting for
 * us then, not silent. Watched by the bytes the socket read, checked four times per `idleMs`, from
 * when the request has a socket until its answer ends. (Node's own socket timeout fires only once
 * per request, so it cannot be armed again after a hold-back.)
 */
function failWhenSilent(request: http.ClientRequest, answerOf: () => IncomingMessage | undefined, idleMs: number): void {
  let bytesSeen = -1;
  let quietSince = Date.now();
  const watch = setInterval(() => {
    const answer = answerOf();
    if (answer && (answer.readableEnded || answer.destroyed)) return clearInterval(watch);
    const socket = request.socket;
    const heldBack = answer !== undefined && answer.readableFlowing !== true;
    if (!socket || heldBack || socket.bytesRead !== bytesSeen) {
      bytesSeen = socket?.bytesRead ?? -1;
      quietSince = Date.now();
      return;
    }
    if (Date.now() - quietSince < idleMs) return;
    clearInterval(watch);
    const silent = new DownloadTimeoutError(`timeout of ${idleMs}ms exceeded`);
    // Mid-body, the answer fails with this error too (not the bare "aborted" of a connection cut).
    answer?.destroy(silent);
    request.destroy(silent);
  }, Math.max(5, Math.floor(idleMs / 4)));
  watch.unref();
  request.once('close', () => clearInterval(watch));
}

function requestOnce(url: URL, options: DownloadOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const { client, agent } = clientFor(url, options.agents);
    let answer: IncomingMessage | undefined;
    const request = client.get(url, { agent, headers: { ...options.headers, 'accept-encoding': ACCEPT_ENCODING }, signal: options.signal }, (response) => {
      answer = response;
      resolve(response);
    });
    failWhenSilent(request, () => answer, options.idleTimeoutMs);
    request.on('error', reject);
  });
}

/**
 * GETs `url`, following redirects. Resolves with the final answer whatever its status (the body
 * still to be read, or destroyed by the caller); rejects when no answer came.
 */
export async function download(url: string, options: DownloadOptions): Promise<Download> {
  let target = new URL(url);
  for (let hops = 0; ; hops++) {
    const response = await requestOnce(target, options);
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (location !== undefined && status >= 300 && status < 400) {
      response.resume();
      if (hops === MAX_REDIRECTS) throw new Error('Maximum number of redirects exceeded');
      target = new URL(location, target);
      const refused = options.refuseHop(target.href);
      if (refused) throw refused;
      continue;
    }
    const body = decodedBody(response);
    const announced = response.headers['content-length'];
    const contentLength = body === response && announced !== undefined && /^\d+$/.test(announced) ? Number(announced) : undefined;
    return { status, contentType: response.headers['content-type'], contentLength, body };
  }
}
