/**
 * Provider webhooks (`POST /v1/webhooks/<provider>[/<token>]`, two or more per task) answered on
 * the HTTP server ahead of express when they are the plain case: exactly that path (no query,
 * no escapes), a `Content-Length` within the route's body limit, no `Transfer-Encoding`, no
 * `Content-Encoding`, and the gateway not stopping. Per webhook, express's request and response
 * prototypes, router layers and raw body parser cost about as much CPU as the webhook's own work
 * (README, Benchmarks).
 *
 * Everything else goes to express untouched: another method or path form, a chunked, compressed
 * or oversized body, a stopping gateway. Unlike the hot read, a webhook taken here is answered
 * here whatever happens (its body is read, and its handling may have changed something), so it
 * does what express does on the route step by step: the request id and the headers of
 * `everyRequest`; counted by the stop gate; the webhook body budget shared with express's route
 * (`webhook-body-budget.ts`: 503, connection closed); the body time limit (408, connection
 * closed); the same `receiveWebhook`; the receipt as `res.json` sends it, a problem as `problemHandler` sends
 * it (its `instance`, its headers), any other error as it does (500, or 503 when the store could not
 * be reached); a client gone mid-body as 499; and
 * the same HTTP metrics and log line (`RequestRecording`). Bytes are `express-answer.ts`'s.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.js';
import { ProblemError } from '../core/model/problems.js';
import type { InboundWebhooks } from '../core/tasks/inbound-webhooks.js';
import type { Logger } from '../observability/logger.js';
import { sendProblemText, sendText, setEveryRequestHeaders, type EtagOf } from './express-answer.js';
import type { RequestListener } from './hot-read.js';
import { CLIENT_GONE, onAnswerEnd, requestIdsOf, unexpectedProblem, type RequestRecording, type StoreTrouble } from './middleware.js';
import type { StopGate } from './stop-gate.js';
import { limitBodyTime } from './tenant-limits.js';
import { WEBHOOK_BODY_LIMIT, type WebhookBodyBudget } from './webhook-body-budget.js';
import { receiveWebhook } from './webhook-routes.js';

/** The paths this takes on: provider, and the token or attempt key when there is one. */
const PLAIN_WEBHOOK_PATH = /^\/v1\/webhooks\/([A-Za-z0-9_-]+)(?:\/([A-Za-z0-9_-]+))?$/;
const PLAIN_LENGTH = /^\d{1,7}$/;

export interface HotWebhookOptions {
  inbound: InboundWebhooks;
  recording: RequestRecording;
  logger: Logger;
  gate?: StopGate;
  /** `server.body_timeout_ms`, on `clock`. */
  bodyTimeoutMs: number;
  clock: Clock;
  etag: EtagOf;
  storeTrouble: StoreTrouble;
  /** The bodies webhooks read at once, shared with express's webhook routes. */
  budget: WebhookBodyBudget;
}

/** Whether a request's body is one express's raw parser would read as is, within the limit. */
function plainBody(req: IncomingMessage): boolean {
  const { headers } = req;
  const length = headers['content-length'];
  return (
    length !== undefined &&
    PLAIN_LENGTH.test(length) &&
    Number(length) <= WEBHOOK_BODY_LIMIT &&
    headers['transfer-encoding'] === undefined &&
    headers['content-encoding'] === undefined
  );
}

/** `app`, with plain provider webhooks answered before it. */
export function withHotWebhooks(app: RequestListener, options: HotWebhookOptions): RequestListener {
  const { inbound, recording, logger, gate, bodyTimeoutMs, clock, etag, budget } = options;

  const handle = (req: IncomingMessage, res: ServerResponse, provider: string, token: string | undefined) => {
    const started = performance.now();
    const ids = requestIdsOf(req.headers['x-request-id']);
    const { id, occurrence } = ids;
    const url = req.url ?? '';
    const route = token === undefined ? '/v1/webhooks/:provider' : '/v1/webhooks/:provider/:token';
    setEveryRequestHeaders(res, id);
    const logged = recording.logs(url);
    let taskId: string | undefined;
    onAnswerEnd(res, (status) => recording.finished(ids, 'POST', url, route, status, performance.now() - started, logged, taskId));
    gate?.count(res);
    const refused = budget.take(req, res);
    if (refused) {
      sendProblemText(res, refused, occurrence, etag);
      return;
    }
    limitBodyTime(req, res, bodyTimeoutMs, clock, (problem) => sendProblemText(res, problem, occurrence, etag));

    const fail = (error: unknown) => {
      if (res.headersSent) {
        res.end();
        return;
      }
      if (!res.socket || res.socket.destroyed) {
        res.statusCode = CLIENT_GONE;
        res.end();
        return;
      }
      if (error instanceof ProblemError) {
        sendProblemText(res, error, occurrence, etag);
        return;
      }
      sendProblemText(res, unexpectedProblem(error, ids, logger, options.storeTrouble), occurrence, etag);
    };
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      // The body time limit answered already: the body is not handled (as express's parser would not).
      if (res.headersSent) return;
      receiveWebhook(inbound, provider, token, req.headers, Buffer.concat(chunks), id, (about) => (taskId = about))
        .then((receipt) => sendText(res, 200, 'application/json', JSON.stringify(receipt), etag), fail)
        // The answer could not be written at all: the connection is dropped rather than left hanging.
        .catch((error: unknown) => res.destroy(error instanceof Error ? error : undefined));
    });
    req.once('close', () => {
      if (req.complete || res.headersSent) return;
      // The client went away mid-body: nobody is left to answer, and nothing went wrong here.
      logger.debug({ request_id: id }, 'client went away before its request body was read');
      res.statusCode = CLIENT_GONE;
      res.end();
    });
  };

  return (req, res) => {
    const match = req.method === 'POST' ? PLAIN_WEBHOOK_PATH.exec(req.url ?? '') : null;
    const provider = match?.[1];
    if (provider === undefined || gate?.closed || !plainBody(req)) {
      app(req, res);
      return;
    }
    handle(req, res, provider, match?.[2]);
  };
}
