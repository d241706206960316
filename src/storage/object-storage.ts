/**
 * Where the gateway keeps copies of results: one interface over the local filesystem (the
 * embedded default) and S3-compatible object storage. Backends move bytes by key and know
 * nothing of tasks; hashing, naming and retention are the engine's.
 */
import type { Readable } from 'node:stream';

/** A byte range, both ends inclusive (as HTTP `Range` gives it). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectStorage {
  /** `filesystem` or `s3`. */
  readonly kind: string;
  /** Where it is, without credentials (for logs). */
  readonly description: string;
  /**
   * Writes `body` under `key`, streaming. The object appears whole or not at all: a failed or
   * aborted write leaves nothing (or the previous object) behind.
   */
  write(key: string, body: Readable, options: { contentType: string; signal?: AbortSignal }): Promise<void>;
  /** Reads the object, or one range of it. Throws `ObjectNotFoundError` when it is not there. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /** Deletes the object; nothing happens when it is not there. */
  delete(key: string): Promise<void>;
  /**
   * A time-limited URL that serves the object without the gateway (S3 presigned), for backends
   * that have one. It works for `method` only (the method is part of what S3 signs): a HEAD is
   * refused on a URL presigned for GET.
   */
  presignedUrl?(key: string, options: { expiresInSeconds: number; contentType: string; filename: string; method: 'GET' | 'HEAD' }): Promise<string>;
  /**
   * Deletes what writes of processes that died mid-write left behind, untouched for `idleMs`;
   * returns how many. The filesystem's temporary files; not S3's (a bucket lifecycle rule
   * aborts incomplete multipart uploads there).
   */
  sweepAbandoned?(idleMs: number): Promise<number>;
  /**
   * Why the store does not answer, or undefined when it does, within `timeoutMs`: asked at start so
   * that a missing bucket or refused credentials show in the log before the first copy fails. For
   * backends that can tell (S3); never the credentials.
   */
  problem?(timeoutMs: number): Promise<string | undefined>;
  close(): Promise<void>;
}

/** The object is not in storage. */
export class ObjectNotFoundError extends Error {
  override readonly name = 'ObjectNotFoundError';
  constructor(readonly key: string) {
    super(`no stored object ${key}`);
  }
}
