/**
 * Cross-cutting HTTP concerns: request ids, gateway-key auth, HTTP metrics, and turning every
 * error into RFC 9457 problem details.
 */
import { createHash, randomUUID } from 'node:crypto';
import { ServerResponse, STATUS_CODES, type IncomingMessage, type RequestListener } from 'node:http';
import type { Socket } from 'node:net';
import { unescape } from 'node:querystring';
import type { Duplex } from 'node:stream';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import { ProblemError, problems } from '../core/model/problems.js';
import { parseQuery } from '../core/tasks/task-service.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { problemJson } from './express-answer.js';
import type { RouteTable } from './route-table.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** The request id (from `x-request-id` when the client sent a sane one). */
    id: string;
    /** This request's own id, unique even when clients repeat an `x-request-id` (`requestIdsOf`). */
    occurrence: string;
    /** Tenant of the gateway key, once authenticated. */
    tenant?: string;
    /** Where the router that handled the request is mounted (express resets `baseUrl` on exit). */
    mountPath?: string;
  }
}

/** Use first in every mounted router, so metrics can name the route after an error too. */
export function rememberMountPath(): RequestHandler {
  return (req, _res, next) => {
    req.mountPath = req.baseUrl;
    next();
  };
}

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * A request's two ids. `id` correlates: the client's `x-request-id` when it sent a sane one, else
 * a fresh UUID; the answer echoes it and every log line about the request carries it as
 * `request_id`. `occurrence` names this one request, and a problem's `instance` carries it: a
 * client may send the same id on every request (a retry, a fixed value, a proxy's trace id), and
 * the occurrence must still tell them apart. It is `id` itself when the gateway made `id` up.
 */
export interface RequestIds {
  readonly id: string;
  readonly occurrence: string;
}

/** A request's ids (`RequestIds`), from its `x-request-id` header. */
export function requestIdsOf(header: string | string[] | undefined): RequestIds {
  if (typeof header === 'string' && CLIENT_REQUEST_ID.test(header)) return { id: header, occurrence: randomUUID() };
  const id = randomUUID();
  return { id, occurrence: id };
}

/** Where a route puts the id of the task a request is about (`res.locals`), for its log line. */
export const TASK_ID_LOCAL = 'taskId';

/**
 * Set by a route whose answers time differently from its plain ones (`?wait`, a long poll): its
 * metrics route gets this suffix (`/v1/videos/:id?wait`), so a read held for a minute does not
 * read as a slow read.
 */
export const ROUTE_VARIANT_LOCAL = 'routeVariant';

/**
 * Set on an answer the gateway gives by design while it stops (the `503` to a request sent during
 * a graceful stop): its request line is logged at `info`, as the normal part of a deploy it is.
 */
export const STOP_REFUSAL_LOCAL = 'stopRefusal';

/** Names the task of a route's `:id` on the request's log line (`router.param('id', …)`). */
export function logTaskId(_req: Request, res: Response, next: NextFunction, id: unknown): void {
  if (typeof id === 'string') res.locals[TASK_ID_LOCAL] = id;
  next();
}

/**
 * What every request gets, in one middleware: one router layer and one `finish` listener where
 * four separate ones cost a layer and a listener each on every request.
 *
 * - its request ids (`requestIdsOf`), on `req.id` and `req.occurrence`, and the first on the answer;
 * - `nosniff`, so a body is never run as something else than its type says; and `no-store` on
 *   everything but the console's static files (task bodies, keys' usage, problems must not sit in
 *   shared caches). Routes that mean to be cached (stored content) say so later;
 * - when its answer is finished: its HTTP metrics and log line (`RequestRecording`);
 * - a `400` for a NUL (`%00`) anywhere in its path or query: no id, token, filter or file name
 *   holds one, and PostgreSQL refuses a query that binds one (a 500 otherwise).
 *
 * The hot read (`hot-read.ts`) sends the same headers and records the same way.
 */
export function everyRequest(recording: RequestRecording, routes: RouteTable): RequestHandler {
  recording.nameRoutesBy(routes);
  const routeNames = new Map<string, string>();
  // The route as metrics name it: where its router is mounted and its path, once per route. An
  // answer no single express route gave (OPTIONS, a 405, a refusal before routing, a static file,
  // a route of several paths) is named by the route table's template for the path, never by the
  // path itself (the label must stay bounded); a path that is no route is `unmatched`.
  const routeOf = (req: Request): string => {
    const path: unknown = req.route?.path;
    if (typeof path !== 'string') return routes.match(req.originalUrl.split('?', 1)[0]!)?.route ?? 'unmatched';
    // The part of the path a router's mount matched, as the client wrote it: express matches a
    // mount in any letter case (`/V1/VIDEOS`), and every mount of the gateway is a lower-case
    // literal, so lower case names it as registered. As written it would open a series per spelling.
    const mount = (req.mountPath ?? req.baseUrl).toLowerCase();
    const key = `${mount}\u0000${String(path)}`;
    let name = routeNames.get(key);
    if (name === undefined) {
      name = `${mount}${String(path)}`.replace(/(.)\/$/, '$1');
      routeNames.set(key, name);
    }
    return name;
  };
  return (req, res, next) => {
    const { id, occurrence } = requestIdsOf(req.headers['x-request-id']);
    req.id = id;
    req.occurrence = occurrence;
    res.setHeader('x-request-id', id);
    res.setHeader('x-content-type-options', 'nosniff');
    // `req.url` is the whole path here (the app level), and needs no parsing.
    if (!req.url.startsWith('/console')) res.setHeader('cache-control', 'no-store');
    const started = performance.now();
    const logged = recording.logs(req.url);
    onAnswerEnd(res, (status) => {
      const taskId: unknown = res.locals[TASK_ID_LOCAL];
      const variant: unknown = res.locals[ROUTE_VARIANT_LOCAL];
      const route = typeof variant === 'string' ? routeOf(req) + variant : routeOf(req);
      recording.finished(req, req.method, req.originalUrl, route, status, performance.now() - started, logged, typeof taskId === 'string' ? taskId : undefined, res.locals[STOP_REFUSAL_LOCAL] === true);
    });
    if (req.url.includes('%00')) {
      next(problems.validation([{ path: '(url)', message: 'a NUL character (%00) is not allowed' }], 'The path or query is not valid.'));
      return;
    }
    next();
  };
}

/**
 * A router's page asked without its slash (`/docs`, `/console`) goes to it with the slash, where
 * the page's relative links (`./app.js`) resolve; the query goes along. The `Location` is the
 * router's mount path (`req.baseUrl`, a path: express takes it from the request target's path
 * only), never the target as sent, which may be in absolute form (`GET http://elsewhere/docs`)
 * and would send the browser to that host. Only the router's root: every other path goes on.
 */
export function slashRedirect(): RequestHandler {
  return (req, res, next) => {
    const [path = '', query] = req.originalUrl.split(/\?(.*)/s, 2);
    if (req.path !== '/' || path.endsWith('/')) return next();
    res.redirect(301, `${req.baseUrl}/${query === undefined ? '' : `?${query}`}`);
  };
}

/** Swagger UI loads its own scripts and styles only: nothing inline runs, nothing frames it. */
export function swaggerUiPolicy(): RequestHandler {
  const policy = [
    "default-src 'self'",
    "script-src 'self'",
    // Swagger UI's page carries a <style> block and sets styles from its scripts.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
  ].join('; ');
  return (_req, res, next) => {
    res.setHeader('content-security-policy', policy);
    next();
  };
}

const hashKey = (key: string) => createHash('sha256').update(key).digest('hex');
/** Spaces and tabs only around the key, as HTTP reads a header (a no-break space is part of the value). */
const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

/** The key of an `Authorization: Bearer <key>` header; undefined when the header has not that form. */
export function bearerKeyOf(header: string | undefined): string | undefined {
  return BEARER.exec(header ?? '')?.[1];
}

/**
 * The tenant of each gateway key. Keys are held as SHA-256 digests, so lookups do not compare
 * secrets byte by byte.
 */
export function keyTenants(keys: readonly { tenant: string; key: string }[]): (key: string) => string | undefined {
  const tenants = new Map(keys.map((entry) => [hashKey(entry.key), entry.tenant]));
  return (key) => tenants.get(hashKey(key));
}

/**
 * Whether a request carries `Authorization` more than once. Node keeps the first of them in
 * `req.headers` and drops the rest, while a proxy in front may have judged the request by another.
 */
export function authorizationRepeated(req: IncomingMessage): boolean {
  return headerRepeated(req, 'authorization');
}

/** Whether a request carries the header `name` (lower case) more than once, in any letter case. */
export function headerRepeated(req: IncomingMessage, name: string): boolean {
  const raw = req.rawHeaders;
  let seen = 0;
  for (let at = 0; at < raw.length; at += 2) {
    const sent = raw[at]!;
    if (sent.length === name.length && sent.toLowerCase() === name && ++seen > 1) return true;
  }
  return false;
}

/** The refusal of a request that sent a header more than once (`name` as a client writes it: `Idempotency-Key`). */
export const headerTwice = (name: string) =>
  problems.validation([{ path: `header.${name.toLowerCase()}`, message: 'given more than once; give it once' }], `The ${name} header was sent more than once.`);

/** The refusal of a request that sent `Authorization` more than once. */
export const authorizationTwice = () => headerTwice('Authorization');

/**
 * A header read as one value refused when sent more than once (400 naming it), never read as
 * node gives it: two `Idempotency-Key` lines joined into one value (`a, b`), which was refused as
 * a malformed key though each line was a key.
 */
export function headerOnce(name: string): RequestHandler {
  const lower = name.toLowerCase();
  return (req, _res, next) => next(headerRepeated(req, lower) ? headerTwice(name) : undefined);
}

/** `Authorization: Bearer <gateway key>`, sent once. */
export function bearerAuth(keys: readonly { tenant: string; key: string }[]): RequestHandler {
  const tenantOf = keyTenants(keys);
  return (req, _res, next) => {
    if (authorizationRepeated(req)) {
      next(authorizationTwice());
      return;
    }
    const key = bearerKeyOf(req.header('authorization'));
    if (!key) {
      next(problems.unauthorized('Send your gateway key as "Authorization: Bearer <key>".'));
      return;
    }
    const tenant = tenantOf(key);
    if (!tenant) {
      next(problems.unauthorized('The gateway key is not valid.'));
      return;
    }
    req.tenant = tenant;
    next();
  };
}

/**
 * Like `bearerAuth` when an `Authorization` header is sent; without one the request goes on
 * unauthenticated (`req.tenant` unset), for routes that also take a signed link.
 */
export function optionalBearerAuth(keys: readonly { tenant: string; key: string }[]): RequestHandler {
  const required = bearerAuth(keys);
  return (req, res, next) => {
    if (req.header('authorization') === undefined) {
      next();
      return;
    }
    required(req, res, next);
  };
}

/**
 * The HTTP metrics and the request log line of finished answers, for express's routes
 * (`everyRequest`) and the hot read alike.
 *
 * Metrics count and time every answer by method, route and status. The label children are
 * looked up once per combination and kept (prom-client hashes a label object on every
 * `inc`/`observe` otherwise): an answer pays one map lookup.
 *
 * The log line: one per request when its answer is finished (method, redacted URL, status and
 * time) at `info` (`warn` for 4xx, `error` for 5xx). No headers are logged, so no key can reach
 * the line; no per-request child logger is built (it cost more than the route on a `GET`).
 */
export class RequestRecording {
  private readonly children = new Map<string, { requests: { inc(): void }; duration: { observe(value: number): void } }>();
  /** The route table's templates, for answers given before express (`everyRequest` hands it over). */
  private routes: RouteTable | undefined;

  /** `unlogged`: paths not worth a log line (probes, scrapes), unless refused with a 4xx. */
  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly logger: Logger,
    private readonly unlogged: ReadonlySet<string>,
  ) {}

  nameRoutesBy(routes: RouteTable): void {
    this.routes = routes;
  }

  /** The route metrics name a request target by, when no express route answered it: a template, or `unmatched`. */
  routeOfTarget(url: string): string {
    if (!url.startsWith('/')) return 'unmatched';
    return this.routes?.match(url.split('?', 1)[0]!)?.route ?? 'unmatched';
  }

  /** Whether a request to `url` (the whole path and query) gets a log line (also one refused with a 4xx, whatever its path). */
  logs(url: string): boolean {
    return !this.unlogged.has(url) && this.logger.isLevelEnabled('warn');
  }

  /**
   * Counts and times an answer, and writes its log line when `logged` (`logs` said so when it came
   * in); `taskId` is the task the request was about (one it created, read, canceled …), if any,
   * left off the line of a 404.
   */
  finished(
    ids: RequestIds,
    method: string,
    url: string,
    route: string,
    statusCode: number,
    elapsedMs: number,
    logged: boolean,
    taskId?: string,
    stopRefusal = false,
  ): void {
    const status = String(statusCode);
    const key = `${method} ${route} ${status}`;
    let labelled = this.children.get(key);
    if (!labelled) {
      labelled = {
        requests: this.metrics.httpRequests.labels({ method, route, status }),
        duration: this.metrics.httpDuration.labels({ method, route, status }),
      };
      this.children.set(key, labelled);
    }
    labelled.requests.inc();
    labelled.duration.observe(elapsedMs / 1000);
    // A probe or scrape refused (a scrape without the metrics token) is no probe: it gets its line.
    const refused = statusCode >= 400 && statusCode < 500 && statusCode !== CLIENT_GONE;
    if (logged || refused) this.log(ids, method, url, statusCode, elapsedMs, taskId, stopRefusal);
  }

  /**
   * A request node's HTTP parser refused before there was a request to route (`answerClientError`):
   * counted under method `unknown` and route `unparsed` (its duration is not known: when its first
   * byte came is not told), and logged with the parser's code, never its bytes (they may hold a key).
   */
  refusedUnparsed(id: string, status: number, reason: string): void {
    this.metrics.httpRequests.labels({ method: 'unknown', route: 'unparsed', status: String(status) }).inc();
    if (!this.logger.isLevelEnabled('warn')) return;
    this.logger.warn({ request_id: id, req: { method: null, url: null }, res: { status }, reason }, 'request completed');
  }

  private log({ id, occurrence }: RequestIds, method: string, url: string, status: number, elapsedMs: number, taskId: string | undefined, stopRefusal: boolean): void {
    // A client that went away (499) is not the gateway's failure, nor a request a stopping gateway
    // sends to another replica (503); other 4xx are the caller's mistakes.
    const level = stopRefusal || status === CLIENT_GONE ? 'info' : status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
    if (!this.logger.isLevelEnabled(level)) return;
    this.logger[level](
      {
        request_id: id,
        // Only when it is not `request_id`: the id a problem's `instance` names, to find its line.
        ...(occurrence === id ? {} : { occurrence_id: occurrence }),
        // A 404's id names no task of the caller's (an unknown id, another tenant's): the path shows what was asked.
        ...(taskId === undefined || status === 404 ? {} : { task_id: taskId }),
        req: { method, url: redactUrl(url) },
        res: { status },
        responseTime: Math.round(elapsedMs),
      },
      'request completed',
    );
  }
}

/**
 * Callback tokens in paths and content-link signatures are secrets: logs show the route, not them.
 * In any letter case (express routes `/V1/Webhooks/…` too), after extra leading slashes, and in a
 * request line's absolute form (`POST http://host/v1/webhooks/…`, which express routes by its path).
 * A signature is found by its parameter's name as decoded, as the route reads it.
 */
export function redactUrl(url: string): string {
  return url
    .replace(/^((?:[a-z][a-z0-9+.-]*:\/\/[^/?#]*)?\/+v1\/+webhooks\/+[^/?]+\/+)[^/?]+/i, '$1[token]')
    // A name never runs over a `?`: one that did made every `?` of a long run a start read on to
    // the end (quadratic: 150 ms of the event loop for a 15 kB request target, before any key was
    // asked for). A name holding one is no parameter the route takes; what follows it is judged
    // as a name of its own, so a signature after it is still redacted.
    .replace(/([?&])([^=&#?]*)=([^&#]*)/g, (pair, separator: string, name: string) =>
      isSignatureName(name) ? `${separator}${name}=[redacted]` : pair,
    );
}

/**
 * Whether a query parameter's name, as sent, reads `signature`: decoded as express's query parser
 * decodes it (`%73ignature` is the same parameter, and the link works with it), in any letter case
 * (a name the route refuses still carries the real value).
 */
function isSignatureName(raw: string): boolean {
  if (raw.length < 9) return false;
  return unescape(raw.replace(/\+/g, ' ')).trim().toLowerCase() === 'signature';
}

/** A problem as the answer, its `instance` the request's occurrence (`problemJson`). */
export function sendProblem(res: Response, error: ProblemError, occurrence: string): void {
  res.status(error.status).set(error.headers).type('application/problem+json').send(problemJson(error, occurrence));
}

/**
 * A request no route answered whose path is a route of the table with other methods: `405` with
 * `Allow` (RFC 9110 §15.5.6) instead of a `404` that says the route is not there.
 */
export function methodNotAllowedHandler(routes: RouteTable): RequestHandler {
  return (req, _res, next: NextFunction) => {
    const allowed = routes.match(req.path)?.allow;
    // Not a route, or a route of this method that did not match (its answer is the 404).
    if (allowed === undefined || allowed.includes(req.method)) return next();
    const allow = allowed.join(', ');
    next(problems.methodNotAllowed(`${req.path} does not take ${req.method}; it takes ${allow}`, allow));
  };
}

/**
 * Every `OPTIONS`, answered here from the table and never by a route: on a route `204` with
 * `Allow` (its methods), counted under the route's template, before any key is asked for — the
 * methods are no secret, `/openapi.json` lists them; on a path that is no route `404` (express's
 * routers would otherwise answer it `200` with the methods of whatever route partly matched).
 * No CORS headers: the console is served from the gateway's own origin, and a browser app
 * elsewhere goes through a proxy.
 */
export function optionsHandler(routes: RouteTable): RequestHandler {
  return (req, res, next) => {
    if (req.method !== 'OPTIONS') return next();
    const matched = routes.match(req.path);
    if (matched === undefined) return next(problems.notFound(`no route for ${req.method} ${req.path}`));
    res.status(204).set('allow', matched.allow.join(', ')).end();
  };
}

export function notFoundHandler(): RequestHandler {
  return (req, _res, next: NextFunction) => next(problems.notFound(`no route for ${req.method} ${req.path}`));
}

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  statusCode?: number;
  expose?: boolean;
  limit?: number;
  /** The body's text, on a parse failure. */
  body?: unknown;
}

const PROTO_KEY_MESSAGE = 'a "__proto__" key is not allowed';

/**
 * A JSON reviver that refuses `__proto__` anywhere in a body: JavaScript objects built from it
 * would drop the key silently (or change their prototype), so it is an error, never ignored.
 */
export function refuseProtoKeys(this: unknown, key: string, value: unknown): unknown {
  if (key === '__proto__') throw new SyntaxError(`${PROTO_KEY_MESSAGE} (JSON objects here are plain data)`);
  return value;
}

/**
 * Why a JSON body could not be read: a `__proto__` key, nesting deeper than the parser's stack
 * (valid JSON, but no request is shaped like it), JSON whose value is not an object or array
 * (`null`, `5`, a string: the parser's strict mode refuses it before parsing, in the words of a
 * syntax error, but it is valid JSON and said to be of the wrong shape, as an array is), or
 * malformed JSON.
 */
function unreadableJson(parserMessage: string, text: unknown): ProblemError {
  if (typeof text === 'string' && isJsonOtherThanObject(text)) {
    return problems.validation([{ path: '(body)', message: 'expected a JSON object' }], 'The body must be a JSON object.');
  }
  if (parserMessage.startsWith(PROTO_KEY_MESSAGE)) return problems.validation([{ path: '(body)', message: parserMessage }], 'The body is not valid JSON.');
  if (/maximum call stack/i.test(parserMessage)) {
    return problems.validation([{ path: '(body)', message: 'nested too deeply' }], 'The body is nested too deeply to read.');
  }
  return problems.validation([{ path: '(body)', message: 'malformed JSON' }], 'The body is not valid JSON.');
}

/** True for JSON text whose value is a string, number, boolean or null. */
function isJsonOtherThanObject(text: string): boolean {
  const first = text.trimStart()[0];
  if (first === undefined || first === '{' || first === '[') return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Status code for a request whose client went away before it was answered (nginx's convention). */
export const CLIENT_GONE = 499;

/**
 * Calls `done` once, when an answer ends: when it is finished, or when its connection closes
 * before that (a client that closed an event stream or gave up on a `?wait`: still a request,
 * logged and counted), with the status its client was sent, or `CLIENT_GONE` when nothing was;
 * at once when its connection closed before this was called.
 */
export function onAnswerEnd(res: ServerResponse, done: (status: number) => void): void {
  const end = () => done(res.writableFinished || res.headersSent ? res.statusCode : CLIENT_GONE);
  // Its connection closed already (a client that left while a hot path read the task, before it
  // answered or handed the request to express): no event is coming, so it ends now.
  if (res.destroyed && !res.writableFinished) {
    end();
    return;
  }
  // Node emits `close` once for every answer: right after `finish` when it was sent whole, or
  // when its connection closed before that. One listener serves both.
  res.once('close', end);
}

/** The 4xx status a library put on an error (http-errors: body parsers, path decoding), if any. */
function clientStatusOf(error: BodyParserError | undefined): number | undefined {
  const status = error?.status ?? error?.statusCode;
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status < 500 ? status : undefined;
}

const CLIENT_ERROR_TYPES: Record<number, [type: string, title: string]> = {
  400: ['bad-request', 'Bad request'],
  408: ['request-timeout', 'Request timeout'],
  // A static file's own refusals (the console's, the docs' files): a precondition, a range past its end.
  412: ['precondition-failed', 'Precondition failed'],
  413: ['too-large', 'Payload too large'],
  415: ['unsupported-encoding', 'Unsupported encoding'],
  416: ['range-not-satisfiable', 'Range not satisfiable'],
};

export function problemHandler(logger: Logger, storeTrouble: StoreTrouble): ErrorRequestHandler {
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      // An answer already under way (an event stream whose next event could not be read) can no
      // longer become a problem: it ends, and what cut it is logged, as any unexpected error is
      // (dropped without a word, the request's only line said it completed with 200).
      if (!(error instanceof ProblemError)) unexpectedProblem(error, req, logger, storeTrouble);
      res.end();
      return;
    }
    if (error instanceof ProblemError) {
      sendProblem(res, error, req.occurrence);
      return;
    }
    const parserError = error as BodyParserError | undefined;
    // The request's socket, not the answer's: an answer queued behind another still being written
    // on the same connection (pipelined, or sent on as soon as the first answer was read) has no
    // socket yet, and its client is very much there.
    if (parserError?.type === 'request.aborted' || req.socket.destroyed) {
      // The client went away mid-upload: nobody is left to answer, and nothing went wrong here.
      logger.debug({ request_id: req.id }, 'client went away before its request body was read');
      res.statusCode = CLIENT_GONE;
      res.end();
      return;
    }
    if (parserError?.type === 'entity.parse.failed') {
      sendProblem(res, unreadableJson(parserError.message, parserError.body), req.occurrence);
      return;
    }
    if (parserError?.type === 'entity.too.large') {
      sendProblem(res, new ProblemError(413, 'too-large', 'Payload too large', `The body exceeds ${parserError.limit} bytes.`), req.occurrence);
      return;
    }
    if (parserError?.type === 'encoding.unsupported' || parserError?.type === 'charset.unsupported') {
      sendProblem(res, new ProblemError(415, 'unsupported-encoding', 'Unsupported encoding', parserError.message), req.occurrence);
      return;
    }
    // Any other error a library marked as the client's (an undecodable path, a body that does
    // not decompress as its content-encoding says): its status, as a problem, logged by pino-http
    // at warn like every 4xx.
    const status = clientStatusOf(parserError);
    if (status !== undefined) {
      const [type, title] = CLIENT_ERROR_TYPES[status] ?? ['bad-request', 'Bad request'];
      const detail = parserError?.expose && parserError.message ? parserError.message.slice(0, 200) : 'The request could not be read.';
      // A static file refused after it was found (412, 416) has its validators and caching set
      // already: the problem is not the file, so it carries none of them (Content-Range stays).
      res.removeHeader('etag');
      res.removeHeader('last-modified');
      res.set('cache-control', 'no-store');
      sendProblem(res, new ProblemError(status, type, title, detail), req.occurrence);
      return;
    }
    sendProblem(res, unexpectedProblem(error, req, logger, storeTrouble), req.occurrence);
  };
}

/**
 * What an error says about the store rather than the request: it could not be reached right now
 * (a database restarting, a dropped connection), it has no room to write (a full disk), or its
 * disk refused a read or write (`io`: an I/O error, a disk quota, a read-only remount); undefined
 * for anything else. The store's own reading of its errors, handed in by the composition root
 * (routes never reach the store).
 */
export type StoreTrouble = (error: unknown) => 'unreachable' | 'full' | 'io' | 'read-only' | undefined;

/** Seconds a client is asked to wait when the store could not be reached. */
const STORE_RETRY_AFTER_S = 2;
/**
 * Seconds a client is asked to wait when the store is full or its disk refuses writes: space (or
 * a disk that writes) comes back when an operator acts, not in a moment, and every refusal is
 * logged for them.
 */
const STORE_FULL_RETRY_AFTER_S = 30;

/** The code a store error carries (`SQLITE_IOERR_WRITE`, PostgreSQL's `58030`), for the operator. */
function errorCode(error: unknown): string {
  const { code } = (error ?? {}) as { code?: unknown };
  return typeof code === 'string' ? code : 'no code';
}

/**
 * The answer to an error no route turned into a problem: `503` with `Retry-After` when the store
 * could not be reached (a database restarting: the same request may well succeed shortly, and a
 * create repeated with its Idempotency-Key never makes a second task) or has no room to write
 * (a full disk: nothing was written, nothing sent upstream; logged as an error, for the operator
 * must free space) or its disk refused to write (an I/O error, a quota, a read-only remount: the
 * same, logged with the store's code) or it takes no writes (PostgreSQL's `25006`, a standby
 * after a failover: the same, retried as soon as an outage), otherwise `500` (a damaged database
 * file among them). Logged.
 */
export function unexpectedProblem(error: unknown, ids: RequestIds, logger: Logger, storeTrouble: StoreTrouble): ProblemError {
  const logged = { err: error, request_id: ids.id, ...(ids.occurrence === ids.id ? {} : { occurrence_id: ids.occurrence }) };
  const trouble = storeTrouble(error);
  if (trouble === 'full') {
    logger.error(logged, 'the database is full: its writes fail until space is freed on its disk');
    return problems.retryLater(
      `The gateway's database is full (its disk has no room to write); send the request again after Retry-After seconds (a create with the same Idempotency-Key, which never makes a second task).`,
      STORE_FULL_RETRY_AFTER_S,
    );
  }
  if (trouble === 'io') {
    logger.error(logged, `the database's disk refused a read or write (${errorCode(error)}): they fail until the disk or its file system is repaired`);
    return problems.retryLater(
      `The gateway's database could not read or write its disk; send the request again after Retry-After seconds (a create with the same Idempotency-Key, which never makes a second task).`,
      STORE_FULL_RETRY_AFTER_S,
    );
  }
  if (trouble === 'read-only') {
    // Passing after a failover (new connections reach the new primary); for good when the URL names a standby.
    logger.error(logged, `the database takes no writes (${errorCode(error)}: a standby, or a server set read-only): they fail until the gateway's connections reach a primary`);
    return problems.retryLater(
      `The gateway's database takes no writes right now (a failover under way); send the request again after Retry-After seconds (a create with the same Idempotency-Key, which never makes a second task).`,
      STORE_RETRY_AFTER_S,
    );
  }
  if (trouble === 'unreachable') {
    logger.warn(logged, 'the database could not be reached');
    return problems.retryLater(
      `The gateway could not reach its database; send the request again after Retry-After seconds (a create with the same Idempotency-Key, which never makes a second task).`,
      STORE_RETRY_AFTER_S,
    );
  }
  logger.error(logged, 'unhandled error');
  return new ProblemError(500, 'internal', 'Internal error', `Something went wrong (request ${ids.id}).`);
}

/** The status node answers each of its HTTP parser's refusals with (its own `socketOnError`). */
const PARSER_REFUSALS: Record<string, [status: number, type: string, title: string, detail: string]> = {
  HPE_HEADER_OVERFLOW: [431, 'headers-too-large', 'Request header fields too large', 'The request line and headers exceed the size limit.'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'too-large', 'Payload too large', 'The chunk extensions exceed the size limit.'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request-timeout', 'Request timeout', 'The request did not arrive in time.'],
};
const MALFORMED_REQUEST: [number, string, string, string] = [400, 'bad-request', 'Bad request', 'The request is not well-formed HTTP.'];

/**
 * The server's `clientError` listener: a request node's HTTP parser refused before any route saw it
 * (headers past the size limit, a malformed request line or header) is answered with problem
 * details and a request id, like every other refusal, where node would send a bare status line,
 * and gets its log line and count (`RequestRecording.refusedUnparsed`).
 * As node does, nothing is written when an answer on the connection has begun; the connection is
 * closed either way.
 */
export function answerClientError(recording: RequestRecording): (error: NodeJS.ErrnoException, socket: Duplex) => void {
  return (error, socket) => {
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const { id, status } = writeParserRefusal(error, socket);
    recording.refusedUnparsed(id, status, error.code ?? 'unknown');
  };
}

/** Writes the problem details answering a parser refusal and closes the connection once sent. */
function writeParserRefusal(error: NodeJS.ErrnoException, socket: Duplex): { id: string; status: number } {
  const [status, type, title, detail] = (error.code && PARSER_REFUSALS[error.code]) || MALFORMED_REQUEST;
  const id = randomUUID();
  const body = problemJson(new ProblemError(status, type, title, detail), id);
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? title}`,
    `x-request-id: ${id}`,
    'x-content-type-options: nosniff',
    'cache-control: no-store',
    'content-type: application/problem+json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
  ];
  socket.write(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
  return { id, status };
}

/**
 * Answers a request node's HTTP server refuses after parsing it, before any route: with problem
 * details and a request id, like every other refusal, and a closed connection (its body is not
 * read), where node would send a bare status line. Like every request, it gets its log line and
 * HTTP metrics, its route named by the route table's template for its path.
 */
function refuseBeforeRoutes(req: IncomingMessage, res: ServerResponse, error: ProblemError, recording: RequestRecording): void {
  const started = performance.now();
  const ids = requestIdsOf(req.headers['x-request-id']);
  const { id, occurrence } = ids;
  // Its log line and HTTP metrics, as every request gets (`everyRequest` never sees it).
  const url = req.url ?? '';
  const method = req.method ?? 'GET';
  const logged = recording.logs(url);
  onAnswerEnd(res, (status) => recording.finished(ids, method, url, recording.routeOfTarget(url), status, performance.now() - started, logged));
  const body = problemJson(error, occurrence);
  res.setHeader('x-request-id', id);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('connection', 'close');
  res.writeHead(error.status, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Header lines a request may send. The server reads them all (`maxHeadersCount` 0: node's own
 * bound dropped the lines past about a thousand without a word, so a key, or the second
 * Authorization of two, went unseen there); node's size limit (16 kB) bounds how many there can be.
 */
export const MAX_HEADER_LINES = 1_000;

/**
 * `listener`, but a request with more than `MAX_HEADER_LINES` header lines is refused (431) with
 * problem details, its connection closed, where node would drop the lines past its bound unread.
 * The server is created with `maxHeadersCount` 0 so that every line is there to count.
 */
export function limitHeaderLines(listener: RequestListener, recording: RequestRecording): RequestListener {
  return (req, res) => {
    if (tooManyHeaderLines(req)) {
      refuseBeforeRoutes(
        req,
        res,
        new ProblemError(431, 'headers-too-large', 'Request header fields too large', `The request has more than ${MAX_HEADER_LINES} header lines.`),
        recording,
      );
      return;
    }
    listener(req, res);
  };
}

function tooManyHeaderLines(req: IncomingMessage): boolean {
  return req.rawHeaders.length / 2 > MAX_HEADER_LINES;
}

/**
 * A `Host` value (RFC 9112 §3.2, RFC 3986 §3.2.2): a name or IPv4 address (unreserved,
 * percent-encoded and sub-delimiter characters), or an IP literal in brackets, then an optional
 * port; or empty (a target with no authority). Never user information, a path, or whitespace.
 * An IPv6 literal may carry a zone id (RFC 6874), raw or escaped: node's own HTTP client writes
 * `Host: [fe80::1%eth0]:8080` for a link-local address; an IPvFuture literal (`[v1.…]`) is one too.
 */
const HOST_VALUE = /^(?:\[(?:[0-9A-Fa-f:.]+(?:%[A-Za-z0-9\-._~%]+)?|[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::\d*)?$/;

/**
 * `listener`, but a request whose `Host` header is missing (HTTP/1.1), sent more than once, or no
 * host at all (`user@host`, a space, a path) is refused (400) as RFC 9112 §3.2 asks, with problem
 * details: a proxy in front may route by another of its hosts than the one node keeps. The server
 * is created with `requireHostHeader: false` so that this answers a missing one.
 */
export function requireHostHeader(listener: RequestListener, recording: RequestRecording): RequestListener {
  return (req, res) => {
    const refusal = hostRefusal(req);
    if (refusal) {
      refuseBeforeRoutes(req, res, refusal, recording);
      return;
    }
    listener(req, res);
  };
}

/** Why `requireHostHeader` refuses `req`, if it does. */
function hostRefusal(req: IncomingMessage): ProblemError | undefined {
  const host = req.headers.host;
  if (host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) {
    return new ProblemError(400, 'bad-request', 'Bad request', 'An HTTP/1.1 request must carry a Host header.');
  }
  // Node keeps the first of several `Host` lines in `req.headers` and drops the rest.
  if (host !== undefined && (!HOST_VALUE.test(host) || headerRepeated(req, 'host'))) {
    return new ProblemError(400, 'bad-request', 'Bad request', 'The Host header must be sent once, naming one host (and port).');
  }
  return undefined;
}

/**
 * Whether `limitHeaderLines` or `requireHostHeader` refuses `req` before any route: then no
 * `100 Continue` invites a body that is never read (the server's `checkContinue` asks).
 */
export function refusedAtTheDoor(req: IncomingMessage): boolean {
  return tooManyHeaderLines(req) || hostRefusal(req) !== undefined;
}

/**
 * The server's `connect` listener. The gateway is no proxy: a `CONNECT` to a path is answered as any
 * method a path does not take is (`405` with `Allow` on a route, `404` elsewhere, `401` first under
 * `/v1` without a key), by `listener` itself; one to a host (`CONNECT example.com:443`, which names
 * no path express could route) is a `404` here. Both with problem details and a request id, where
 * node, with no such listener, closed the connection without a word. The connection is closed once
 * it is answered.
 */
export function answerConnect(listener: RequestListener, recording: RequestRecording): (req: IncomingMessage, socket: Duplex) => void {
  return (req, socket) => {
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    // The server emits an answer's `close` (what its log line and metrics wait for) only for
    // answers it made itself: this one says it once, sent whole or its connection gone first.
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      res.emit('close');
    };
    socket.once('close', close);
    res.once('finish', () => {
      res.detachSocket(socket as Socket);
      socket.end();
      close();
    });
    if (!req.url?.startsWith('/')) {
      refuseBeforeRoutes(req, res, problems.notFound('The gateway is not a proxy: a CONNECT to a host names no route here.'), recording);
      return;
    }
    listener(req, res);
  };
}

/** The server's `checkExpectation` listener: an `Expect` other than `100-continue` is refused (417), with problem details. */
export function refuseExpectation(recording: RequestRecording): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) =>
    refuseBeforeRoutes(req, res, new ProblemError(417, 'expectation-failed', 'Expectation failed', 'Only "Expect: 100-continue" is supported.'), recording);
}

const NO_PARAMETERS = z.strictObject({});

/** For routes that take no query: a parameter is refused (400, named), never ignored. */
export function noQuery(): RequestHandler {
  return (req, _res, next) => {
    try {
      parseQuery(NO_PARAMETERS, req.query);
      next();
    } catch (error) {
      next(error);
    }
  };
}

/** Whether a request's headers announce a body (read yet or not): a length other than 0, or chunks. */
export function announcesBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The first transfer coding of a request other than `chunked` (lower case), if any: one the gateway does not decode. */
export function otherTransferCoding(req: IncomingMessage): string | undefined {
  const codings = req.headers['transfer-encoding'];
  if (codings === undefined) return undefined;
  return codings
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .find((coding) => coding !== '' && coding !== 'chunked');
}

/**
 * A body with a transfer coding other than `chunked` (`Transfer-Encoding: gzip, chunked`) is
 * refused `415`, as a `Content-Encoding` the gateway does not decode is, before anything reads it,
 * and its connection is closed. Node takes the chunks apart and hands on what is inside them
 * undecoded: read as the body itself, a compressed create was "malformed JSON" and a webhook's
 * signature was checked over bytes its sender never signed. (RFC 9112 §6.1 suggests `501`; a
 * client's mistake is a 4xx here, never a 5xx an operator is paged for.) A body's own coding is
 * `Content-Encoding`, which the JSON parser decodes.
 */
export function refuseTransferCodings(): RequestHandler {
  return (req, res, next) => {
    const other = otherTransferCoding(req);
    if (other === undefined) return next();
    res.setHeader('connection', 'close');
    next(
      new ProblemError(
        415,
        'unsupported-encoding',
        'Unsupported encoding',
        `The transfer coding ${JSON.stringify(other.slice(0, 40))} is not supported: send the body chunked or with a Content-Length (compressed with Content-Encoding if you like).`,
      ),
    );
  };
}

/** The `charset` parameter of a `Content-Type`, quoted or not, lower case; undefined without one. */
const CHARSET = /;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/i;

/**
 * JSON bodies in UTF-8 only (RFC 8259 §8.1: JSON exchanged between systems is UTF-8): a `charset`
 * other than `utf-8` is refused `415` before the body is read. Express's JSON parser decodes any
 * charset starting with `utf-`: a UTF-7 body, with no quote in its bytes, was read as a create, so
 * what a proxy or WAF in front looked at was not what the gateway read.
 */
export function jsonInUtf8(): RequestHandler {
  return (req, _res, next) => {
    // As the parser: a request without a body is not read, whatever its headers say.
    if (!announcesBody(req)) return next();
    const match = CHARSET.exec(req.headers['content-type'] ?? '');
    const charset = (match?.[1] ?? match?.[2])?.toLowerCase();
    if (charset === undefined || charset === 'utf-8') return next();
    next(
      new ProblemError(415, 'unsupported-encoding', 'Unsupported encoding', `unsupported charset ${JSON.stringify(charset.slice(0, 40).toUpperCase())}: send JSON in UTF-8.`),
    );
  };
}

/** Fields named one by one in a refusal of a body, at most. */
const NAMED_FIELDS = 16;

/**
 * For writes that take no body (a cancel): none, or an empty JSON object, goes on; a body that
 * says anything is refused, never ignored — a JSON one 400 naming its fields, any other 415.
 */
export function noBody(): RequestHandler {
  return (req, _res, next) => {
    const body: unknown = req.body;
    if (body === undefined) {
      if (announcesBody(req) && !req.is('application/json')) {
        next(new ProblemError(415, 'unsupported-media-type', 'Unsupported media type', 'This route takes no body (or an empty JSON object).'));
        return;
      }
      next();
      return;
    }
    const fields = body !== null && typeof body === 'object' && !Array.isArray(body) ? Object.keys(body) : undefined;
    if (fields?.length === 0) {
      next();
      return;
    }
    const errors =
      fields === undefined || fields.length > NAMED_FIELDS
        ? [{ path: '(body)', message: 'this route takes no body' }]
        : fields.map((path) => ({ path, message: 'unknown field (this route takes no body)' }));
    next(problems.validation(errors, 'This route takes no body.'));
  };
}

/**
 * Requires a JSON body on writes (415 otherwise), so a form post never parses as empty; its
 * `Content-Type` sent once (400 otherwise: node reads the first of two, while a proxy in front may
 * have judged the body by the other).
 */
export function requireJson(): RequestHandler {
  return (req, _res, next) => {
    if (headerRepeated(req, 'content-type')) {
      next(headerTwice('Content-Type'));
      return;
    }
    if (!req.is('application/json')) {
      next(new ProblemError(415, 'unsupported-media-type', 'Unsupported media type', 'Send the body as application/json.'));
      return;
    }
    next();
  };
}
