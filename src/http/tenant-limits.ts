/**
 * Per-tenant request limits at the door: creates per minute (counted across replicas by the
 * limiter the composition root hands in), event streams and `?wait` requests open at once (per
 * replica), and the time a client may take to send a request body. Beyond a limit: 429 with
 * Retry-After, or 408 for a body too slow, as problem details.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import type { Clock } from '../core/clock.js';
import { ProblemError, problems } from '../core/model/problems.js';
import { announcesBody, authorizationRepeated, authorizationTwice, bearerKeyOf, otherTransferCoding, sendProblem } from './middleware.js';
import { WEBHOOK_BODY_LIMIT } from './webhook-body-budget.js';

/** One tenant's limits, resolved (its own block over the defaults). */
export interface TenantLimitSettings {
  creates_per_minute: number;
  open_streams: number;
  open_waits: number;
}

/** Counts creates per tenant; shared by replicas when they share a database. */
export interface CreateLimiter {
  /** Rejects with an error whose `unanswered` is true when whoever keeps the count did not answer in time. */
  take(tenant: string): Promise<{ allowed: true; countedUntil: number } | { allowed: false; retryAfterMs: number }>;
  /** Uncounts a create `take` let through (while its window lasts): one refused as bad input made nothing. */
  giveBack(tenant: string, countedUntil: number): Promise<void>;
}

/** Seconds a client is asked to wait when its create could not be counted. */
const LIMITER_RETRY_AFTER_S = 2;

/** Where `createRateLimit` leaves the counted create for `giveBackRefusedCreate` (`res.locals`). */
const COUNTED_CREATE = 'countedCreate';

/** 429 with Retry-After once a tenant has used its creates of the current minute. */
export function createRateLimit(
  limiter: CreateLimiter,
  limitsFor: (tenant: string) => TenantLimitSettings,
  /** Whether an Idempotency-Key already made a task: its repeat makes no video, so the limit lets it by. */
  isRepeat: (tenant: string, key: string) => Promise<boolean> = async () => false,
): RequestHandler {
  return async (req, res, next) => {
    const tenant = req.tenant;
    if (!tenant) return next();
    let decision: Awaited<ReturnType<CreateLimiter['take']>>;
    try {
      decision = await limiter.take(tenant);
    } catch (error) {
      if ((error as { unanswered?: unknown } | undefined)?.unanswered !== true) {
        next(error);
        return;
      }
      // The count was not had in time (with WORKERS, the primary that keeps it is busy: a burst
      // on a loaded machine): nothing was made, and the same create sent again shortly goes
      // through. Not a 500, which tells a client something broke.
      next(
        problems.retryLater(
          `The gateway could not count this create against the tenant's creates per minute in time, and made nothing; send the create again after Retry-After seconds (with the same Idempotency-Key it never makes a second task).`,
          LIMITER_RETRY_AFTER_S,
        ),
      );
      return;
    }
    try {
      if (decision.allowed) {
        res.locals[COUNTED_CREATE] = { tenant, countedUntil: decision.countedUntil };
        return next();
      }
      // A client sending its create again after a lost answer gets its task, not a 429.
      const key = req.header('idempotency-key');
      if (key !== undefined && (await isRepeat(tenant, key))) return next();
      const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      const perMinute = limitsFor(tenant).creates_per_minute;
      next(
        problems.tooManyRequests(
          `This key's tenant may create ${perMinute} ${perMinute === 1 ? 'video' : 'videos'} per minute; retry in ${seconds} s.`,
          seconds,
        ),
      );
    } catch (error) {
      next(error);
    }
  };
}

/**
 * After the create route, for its errors: bad input changes nothing, the tenant's creates of the
 * minute included. A create refused for what it asked (400, 409, 415, 422: no task, and the same
 * request never makes one) gives back the place `createRateLimit` counted, before the refusal is
 * answered (so a client that corrects its request at once finds it there). Other errors keep it,
 * 402 among them: a budget refusal depends on what the tenant has spent, not on what was asked,
 * and each costs the store two writes (the create rolled back, the budget alert), so a client
 * retrying it in a loop is limited like any other.
 */
export function giveBackRefusedCreate(limiter: CreateLimiter): ErrorRequestHandler {
  return async (error: unknown, _req, res, next) => {
    const status = error instanceof ProblemError ? error.status : undefined;
    if (status !== undefined && status >= 400 && status < 500 && status !== 402 && status !== 429) await giveBackCounted(limiter, res);
    next(error);
  };
}

/**
 * For a create answered as a repeat (its Idempotency-Key's task): it made no video, so it gives
 * back the place `createRateLimit` counted, as a repeat past the limit is let through uncounted.
 * Called before the answer is sent.
 */
export function giveBackReplayedCreate(limiter: CreateLimiter): (res: Response) => Promise<void> {
  return (res) => giveBackCounted(limiter, res);
}

/** Uncounts the create `createRateLimit` counted for this request, if it counted one (once). */
async function giveBackCounted(limiter: CreateLimiter, res: Response): Promise<void> {
  const counted = res.locals[COUNTED_CREATE] as { tenant: string; countedUntil: number } | undefined;
  if (!counted) return;
  res.locals[COUNTED_CREATE] = undefined;
  await limiter.giveBack(counted.tenant, counted.countedUntil).catch(() => undefined);
}

export type OpenKind = 'streams' | 'waits';

/** Requests a tenant holds open at once on this replica (event streams, long waits). */
export class OpenRequestCaps {
  private readonly open = new Map<string, number>();

  constructor(private readonly limitsFor: (tenant: string) => TenantLimitSettings) {}

  /**
   * Takes a place for `tenant`, or throws a 429 when its places are all taken. The returned
   * function gives the place back (once, however often it is called).
   */
  acquire(tenant: string, kind: OpenKind): () => void {
    const key = `${kind}\u0000${tenant}`;
    const limits = this.limitsFor(tenant);
    const cap = kind === 'streams' ? limits.open_streams : limits.open_waits;
    const current = this.open.get(key) ?? 0;
    if (current >= cap) {
      const what = kind === 'streams' ? 'event streams' : '?wait requests';
      throw problems.tooManyRequests(`This key's tenant already holds ${cap} ${what} open; close one or retry later.`, 1);
    }
    this.open.set(key, current + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    };
  }
}

/** True when a request announces a body still to come. */
function hasBody(req: IncomingMessage): boolean {
  return !req.complete && announcesBody(req);
}

/**
 * Gives a client `timeoutMs` (on the gateway's clock) to send its whole body; after that the
 * request is answered 408 (by `sendTimeout`) and its connection closed, so a slow body cannot hold
 * a socket and a parser open. For express's routes (`bodyTimeout`) and the hot webhook alike.
 */
export function limitBodyTime(
  req: IncomingMessage,
  res: ServerResponse,
  timeoutMs: number,
  clock: Clock,
  sendTimeout: (problem: ProblemError) => void,
): void {
  if (!hasBody(req)) return;
  const timer = clock.setTimeout(() => {
    if (req.complete || res.headersSent) return;
    res.setHeader('connection', 'close');
    res.once('finish', () => req.socket.destroy());
    sendTimeout(new ProblemError(408, 'request-timeout', 'Request timeout', `The request body did not arrive within ${timeoutMs} ms.`));
  }, timeoutMs);
  const clear = () => timer.cancel();
  req.once('end', clear);
  req.once('close', clear);
  res.once('close', clear);
}

/**
 * Every request the server takes, answered or not: one whose body is still arriving
 * `timeoutMs` (on the gateway's clock) after it came has its connection closed once its answer
 * is written. A refusal given before the body was read (`401`, `404`, a read that takes no body)
 * does not end the request for node, which goes on reading the body it announced (up to its own
 * `requestTimeout`, minutes) to keep the connection for the next one: a client sending a byte now
 * and then held the socket that long, with no key. A request still unanswered then gets its `408`
 * from `limitBodyTime`. The timer is set only for an answer that finished before its body came
 * (rare), so a request read whole first (every create) costs a clock read and one listener.
 */
export function closeLateBodies(listener: (req: IncomingMessage, res: ServerResponse) => void, timeoutMs: number, clock: Clock) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (hasBody(req)) {
      const arrivedAt = clock.now();
      res.once('finish', () => {
        if (req.complete) return;
        const timer = clock.setTimeout(() => {
          if (!req.complete) req.socket.destroy();
        }, arrivedAt + timeoutMs - clock.now());
        const clear = () => timer.cancel();
        req.once('end', clear);
        req.once('close', clear);
      });
    }
    listener(req, res);
  };
}

/** `limitBodyTime` for every request express answers: mounted before every body parser, the webhook routes' raw one included. */
export function bodyTimeout(timeoutMs: number, clock: Clock): RequestHandler {
  return (req, res, next) => {
    limitBodyTime(req, res, timeoutMs, clock, (problem) => sendProblem(res, problem, req.occurrence));
    next();
  };
}

/** The path of a request target, also in absolute form (`POST http://host/v1/webhooks/…`, which express routes by its path). */
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;
/** The webhook routes, as express matches their mount (any letter case). */
const WEBHOOK_PATH = /^\/v1\/webhooks(?:[/?]|$)/i;

/**
 * What tells whether a request announces a body over the limit of its route: its `Content-Length`
 * (as sent: no content coding, or `identity`) past `bodyLimit` bytes, or past `WEBHOOK_BODY_LIMIT`
 * on the webhook routes. Returns the limit it is over, or undefined. A chunked or compressed body
 * has no length to judge here: its parser counts what it reads.
 */
export function oversizeBody(bodyLimit: number): (req: IncomingMessage) => number | undefined {
  return (req) => {
    const length = req.headers['content-length'];
    if (length === undefined) return undefined;
    const coding = req.headers['content-encoding'];
    if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') return undefined;
    const limit = WEBHOOK_PATH.test((req.url ?? '').replace(ABSOLUTE_FORM, '')) ? WEBHOOK_BODY_LIMIT : bodyLimit;
    return Number(length) > limit ? limit : undefined;
  };
}

/** The refusal of a body over `limit` bytes, as express's body parsers word it. */
function tooLarge(limit: number): ProblemError {
  return new ProblemError(413, 'too-large', 'Payload too large', `The body exceeds ${limit} bytes.`);
}

/**
 * A request announcing a body over its route's limit (`oversizeBody`) is refused `413` at once,
 * before anything reads its body, and its connection is closed once answered (the body is never
 * read). Express's body parsers see such a length too, but read the whole body before they answer:
 * a client got its `413` only after sending every byte, or a `408` when they did not come in time.
 */
export function refuseOversizeBody(over: (req: IncomingMessage) => number | undefined): RequestHandler {
  return (req, res, next) => {
    const limit = over(req);
    if (limit === undefined) return next();
    res.setHeader('connection', 'close');
    next(tooLarge(limit));
  };
}

/**
 * The server's `checkContinue` listener (a request with `Expect: 100-continue`): `100 Continue`
 * only for a body the gateway may read: within its route's limit, in no transfer coding but
 * `chunked`, of a request not refused before any route (`refusedFirst`: a Host naming no host,
 * too many header lines). Another gets no invitation to send the body: the request goes on to be
 * refused by `refuseOversizeBody`, `refuseTransferCodings` or the server's own checks, its
 * connection closed whatever answers it. Either way it then goes on as every request does
 * (`request`), as node would send it on after writing `100 Continue` itself.
 */
export function continueWithinLimit(over: (req: IncomingMessage) => number | undefined, refusedFirst: (req: IncomingMessage) => boolean = () => false) {
  return function (this: Server, req: IncomingMessage, res: ServerResponse): void {
    if (!refusedFirst(req) && over(req) === undefined && otherTransferCoding(req) === undefined) res.writeContinue();
    else res.setHeader('connection', 'close');
    this.emit('request', req, res);
  };
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/** A `Forwarded: for=` node as an address: no quotes, no brackets, no port. */
function forwardedNode(node: string): string {
  const unquoted = node.replace(/^"|"$/g, '');
  const bracketed = /^\[([^\]]*)\]/.exec(unquoted);
  if (bracketed) return bracketed[1]!;
  return /^\d+\.\d+\.\d+\.\d+:\d+$/.test(unquoted) ? unquoted.replace(/:\d+$/, '') : unquoted;
}

/**
 * Every client a proxy in front says it forwards for (`X-Forwarded-For`, `Forwarded: for=`,
 * `X-Real-IP`, which nginx is often set up to send alone, and the CDNs' `CF-Connecting-IP` and
 * `True-Client-IP`, which a proxy behind one may pass on as they came).
 */
function forwardedClients(req: Request): string[] {
  const listed = (req.header('x-forwarded-for') ?? '').split(',').map((entry) => entry.trim());
  const forwarded = [...(req.header('forwarded') ?? '').matchAll(/for=\s*("[^"]*"|[^;,\s]*)/gi)].map((match) => forwardedNode(match[1]!));
  const named = ['x-real-ip', 'cf-connecting-ip', 'true-client-ip'].flatMap((header) =>
    (req.header(header) ?? '').split(',').map((entry) => entry.trim()),
  );
  return [...listed, ...forwarded, ...named].filter((entry) => entry !== '');
}

/**
 * Who may read `/metrics`: with a token, whoever sends it as a bearer token (compared as SHA-256
 * digests); without one, everybody in the sandbox and loopback clients only in a live deployment
 * (the figures show spend per provider and model). A request a proxy on this host forwards comes
 * from loopback too: it is a loopback client's only when every client the proxy names is
 * (`forwardedClients`).
 */
export function metricsAccess(token: string | undefined, live: boolean, digest: (text: string) => string): RequestHandler {
  const expected = token ? digest(token) : undefined;
  return (req, _res, next) => {
    if (expected) {
      if (authorizationRepeated(req)) return next(authorizationTwice());
      const token = bearerKeyOf(req.header('authorization'));
      if (token && digest(token) === expected) return next();
      return next(problems.unauthorized('Send the metrics token as "Authorization: Bearer <token>".'));
    }
    if (!live) return next();
    if (isLoopback(req.socket.remoteAddress ?? '') && forwardedClients(req).every(isLoopback)) return next();
    next(problems.forbidden('Metrics are served to loopback clients only; set server.metrics_token (METRICS_TOKEN) to read them from elsewhere.'));
  };
}
