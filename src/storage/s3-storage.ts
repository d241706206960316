/**
 * Copies kept in S3 or an S3-compatible store (MinIO, Cloudflare R2, Ceph RGW …) through the
 * AWS SDK v3. Writes stream in parts (`@aws-sdk/lib-storage`), so a video is never held whole
 * in memory; reads can ask for a byte range; the gateway can hand out presigned URLs instead of
 * proxying the bytes. The SDK is loaded only when this backend is configured.
 */
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { ObjectNotFoundError, type ByteRange, type ObjectStorage } from './object-storage.js';

export interface S3StorageSettings {
  bucket: string;
  /** Key prefix, e.g. `kling-gateway/` (joined as given). */
  prefix: string;
  region: string;
  /** Endpoint of an S3-compatible server (`https://minio.example.com`); absent: AWS. */
  endpoint?: string | undefined;
  /** `bucket` in the path instead of the host name (MinIO, Ceph and most self-hosted stores). */
  forcePathStyle: boolean;
  /** Static credentials; absent: the SDK's default chain (environment, profile, instance role). */
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  sessionToken?: string | undefined;
  /** Bytes per uploaded part (≥ 5 MiB, S3's minimum); parts in flight at once. */
  partSizeBytes: number;
  queueSize: number;
  /**
   * Longest a read waits for the store to begin answering, and a delete for its answer; absent: no
   * limit. The SDK sets none, and a store that takes a request and never answers it held a proxied
   * `GET /content` for as long as its client waited, and a retention pass for good. A read's body
   * is not timed once it flows: a client that pauses a video holds it back.
   */
  answerTimeoutMs?: number | undefined;
}

/**
 * Fields S3 answers a refused signature with, each quoting the request it received: the access key
 * id, the canonical request (its `x-amz-security-token` header is the session token) and the
 * string to sign, as text and as bytes, and the signature. The SDK copies them onto the error it
 * throws, and an error is logged whole; credentials from the SDK's own chain (environment, profile,
 * role) are no configured secret the log scrubber knows.
 */
const ECHOED_REQUEST_FIELDS = ['AWSAccessKeyId', 'CanonicalRequest', 'CanonicalRequestBytes', 'StringToSign', 'StringToSignBytes', 'SignatureProvided'];

/** `error` without what S3 echoed of the request (the store's code, words and status stay). */
function withoutEchoedRequest(error: unknown): unknown {
  if (error !== null && typeof error === 'object') {
    for (const field of ECHOED_REQUEST_FIELDS) delete (error as Record<string, unknown>)[field];
    // The raw answer, where the SDK keeps it: its body is the same XML.
    if (Object.prototype.propertyIsEnumerable.call(error, '$response')) delete (error as Record<string, unknown>).$response;
  }
  return error;
}

/** The SDK modules, loaded once on first use. */
type S3Modules = {
  sdk: typeof import('@aws-sdk/client-s3');
  storage: typeof import('@aws-sdk/lib-storage');
  presigner: typeof import('@aws-sdk/s3-request-presigner');
};

export class S3Storage implements ObjectStorage {
  readonly kind = 's3';
  readonly description: string;

  private constructor(
    private readonly settings: S3StorageSettings,
    private readonly client: S3Client,
    private readonly modules: S3Modules,
  ) {
    this.description = `s3://${settings.bucket}/${settings.prefix}${settings.endpoint ? ` at ${new URL(settings.endpoint).origin}` : ''}`;
  }

  static async open(settings: S3StorageSettings): Promise<S3Storage> {
    const [sdk, storage, presigner] = await Promise.all([
      import('@aws-sdk/client-s3'),
      import('@aws-sdk/lib-storage'),
      import('@aws-sdk/s3-request-presigner'),
    ]);
    const client = new sdk.S3Client({
      region: settings.region,
      forcePathStyle: settings.forcePathStyle,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      ...(settings.accessKeyId && settings.secretAccessKey
        ? {
            credentials: {
              accessKeyId: settings.accessKeyId,
              secretAccessKey: settings.secretAccessKey,
              ...(settings.sessionToken ? { sessionToken: settings.sessionToken } : {}),
            },
          }
        : {}),
      // The SDK's default CRC checksums send bodies as `aws-chunked`, which several S3-compatible
      // stores store verbatim (corrupting the object); checksums only where S3 requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    return new S3Storage(settings, client, { sdk, storage, presigner });
  }

  private keyOf(key: string): string {
    return `${this.settings.prefix}${key}`;
  }

  /**
   * `call` with a signal aborted once `answerTimeoutMs` passed without its answer; the timer is
   * cleared when the answer comes (a read's body then streams untimed). Rejects with the reason.
   */
  private async answeredWithin<T>(what: string, call: (abortSignal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    const limit = this.settings.answerTimeoutMs;
    if (limit === undefined) return call(undefined);
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), limit);
    try {
      return await call(stop.signal);
    } catch (error) {
      if (stop.signal.aborted) throw new Error(`the store did not answer the ${what} within ${limit} ms`);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async write(key: string, body: Readable, options: { contentType: string; signal?: AbortSignal }): Promise<void> {
    const upload = new this.modules.storage.Upload({
      client: this.client,
      params: { Bucket: this.settings.bucket, Key: this.keyOf(key), Body: body, ContentType: options.contentType },
      partSize: this.settings.partSizeBytes,
      queueSize: this.settings.queueSize,
      // A failed multipart upload is aborted, so no invisible parts are left to pay for.
      leavePartsOnError: false,
    });
    const abort = () => void upload.abort().catch(() => undefined);
    options.signal?.addEventListener('abort', abort, { once: true });
    try {
      // A source that fails mid-way must fail the upload, not end it short.
      const failed = new Promise<never>((_resolve, reject) => body.once('error', reject));
      failed.catch(() => undefined);
      await Promise.race([upload.done(), failed]);
    } catch (error) {
      abort();
      throw withoutEchoedRequest(error);
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    try {
      const command = new this.modules.sdk.GetObjectCommand({
        Bucket: this.settings.bucket,
        Key: this.keyOf(key),
        ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
      });
      const answer = await this.answeredWithin('read', (abortSignal) => this.client.send(command, abortSignal ? { abortSignal } : {}));
      return answer.Body as Readable;
    } catch (error) {
      if (error instanceof this.modules.sdk.NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') {
        throw new ObjectNotFoundError(key);
      }
      throw withoutEchoedRequest(error);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      const command = new this.modules.sdk.DeleteObjectCommand({ Bucket: this.settings.bucket, Key: this.keyOf(key) });
      await this.answeredWithin('delete', (abortSignal) => this.client.send(command, abortSignal ? { abortSignal } : {}));
    } catch (error) {
      throw withoutEchoedRequest(error);
    }
  }

  async presignedUrl(key: string, options: { expiresInSeconds: number; contentType: string; filename: string; method: 'GET' | 'HEAD' }): Promise<string> {
    const input = {
      Bucket: this.settings.bucket,
      Key: this.keyOf(key),
      ResponseContentType: options.contentType,
      ResponseContentDisposition: `inline; filename="${options.filename.replace(/["\\\r\n]/g, '_')}"`,
    };
    // S3 signs the method: a HEAD needs a URL presigned for HeadObject.
    const command = options.method === 'HEAD' ? new this.modules.sdk.HeadObjectCommand(input) : new this.modules.sdk.GetObjectCommand(input);
    return this.modules.presigner.getSignedUrl(this.client, command, { expiresIn: options.expiresInSeconds });
  }

  /**
   * Why the bucket does not answer, or undefined when it does: asked at start, so that a missing
   * bucket or refused credentials are in the log before the first copy fails on them. The store's
   * own words (and status), never the credentials. `HeadBucket` needs `s3:ListBucket`: a policy
   * that grants only reads and writes of objects is refused here and still works.
   */
  async problem(timeoutMs: number): Promise<string | undefined> {
    try {
      await this.client.send(new this.modules.sdk.HeadBucketCommand({ Bucket: this.settings.bucket }), { abortSignal: AbortSignal.timeout(timeoutMs) });
      return undefined;
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) return `bucket ${this.settings.bucket} does not exist`;
      if (status === 301) return `bucket ${this.settings.bucket} is in another region than ${this.settings.region}`;
      if (status === 400 || status === 403) {
        return `bucket ${this.settings.bucket} refused the credentials or this request (${status}; the check needs s3:ListBucket)`;
      }
      const { name, message } = error as Error;
      return `bucket ${this.settings.bucket} did not answer (${status ? `${status} ` : ''}${name}: ${message})`;
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
