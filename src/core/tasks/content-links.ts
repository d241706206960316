/**
 * Links to stored outputs (`/v1/videos/{id}/content?index=N`). The route takes the gateway key,
 * and the links a Task carries are also signed: `expires` and an HMAC over task, index and expiry
 * keyed per tenant, so a `<video src>`, a download manager or a webhook receiver can fetch the
 * file without the key until the link expires. A fresh link comes with every read of the task.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface ContentLinkOptions {
  /** The gateway's public base URL (read at call time: tests and tools set it after listening). */
  baseUrl: () => string;
  /** The key that signs a tenant's links; undefined: the tenant's links are not signed (key only). */
  signingKeyFor: (tenant: string) => Buffer | undefined;
  /** How long a signed link works. */
  ttlMs: number;
  now: () => number;
}

/** A link to one stored output and until when its signature holds. */
export interface ContentLink {
  url: string;
  expiresAt: number | null;
}

/** Signatures kept for reuse: links made within a minute are the same link, and reads repeat. */
const SIGNATURE_CACHE_SIZE = 4_096;

export class ContentLinks {
  /** Signatures of recent links, keyed by tenant, task, index and expiry (insertion order: oldest first). */
  private readonly signatures = new Map<string, string>();

  constructor(private readonly options: ContentLinkOptions) {}

  /** The content path of output `index` of a task (relative to the public base URL). */
  static path(taskId: string, index: number): string {
    return `/v1/videos/${encodeURIComponent(taskId)}/content?index=${index}`;
  }

  /** A signed link to output `index` of the task, valid for the configured time. */
  linkFor(tenant: string, taskId: string, index: number): ContentLink {
    const base = `${this.options.baseUrl().replace(/\/+$/, '')}${ContentLinks.path(taskId, index)}`;
    const key = this.options.signingKeyFor(tenant);
    if (!key) return { url: base, expiresAt: null };
    // Whole seconds, rounded up to the minute: links made within a minute are the same link.
    const expires = Math.ceil((this.options.now() + this.options.ttlMs) / 60_000) * 60;
    return { url: `${base}&expires=${expires}&signature=${this.cachedSignature(tenant, key, taskId, index, expires)}`, expiresAt: expires * 1000 };
  }

  /** Whether `signature` is this tenant's valid, unexpired signature of the link. */
  verify(tenant: string, taskId: string, index: number, expires: number, signature: string): boolean {
    const key = this.options.signingKeyFor(tenant);
    if (!key || !Number.isSafeInteger(expires) || expires * 1000 <= this.options.now()) return false;
    const expected = Buffer.from(this.signature(key, taskId, index, expires));
    const given = Buffer.from(signature);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** `signature`, computed once per link while it stays among the most recent (the key is per tenant). */
  private cachedSignature(tenant: string, key: Buffer, taskId: string, index: number, expires: number): string {
    const id = `${tenant}\n${taskId}\n${index}\n${expires}`;
    let signature = this.signatures.get(id);
    if (signature === undefined) {
      signature = this.signature(key, taskId, index, expires);
      if (this.signatures.size >= SIGNATURE_CACHE_SIZE) {
        const oldest = this.signatures.keys().next().value;
        if (oldest !== undefined) this.signatures.delete(oldest);
      }
      this.signatures.set(id, signature);
    }
    return signature;
  }

  private signature(key: Buffer, taskId: string, index: number, expires: number): string {
    return createHmac('sha256', key).update(`content\n${taskId}\n${index}\n${expires}`).digest('base64url');
  }
}
