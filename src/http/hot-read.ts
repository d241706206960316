/**
 * `GET /v1/videos/{id}`, the most frequent request, answered on the HTTP server ahead of express
 * when it is the plain case: `GET` of exactly `/v1/videos/<id>` (no query), no body, no
 * `If-None-Match`, a valid gateway key, the gateway not stopping, and the task found and the
 * tenant's. Per request, express cost more than the read itself on this route (its request and
 * response prototypes, router layers, body parser and `res.json`): CPU per read fell by about
 * half with this path (README, Benchmarks).
 *
 * Everything else goes to the express app untouched, which answers it as it always did: another
 * method (`HEAD` included), `?wait=`, a path only express matches (other letter case, a trailing
 * slash, escapes), a body, a conditional request, a missing or unknown key (401), a task not
 * found or another tenant's (404), a stopping gateway (503), a read that failed. So every
 * problem, every header and every status of the route stays express's own.
 *
 * The answer is the one express sends for the route: the headers of `everyRequest` and of
 * `res.json` with the same names, values and order (`x-request-id`, `x-content-type-options`,
 * `cache-control`, `Content-Type`, `Content-Length`, and the `ETag` of the app's own `etag fn`),
 * the same JSON body, and the same HTTP metrics and log line (`RequestRecording`).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { TaskService } from '../core/tasks/task-service.js';
import { sendText, setEveryRequestHeaders, type EtagOf } from './express-answer.js';
import { authorizationRepeated, onAnswerEnd, requestIdsOf, type RequestRecording } from './middleware.js';

/** The read's route, as express registers it and as metrics name it. */
export const READ_VIDEO_ROUTE = '/v1/videos/:id';
/** The paths this takes on; any other form of the route is left to express. */
const PLAIN_READ_PATH = /^\/v1\/videos\/([A-Za-z0-9_-]+)$/;

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export interface HotReadOptions {
  service: Pick<TaskService, 'get'>;
  /** The tenant of an `Authorization` header's gateway key; undefined when there is none. */
  tenantOf: (authorization: string | undefined) => string | undefined;
  recording: RequestRecording;
  /** Whether the gateway is stopping (then express refuses the request). */
  stopping: () => boolean;
  /** The app's `etag fn`, as `res.send` calls it on a body. */
  etag: EtagOf;
}

/** Whether a request announces a body (express's JSON parser would read it). */
function announcesBody(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** `app`, with plain reads of a task answered before it. */
export function withHotRead(app: RequestListener, { service, tenantOf, recording, stopping, etag }: HotReadOptions): RequestListener {
  const answer = (req: IncomingMessage, res: ServerResponse, taskId: string, task: unknown, started: number) => {
    const ids = requestIdsOf(req.headers['x-request-id']);
    const url = req.url ?? '';
    const logged = recording.logs(url);
    onAnswerEnd(res, (status) => recording.finished(ids, 'GET', url, READ_VIDEO_ROUTE, status, performance.now() - started, logged, taskId));
    setEveryRequestHeaders(res, ids.id);
    sendText(res, 200, 'application/json', JSON.stringify(task), etag);
  };

  return (req, res) => {
    const match = req.method === 'GET' ? PLAIN_READ_PATH.exec(req.url ?? '') : null;
    const headers = req.headers;
    const plain = match !== null && !stopping() && !announcesBody(headers) && headers['if-none-match'] === undefined;
    const tenant = plain ? tenantOf(headers.authorization) : undefined;
    const taskId = match?.[1];
    // A key sent twice is express's to refuse.
    if (tenant === undefined || taskId === undefined || authorizationRepeated(req)) {
      app(req, res);
      return;
    }
    const started = performance.now();
    service
      .get(tenant, taskId)
      .then(
        (task) => answer(req, res, taskId, task, started),
        // Not found, another tenant's, or a failed read: express answers it (its problem, its log line).
        () => app(req, res),
      )
      .catch((error: unknown) => {
        // The answer could not be sent: express answers if nothing went out yet.
        if (!res.headersSent) app(req, res);
        else res.destroy(error instanceof Error ? error : undefined);
      });
  };
}
