/**
 * `/v1/videos`: create, quote, list, get (with `?wait=`), cancel, Server-Sent Events, and the
 * deliveries of a task's events to its `webhook_url`.
 */
import { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import type { Clock, TimerHandle } from '../core/clock.js';
import { z } from 'zod';
import { TERMINAL_STATUSES } from '../core/model/canonical.js';
import { problems } from '../core/model/problems.js';
import { queryNumber } from '../core/model/query-number.js';
import type { TaskService } from '../core/tasks/task-service.js';
import { parseQuery } from '../core/tasks/task-service.js';
import { ROUTE_VARIANT_LOCAL, TASK_ID_LOCAL, headerOnce, logTaskId, noBody, noQuery, rememberMountPath, requireJson } from './middleware.js';
import { gatewayStopping } from './stop-gate.js';
import type { OpenRequestCaps } from './tenant-limits.js';

/** The per-tenant limits of these routes. */
export interface VideoRouteLimits {
  /** Runs before a create (429 past the tenant's creates per minute). */
  createLimit: RequestHandler;
  /** Runs on a create's error: one refused for its input gives back what `createLimit` counted. */
  createRefused: ErrorRequestHandler;
  /** Runs before a repeat (its key's task) is answered: it made no video, so it gives back what `createLimit` counted. */
  createReplayed: (res: Response) => Promise<void>;
  /** Event streams and `?wait` requests open at once. */
  caps: OpenRequestCaps;
}

const WaitQuery = z.strictObject({ wait: queryNumber(z.number().int().min(0).max(60)).optional() });

/** An event stream may stay open for the whole job: it looks for other replicas' changes less often than `?wait`. */
const STREAM_RECHECK_MS = 2_000;
/** A comment this often keeps an idle stream open through proxies (nginx reads for 60 s by default). */
const STREAM_HEARTBEAT_MS = 15_000;

/** `?wait=` in seconds, 0 without one; a plain read (no query at all) skips the schema. */
function waitOf(query: unknown): number {
  if (query && typeof query === 'object' && Object.keys(query).length === 0) return 0;
  return parseQuery(WaitQuery, query).wait ?? 0;
}

/**
 * The task version a reconnecting event-stream client last read (`Last-Event-ID`, which the
 * stream's `id:` fields set); undefined without one or when it is not a version.
 */
function lastEventIdOf(req: Request): number | undefined {
  const header = req.header('last-event-id')?.trim();
  if (!header || !/^\d{1,15}$/.test(header)) return undefined;
  return Number(header);
}

function tenantOf(req: Request): string {
  if (!req.tenant) throw problems.unauthorized('not authenticated');
  return req.tenant;
}

/**
 * Writes a comment on the stream every `STREAM_HEARTBEAT_MS` (on the gateway's clock) until the
 * returned function is called: a stream with no news is not idle to a proxy or to the client's
 * own idle timer. Returns what stops it.
 */
function heartbeat(res: Response, clock: Clock): () => void {
  let timer: TimerHandle;
  const beat = () => {
    res.write(': keep-alive\n\n');
    timer = clock.setTimeout(beat, STREAM_HEARTBEAT_MS);
  };
  timer = clock.setTimeout(beat, STREAM_HEARTBEAT_MS);
  return () => timer.cancel();
}

export function videoRoutes(service: TaskService, limits: VideoRouteLimits, clock: Clock): Router {
  const router = Router();
  router.use(rememberMountPath());
  router.param('id', logTaskId);

  router.post('/', noQuery(), headerOnce('Idempotency-Key'), limits.createLimit, requireJson(), async (req, res) => {
    const result = await service.create(tenantOf(req), req.body, req.header('idempotency-key'), { request_id: req.id }, (taskId) => {
      res.locals[TASK_ID_LOCAL] = taskId;
    });
    res.locals[TASK_ID_LOCAL] = result.task.id;
    if (result.replayed) {
      await limits.createReplayed(res);
      res.setHeader('idempotent-replayed', 'true');
    }
    res.status(202).location(`/v1/videos/${result.task.id}`).json(result.task);
  });

  router.post('/quote', noQuery(), requireJson(), async (req, res) => {
    res.json(await service.quote(tenantOf(req), req.body));
  });

  router.get('/', async (req, res) => {
    res.json(await service.list(tenantOf(req), req.query));
  });

  router.post('/:id/cancel', noQuery(), noBody(), async (req, res) => {
    res.json(await service.cancel(tenantOf(req), String(req.params.id), { request_id: req.id }));
  });

  router.get('/:id/webhooks', noQuery(), async (req, res) => {
    res.json(await service.webhookDeliveries(tenantOf(req), String(req.params.id)));
  });

  router.get('/:id/events', noQuery(), async (req, res) => {
    const tenant = tenantOf(req);
    const release = limits.caps.acquire(tenant, 'streams');
    // Registered before the first await: a client gone during the first read is still noticed.
    const gone = new AbortController();
    res.on('close', () => {
      release();
      gone.abort();
    });
    const changes = service.watch(tenant, String(req.params.id), { signal: gone.signal, recheckMs: STREAM_RECHECK_MS, everyStatus: true });
    // The first change is read before anything is written, so an unknown task is a plain 404.
    let change;
    try {
      change = await changes.next();
    } catch (error) {
      release();
      throw error;
    }
    if (change.done) {
      release();
      // The client went away while the task was read: nobody to answer.
      if (gone.signal.aborted) {
        res.end();
        return;
      }
      // Otherwise a stop ended the watch before its first event: answered as the stop gate
      // answers, not with an empty 200 that is no event stream (an EventSource gives up on it).
      res.set('connection', 'close');
      throw gatewayStopping();
    }
    // A reconnecting client already has every version up to the one it names, so it has the
    // current status when it read a version from the one the task took that status at (polls
    // and other bookkeeping move the version on, not the status).
    const lastRead = lastEventIdOf(req);
    const alreadyRead = lastRead !== undefined && (change.value.statusVersion ?? change.value.version) <= lastRead;
    if (alreadyRead && TERMINAL_STATUSES.has(change.value.status)) {
      // It read the terminal event: 204 tells an EventSource to stop reconnecting.
      release();
      await changes.return();
      res.status(204).end();
      return;
    }
    // No `Connection` header of its own: node keeps the connection alive unless the client asked
    // for it to be closed (`Connection: close`, HTTP/1.0), and closes it after the stream then.
    // A `keep-alive` set here overrode that wish, and the socket stayed open for the keep-alive timeout.
    res.status(200).set({
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store, no-transform',
      'x-accel-buffering': 'no',
    });
    if (req.method === 'HEAD') {
      // A HEAD answer has no body: its client takes it as done once the head arrives, and may send
      // its next request on the connection. Held open as a stream, that request would wait for the
      // task to end, and the HEAD would keep one of the tenant's open streams.
      release();
      await changes.return();
      res.end();
      return;
    }
    res.flushHeaders();
    const stopHeartbeat = heartbeat(res, clock);
    try {
      let lastStatus: string | undefined = alreadyRead ? change.value.status : undefined;
      // One event per status change; the watch ends after the terminal one.
      for (; !change.done && !gone.signal.aborted; change = await changes.next()) {
        const task = change.value;
        if (task.status === lastStatus) continue;
        lastStatus = task.status;
        const resource = await service.resourceOf(task);
        if (gone.signal.aborted) break;
        res.write(`id: ${task.version}\nevent: ${resource.status}\ndata: ${JSON.stringify(resource)}\n\n`);
      }
    } finally {
      release();
      stopHeartbeat();
      await changes.return();
      if (!res.writableEnded) res.end();
    }
  });

  // Errors of the routes above pass here; only a create's refusal has anything to give back.
  router.use(limits.createRefused);

  return router;
}

/**
 * `GET /v1/videos/{id}` (with `?wait=`): the most frequent request, so the app registers it on
 * its own ahead of the routers (a read passes fewer layers); same auth, answers and errors.
 */
export function readVideo(service: TaskService, caps: OpenRequestCaps): RequestHandler {
  return async (req, res) => {
    const id = String(req.params.id);
    res.locals[TASK_ID_LOCAL] = id;
    // Without a `?` there is no query to parse.
    const wait = req.url.includes('?') ? waitOf(req.query) : 0;
    if (wait === 0) {
      res.json(await service.get(tenantOf(req), id));
      return;
    }
    res.locals[ROUTE_VARIANT_LOCAL] = '?wait';
    const release = caps.acquire(tenantOf(req), 'waits');
    const aborted = new AbortController();
    res.on('close', () => {
      release();
      aborted.abort();
    });
    try {
      const task = await service.waitFor(tenantOf(req), id, wait, aborted.signal);
      if (!res.writableEnded && !aborted.signal.aborted) res.json(task);
    } finally {
      release();
    }
  };
}
