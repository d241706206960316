/**
 * The memory unauthenticated webhook bodies may take at once. The webhook routes take no key and
 * read a body up to `WEBHOOK_BODY_LIMIT` each: without a bound, many webhooks held open mid-body
 * (each within the body time limit) buffered their bodies side by side, hundreds of MB. One
 * budget per process, shared by the hot webhook and express's webhook routes: a body counts as
 * its `Content-Length` (at most the limit), or as the whole limit when chunked; a webhook that
 * does not fit is refused before its body is read (503 with Retry-After, connection closed), and
 * its sender retries. A body counts until its webhook is answered (it is in memory while it is
 * handled) or its connection closes, however it ends: answered, its client gone, its answer over
 * before its body came (a 408), the server closing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { problems, type ProblemError } from '../core/model/problems.js';

/**
 * Largest webhook body read, in bytes (256 KiB, as `server.body_limit`'s default). The routes take
 * no key, so whoever finds them may send this much per request. What the providers send is a few
 * KB: a Freepik webhook is a task's id, status and result URLs, a legacy callback a task with its
 * video URLs and no prompt.
 */
export const WEBHOOK_BODY_LIMIT = 256 * 1024;

/** Seconds a refused sender is asked to wait: bodies held open end within the body time limit. */
const RETRY_AFTER_S = 5;

/** What a webhook's body counts: its announced length within the limit, the limit when chunked. */
function bytesOf(req: IncomingMessage): number {
  const { headers } = req;
  if (headers['transfer-encoding'] !== undefined) return WEBHOOK_BODY_LIMIT;
  const length = headers['content-length'];
  if (length === undefined) return 0;
  const bytes = Number(length);
  // Over the limit, express's raw parser refuses it (413) and discards its body as it comes.
  return Number.isFinite(bytes) && bytes >= 0 ? Math.min(bytes, WEBHOOK_BODY_LIMIT) : WEBHOOK_BODY_LIMIT;
}

function closeAfterAnswer(this: ServerResponse): void {
  this.socket?.destroy();
}

export class WebhookBodyBudget {
  private used = 0;

  constructor(readonly maxBytes: number) {}

  /**
   * Counts `req`'s body until it is answered or its connection closes, or, when it does not fit, readies `res` for
   * the refusal (`Connection: close`, the connection closed once answered) and returns it.
   */
  take(req: IncomingMessage, res: ServerResponse): ProblemError | undefined {
    // A request whose client is gone already reads no body.
    if (req.destroyed) return undefined;
    const bytes = bytesOf(req);
    if (bytes === 0) return undefined;
    if (this.used + bytes > this.maxBytes) {
      res.setHeader('connection', 'close');
      res.once('finish', closeAfterAnswer);
      return problems.retryLater(
        `The gateway is reading as many webhook bodies as it takes at once; it read nothing of this one. Send it again after Retry-After seconds.`,
        RETRY_AFTER_S,
      );
    }
    this.used += bytes;
    // Held until the webhook is answered (its body is in memory while it is handled), or until its
    // connection closes: a webhook sent behind one still being answered never gets its answer
    // closed once the client is gone. Given back once, whichever comes first.
    const { socket } = req;
    let held = true;
    const giveBack = () => {
      if (!held) return;
      held = false;
      this.used -= bytes;
      socket.off('close', giveBack);
    };
    res.once('close', giveBack);
    socket.once('close', giveBack);
    return undefined;
  }

  /** `take` for express's webhook routes, before their body parser. */
  middleware(): RequestHandler {
    return (req, res, next) => next(this.take(req, res));
  }
}
