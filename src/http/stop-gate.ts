/**
 * Graceful stop at the HTTP edge (README "Operations" → stopping). From the moment the gateway
 * starts stopping, `/readyz` answers 503 so a load balancer stops sending, and every new request
 * (on a kept-alive connection the listener no longer guards) is refused with 503, `Retry-After`
 * and `Connection: close`, before it can start any work — except a provider's webhook or callback
 * (`POST /v1/webhooks/…`): that is news of a task upstream (the legacy Kling-API sends each
 * callback once), so it is still taken until the listener closes at the end of the drain, and
 * answered with `Connection: close`. Requests that change something and were already running are
 * counted, so the stop can wait for them to end.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RequestHandler } from 'express';
import { problems, type ProblemError } from '../core/model/problems.js';
import { sendProblem, STOP_REFUSAL_LOCAL } from './middleware.js';

/** Seconds a refused client is asked to wait (another replica, or this one after its restart). */
const RETRY_AFTER_S = 2;

/**
 * How long, at most, the end of a stop waits for connections it accepted to send their request,
 * and for answers being written (refusals, event streams and waits being ended, downloads).
 */
const FRESH_CONNECTION_GRACE_MS = 2_000;
/**
 * How long, at most, the end of a stop waits for provider webhooks and callbacks taken during the
 * drain whose handling is slow (a store failing over): news a provider may never send again.
 */
const NEWS_GRACE_MS = 30_000;
/** A pause that lets the event loop accept connections waiting on the listener. */
const ACCEPT_TURN_MS = 5;

/** Reads and probes never start work upstream: a stop does not wait for them. */
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The inbound provider webhook and callback routes (`webhook-routes.ts`), under express's path. */
const PROVIDER_NEWS_PATH = /^\/v1\/webhooks\/[^/]+(?:\/[^/]+)?\/?$/;

/** What a request a stopping gateway will not serve is answered (with `Connection: close`). */
export function gatewayStopping(): ProblemError {
  return problems.retryLater('the gateway is stopping; send this request again (to another replica)', RETRY_AFTER_S);
}

/** Whether a request is a provider's webhook or callback, which a stopping gateway still takes. */
export function isProviderNews(method: string | undefined, path: string): boolean {
  return method === 'POST' && PROVIDER_NEWS_PATH.test(path);
}

export class StopGate {
  private stopping = false;
  private running = 0;
  /** Provider webhooks and callbacks still being handled (also counted in `running`). */
  private news = 0;
  /**
   * Answers not yet begun: told to close their connection once a stop begins. Counted requests,
   * and reads (a `?wait=` held up to a minute among them), which the drain does not wait for: a
   * held wait is answered at the end of the drain, moments before the listener closes every
   * connection, and kept alive its connection invited the client's next request, which the close
   * then reset.
   */
  private readonly pending = new Set<ServerResponse>();
  private waiters: (() => void)[] = [];
  private newsWaiters: (() => void)[] = [];

  /** Whether the gateway is stopping. */
  get closed(): boolean {
    return this.stopping;
  }

  /** Requests that change something (creates, cancels, provider webhooks) still running. */
  get inFlight(): number {
    return this.running;
  }

  /**
   * Counted requests the drain waits for: creates and cancels (what a client is waiting on), and
   * provider webhooks that arrived before the stop. Webhooks taken during the drain are answered
   * before the listener closes (`ListenerStop`), and do not hold the drain open.
   */
  get inFlightWork(): number {
    return this.running - this.news;
  }

  /** From now on new requests are refused and `/readyz` says 503. */
  close(): void {
    this.stopping = true;
    // Requests still running get their answer, on a connection that then closes.
    for (const res of this.pending) if (!res.headersSent) res.shouldKeepAlive = false;
  }

  /** Resolves once no provider webhook or callback taken during the stop is still being handled. */
  newsAnswered(): Promise<void> {
    if (this.news === 0) return Promise.resolve();
    return new Promise((resolve) => this.newsWaiters.push(resolve));
  }

  /** Resolves once no counted request is running. */
  idle(): Promise<void> {
    if (this.inFlightWork === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Counts a request that changes something until its answer is finished or its connection
   * closes (the middleware's, and the hot webhook's, `hot-webhook.ts`). A provider webhook taken
   * once the stop began (`duringStop`) is answered with `Connection: close`, and the drain does
   * not wait for it.
   */
  count(res: ServerResponse, duringStop = false): void {
    this.running += 1;
    if (duringStop) {
      this.news += 1;
      res.shouldKeepAlive = false;
    }
    this.pending.add(res);
    let counted = true;
    const done = () => {
      if (!counted) return;
      counted = false;
      this.running -= 1;
      if (duringStop) this.news -= 1;
      this.pending.delete(res);
      if (this.news === 0) for (const resolve of this.newsWaiters.splice(0)) resolve();
      if (this.inFlightWork === 0) for (const resolve of this.waiters.splice(0)) resolve();
    };
    res.once('finish', done);
    res.once('close', done);
  }

  middleware(): RequestHandler {
    return (req, res, next) => {
      if (this.stopping) {
        // Liveness and metrics still answer: the process is alive while it drains.
        if (req.path === '/healthz' || req.path === '/metrics') return next();
        // News of a task upstream is still taken: the legacy Kling-API sends a callback once.
        if (isProviderNews(req.method, req.path)) {
          this.count(res, true);
          return next();
        }
        res.set('connection', 'close');
        res.locals[STOP_REFUSAL_LOCAL] = true;
        const refuse = () => {
          if (req.path === '/readyz') res.status(503).json({ status: 'stopping' });
          else sendProblem(res, gatewayStopping(), req.occurrence);
        };
        // The body is read first: a connection closed with a body left unread ends with a reset,
        // which can reach the client before the 503 and read to it as "maybe created".
        if (req.readableEnded) refuse();
        else req.once('end', refuse).resume();
        return;
      }
      if (READ_METHODS.has(req.method)) {
        this.pending.add(res);
        const done = () => this.pending.delete(res);
        res.once('finish', done);
        res.once('close', done);
        return next();
      }
      this.count(res);
      next();
    };
  }
}

/**
 * The listener's end of a stop. Node's `server.close()` destroys every connection it counts as
 * idle, and a connection accepted whose request has not been read yet counts as idle: a create
 * already on its way in would be reset, and a client without an Idempotency-Key could not tell
 * whether its video was made. So the listener stays open through the drain (every request is
 * answered 503 with `Connection: close`); at its end it stops accepting, gives connections it had
 * accepted a moment to send their request and get that answer, and only then closes the rest
 * (kept-alive idle ones, long-held waits and event streams).
 *
 * A worker of `WORKERS` does not listen itself: the primary holds the port and hands it the
 * connections it accepts (`workers/primary.ts`). There the listener's end is the primary's,
 * which `noMoreConnections` waits for: the primary stops accepting once every worker has
 * drained, hands over what it had accepted, and only then says so.
 */
export class ListenerStop {
  /** Connections that have not sent a request's headers yet. */
  private readonly fresh = new Set<Socket>();
  /** Answers not yet written: refusals once the stop began, event streams and waits being ended. */
  private readonly answering = new Set<ServerResponse>();

  constructor(
    private readonly server: Server,
    /** Resolves once no connection comes any more (the listener closed, or the primary said so). */
    private readonly noMoreConnections: () => Promise<void> = async () => undefined,
    /** Resolves once the provider news taken during the stop is answered (`StopGate.newsAnswered`). */
    private readonly newsAnswered: () => Promise<void> = async () => undefined,
  ) {
    server.on('connection', (socket: Socket) => {
      this.fresh.add(socket);
      socket.once('close', () => this.fresh.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.fresh.delete(req.socket);
      this.answering.add(res);
      const done = () => this.answering.delete(res);
      res.once('finish', done);
      res.once('close', done);
    });
  }

  /**
   * Closes the listener without resetting a request already sent: connections waiting to be
   * accepted are taken and answered first (a listener that closes resets them), then it stops
   * accepting, gives the last ones accepted a moment too, waits for provider webhooks and
   * callbacks taken during the stop to be answered (at most `NEWS_GRACE_MS`: their handling may be
   * slow, and a provider may never send them again), and then closes every connection.
   */
  async close(): Promise<void> {
    const { server } = this;
    await this.answerWaiting();
    // `net.Server#close` only stops accepting; `http.Server#close` would also drop the fresh ones.
    const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
    await this.noMoreConnections();
    await this.answerWaiting();
    // A provider's webhook or callback still being handled is answered, not reset (bounded).
    const grace = new AbortController();
    await Promise.race([this.newsAnswered(), sleep(NEWS_GRACE_MS, undefined, { signal: grace.signal }).catch(() => undefined)]);
    grace.abort();
    server.closeAllConnections();
    // Also ends the connection checks `http.Server` runs (its `close()` after the listener's is a no-op otherwise).
    server.close();
    await closed;
  }

  /** Lets the event loop accept what is waiting, then waits (briefly) for those requests to be answered. */
  private async answerWaiting(): Promise<void> {
    const deadline = Date.now() + FRESH_CONNECTION_GRACE_MS;
    await sleep(ACCEPT_TURN_MS);
    while ((this.fresh.size > 0 || this.answering.size > 0) && Date.now() < deadline) await sleep(ACCEPT_TURN_MS);
  }
}
