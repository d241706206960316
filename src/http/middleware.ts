/**
 * Cross-cutting HTTP concerns: request ids, gateway-key auth, HTTP metrics, and turning every
 * error into RFC 9457 problem details.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { ProblemError, problems } from '../core/model/problems.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** The request id (from `x-request-id` when the client sent a sane one). */
    id: string;
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

export function requestId(): RequestHandler {
  return (req, res, next) => {
    const incoming = req.header('x-request-id');
    req.id = incoming && CLIENT_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('x-request-id', req.id);
    next();
  };
}

const hashKey = (key: string) => createHash('sha256').update(key).digest('hex');

/**
 * `Authorization: Bearer <gateway key>`. Keys are held as SHA-256 digests, so lookups do not
 * compare secrets byte by byte.
 */
export function bearerAuth(keys: readonly { tenant: string; key: string }[]): RequestHandler {
  const tenants = new Map(keys.map((entry) => [hashKey(entry.key), entry.tenant]));
  return (req, _res, next) => {
    const header = req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) {
      next(problems.unauthorized('Send your gateway key as "Authorization: Bearer <key>".'));
      return;
    }
    const tenant = tenants.get(hashKey(match[1]));
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

export function httpMetrics(metrics: GatewayMetrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const route = req.route?.path
        ? `${req.mountPath ?? req.baseUrl}${String(req.route.path)}`.replace(/(.)\/$/, '$1')
        : 'unmatched';
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
      metrics.httpDuration.observe({ method: req.method, route }, seconds);
    });
    next();
  };
}

/** Callback tokens in paths and content-link signatures are secrets: logs show the route, not them. */
export function redactUrl(url: string): string {
  return url.replace(/^(\/v1\/webhooks\/[^/?]+\/)[^/?]+/, '$1[token]').replace(/([?&]signature=)[^&]*/g, '$1[redacted]');
}

/**
 * One log line per request when its answer is finished: method, redacted URL, status and time,
 * at `info` (`warn` for 4xx, `error` for 5xx). No headers are logged, so no key can reach the
 * line; no per-request child logger is built (it cost more than the route on a `GET`).
 * `skip` names paths not worth a line (health checks, scrapes).
 */
export function requestLog(logger: Logger, skip: ReadonlySet<string>): RequestHandler {
  return (req, res, next) => {
    if (skip.has(req.url) || !logger.isLevelEnabled('warn')) {
      next();
      return;
    }
    const started = performance.now();
    res.on('finish', () => {
      const status = res.statusCode;
      const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      logger[level](
        {
          request_id: req.id,
          req: { method: req.method, url: redactUrl(req.originalUrl) },
          res: { status },
          responseTime: Math.round(performance.now() - started),
        },
        'request completed',
      );
    });
    next();
  };
}

export function sendProblem(res: Response, error: ProblemError, instance?: string): void {
  res
    .status(error.status)
    .set(error.headers)
    .type('application/problem+json')
    .send(JSON.stringify({ ...error.problem, ...(instance ? { instance } : {}) }));
}

export function notFoundHandler(): RequestHandler {
  return (req, _res, next: NextFunction) => next(problems.notFound(`no route for ${req.method} ${req.path}`));
}

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
}

export function problemHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      res.end();
      return;
    }
    if (error instanceof ProblemError) {
      sendProblem(res, error, req.originalUrl);
      return;
    }
    const parserError = error as BodyParserError;
    if (parserError?.type === 'entity.parse.failed') {
      sendProblem(res, problems.validation([{ path: '(body)', message: 'malformed JSON' }], 'The body is not valid JSON.'));
      return;
    }
    if (parserError?.type === 'entity.too.large') {
      sendProblem(res, new ProblemError(413, 'too-large', 'Payload too large', `The body exceeds ${parserError.limit} bytes.`));
      return;
    }
    if (parserError?.type === 'encoding.unsupported' || parserError?.type === 'charset.unsupported') {
      sendProblem(res, new ProblemError(415, 'unsupported-encoding', 'Unsupported encoding', parserError.message));
      return;
    }
    logger.error({ err: error, request_id: req.id }, 'unhandled error');
    sendProblem(res, new ProblemError(500, 'internal', 'Internal error', `Something went wrong (request ${req.id}).`));
  };
}

/** Requires a JSON body on writes (415 otherwise), so a form post never parses as empty. */
export function requireJson(): RequestHandler {
  return (req, _res, next) => {
    if (!req.is('application/json')) {
      next(new ProblemError(415, 'unsupported-media-type', 'Unsupported media type', 'Send the body as application/json.'));
      return;
    }
    next();
  };
}
