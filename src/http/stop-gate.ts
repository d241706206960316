/**
 * Graceful stop at the HTTP edge (README "Operations" → stopping). From the moment the gateway
 * starts stopping, `/readyz` answers 503 so a load balancer stops sending, and every new request
 * (on a kept-alive connection the listener no longer guards) is refused with 503, `Retry-After`
 * and `Connection: close`, before it can start any work. Requests that change something and were
 * already running are counted, so the stop can wait for them to end.
 */
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { problems } from '../core/model/problems.js';
import { sendProblem } from './middleware.js';

/** Seconds a refused client is asked to wait (another replica, or this one after its restart). */
const RETRY_AFTER_S = 2;

/** Reads and probes never start work upstream: a stop does not wait for them. */
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export class StopGate {
  private stopping = false;
  private running = 0;
  /** Answers not yet begun: told to close their connection once a stop begins. */
  private readonly pending = new Set<ServerResponse>();
  private waiters: (() => void)[] = [];

  /** Whether the gateway is stopping. */
  get closed(): boolean {
    return this.stopping;
  }

  /** Requests that change something (creates, cancels, provider webhooks) still running. */
  get inFlight(): number {
    return this.running;
  }

  /** From now on new requests are refused and `/readyz` says 503. */
  close(): void {
    this.stopping = true;
    // Requests still running get their answer, on a connection that then closes.
    for (const res of this.pending) if (!res.headersSent) res.shouldKeepAlive = false;
  }

  /** Resolves once no counted request is running. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Counts a request that changes something until its answer is finished or its connection
   * closes (the middleware's, and the hot webhook's, `hot-webhook.ts`).
   */
  count(res: ServerResponse): void {
    this.running += 1;
    this.pending.add(res);
    let counted = true;
    const done = () => {
      if (!counted) return;
      counted = false;
      this.running -= 1;
      this.pending.delete(res);
      if (this.running === 0) for (const resolve of this.waiters.splice(0)) resolve();
    };
    res.once('finish', done);
    res.once('close', done);
  }

  middleware(): RequestHandler {
    return (req, res, next) => {
      if (this.stopping) {
        // Liveness and metrics still answer: the process is alive while it drains.
        if (req.path === '/healthz' || req.path === '/metrics') return next();
        res.set('connection', 'close');
        if (req.path === '/readyz') {
          res.status(503).json({ status: 'stopping' });
          return;
        }
        sendProblem(res, problems.retryLater('the gateway is stopping; send this request again (to another replica)', RETRY_AFTER_S), req.originalUrl);
        return;
      }
      if (READ_METHODS.has(req.method)) return next();
      this.count(res);
      next();
    };
  }
}
