/**
 * `GET /v1/videos/{id}/content?index=N` (SPEC §7): finds the stored copy of one output for a
 * caller who holds the tenant's gateway key or a signed link to it. What is found is described
 * here; the HTTP route does the byte ranges and conditional requests.
 */
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { TERMINAL_STATUSES } from '../model/canonical.js';
import { problems } from '../model/problems.js';
import { queryNumber } from '../model/query-number.js';
import { ObjectNotFoundError, type ByteRange } from '../../storage/object-storage.js';
import type { Engine } from './engine.js';
import { extensionOf, mediaTypeOf } from './output-copy.js';
import { parseQuery } from './task-service.js';

export const ContentQuery = z.strictObject({
  index: queryNumber(z.number().int().min(0).max(1000)).default(0),
  expires: queryNumber(z.number().int().positive()).optional(),
  signature: z.string().min(1).max(200).optional(),
});

/** What a caller is told to wait before asking again for a copy storage could not read. */
const STORAGE_RETRY_AFTER_SECONDS = 10;

/** A stored copy the route may serve. */
export interface StoredContent {
  kind: 'stored';
  bytes: number;
  sha256: string;
  contentType: string;
  /** `<task id>-<index>.<ext>`, for `Content-Disposition`. */
  filename: string;
  storedAt: number;
  /** Reads the copy (or one range of it). */
  open(range?: ByteRange): Promise<Readable>;
}

/** Where a caller is sent instead: a presigned storage URL, or the upstream's own URL. */
export interface RedirectContent {
  kind: 'redirect';
  location: string;
  /** `presigned` (storage serves the copy) or `upstream` (no copy is kept). */
  via: 'presigned' | 'upstream';
}

export class OutputContent {
  constructor(private readonly engine: Engine) {}

  /**
   * The output a caller asked for. `tenant` is set when the caller sent a valid gateway key;
   * otherwise the link's signature must hold. Throws problem details: 400 bad query, 401 no key
   * and no valid signature, 404 no such task or output, 409 still generating or being copied, 410
   * deleted or gone upstream, 503 storage could not read the copy. `method` is the caller's (a
   * presigned URL works for the method it was signed for only).
   */
  async locate(tenant: string | undefined, id: string, query: unknown, method: 'GET' | 'HEAD' = 'GET'): Promise<StoredContent | RedirectContent> {
    const { index, expires, signature } = parseQuery(ContentQuery, query);
    const { tasks, links, storage, config } = this.engine;
    const task = await tasks.get(id);
    if (tenant === undefined) {
      const signed = task && expires !== undefined && signature !== undefined && links.verify(task.tenant, id, index, expires, signature);
      if (!signed) {
        throw problems.unauthorized(
          'Send your gateway key as "Authorization: Bearer <key>", or use the signed link from the task (it may have expired: read the task again).',
        );
      }
    } else if (!task || task.tenant !== tenant) {
      throw problems.notFound(`video ${id} not found`);
    }
    if (!task) throw problems.notFound(`video ${id} not found`);
    const output = task.outputs[index];
    if (!output && task.outputs.length === 0 && !TERMINAL_STATUSES.has(task.status)) {
      // Not "no such output": the task has not reported its outputs yet (as one being copied, 409).
      throw problems.conflict(`video ${id} is still ${task.status}; its outputs are served once the task has succeeded.`);
    }
    if (!output) {
      throw problems.notFound(`video ${id} has ${task.outputs.length} output${task.outputs.length === 1 ? '' : 's'}; there is none at index ${index}`);
    }
    switch (output.storage) {
      case 'pending':
        throw problems.conflict(`output ${index} of video ${id} is still being copied into storage; it is served once the task has succeeded.`);
      case 'expired':
        throw problems.gone(`output ${index} of video ${id} was ${output.storageError ?? 'deleted after its retention'}.`);
      case 'not_stored':
      case 'passthrough':
        if (output.upstreamGone) {
          throw problems.gone(
            `output ${index} of video ${id} was not stored (${output.storageError ?? 'storage is off'}) and the provider no longer has it.`,
          );
        }
        if (output.upstreamExpiresAt !== null && this.engine.clock.now() >= output.upstreamExpiresAt) {
          // The provider documents how long it keeps results: past that, a redirect leads to a dead link.
          throw problems.gone(
            `output ${index} of video ${id} was not stored (${output.storageError ?? 'storage is off'}), and the provider kept its copy until ${new Date(output.upstreamExpiresAt).toISOString()} only.`,
          );
        }
        return { kind: 'redirect', location: output.upstreamUrl, via: 'upstream' };
      case 'stored':
        break;
    }
    if (!storage || !output.key || output.sha256 === null || output.bytes === null) {
      throw problems.gone(`output ${index} of video ${id} was stored, but the gateway's storage is not configured any more.`);
    }
    const key = output.key;
    // Checked again here: copies stored before the type was checked at copy time may carry any.
    const contentType = mediaTypeOf(output.contentType ?? undefined, output.upstreamUrl, output.type);
    const filename = `${id}-${index}.${extensionOf(contentType)}`;
    if (storage.presignedUrl && config.storage.s3.serve === 'redirect') {
      let location;
      try {
        location = await storage.presignedUrl(key, {
          expiresInSeconds: config.storage.s3.presign_ttl_seconds,
          contentType,
          filename,
          method,
        });
      } catch (error) {
        // No credentials to sign with right now (the SDK's chain: a role's credentials not
        // refreshed, a metadata endpoint not answering): as a copy storage cannot read, the
        // operator's to fix and the caller's to retry, never an internal error.
        this.engine.logger.error({ task_id: id, output: index, err: error, storage: storage.description }, 'a stored copy could not be presigned');
        throw problems.retryLater(`the stored copy of output ${index} of video ${id} could not be read from storage right now; try again shortly.`, STORAGE_RETRY_AFTER_SECONDS);
      }
      return { kind: 'redirect', location, via: 'presigned' };
    }
    return {
      kind: 'stored',
      bytes: output.bytes,
      sha256: output.sha256,
      contentType,
      filename,
      storedAt: output.storedAt ?? task.completedAt ?? task.updatedAt,
      open: async (range) => {
        try {
          return await storage.read(key, range);
        } catch (error) {
          if (error instanceof ObjectNotFoundError) throw problems.gone(`the stored copy of output ${index} of video ${id} is missing from storage.`);
          // Storage down, a bucket gone or credentials refused: the operator's to fix, the caller's to
          // retry. The store's own words go to the log, not to the caller.
          this.engine.logger.error({ task_id: id, output: index, err: error, storage: storage.description }, 'a stored copy could not be read');
          throw problems.retryLater(`the stored copy of output ${index} of video ${id} could not be read from storage right now; try again shortly.`, STORAGE_RETRY_AFTER_SECONDS);
        }
      },
    };
  }
}
