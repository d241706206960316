/**
 * `/v1/videos`: create, quote, list, get (with `?wait=`), and Server-Sent Events.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { TERMINAL_STATUSES, type TaskStatus } from '../core/model/canonical.js';
import type { Engine } from '../core/tasks/engine.js';
import { problems } from '../core/model/problems.js';
import type { TaskService } from '../core/tasks/task-service.js';
import { issuesToErrors } from '../core/tasks/task-service.js';
import { toTask } from '../core/tasks/task-resource.js';
import type { TaskRow } from '../store/task-store.js';
import { rememberMountPath, requireJson } from './middleware.js';

const WaitQuery = z.strictObject({ wait: z.coerce.number().int().min(0).max(60).optional() });

function tenantOf(req: Request): string {
  if (!req.tenant) throw problems.unauthorized('not authenticated');
  return req.tenant;
}

export function videoRoutes(service: TaskService, engine: Engine): Router {
  const router = Router();
  router.use(rememberMountPath());

  router.post('/', requireJson(), async (req, res) => {
    const result = await service.create(tenantOf(req), req.body, req.header('idempotency-key'), { request_id: req.id });
    if (result.replayed) res.setHeader('idempotent-replayed', 'true');
    res.status(202).location(`/v1/videos/${result.task.id}`).json(result.task);
  });

  router.post('/quote', requireJson(), (req, res) => {
    tenantOf(req);
    res.json(service.quote(req.body));
  });

  router.get('/', async (req, res) => {
    res.json(await service.list(tenantOf(req), req.query));
  });

  router.get('/:id', async (req, res) => {
    const parsed = WaitQuery.safeParse(req.query);
    if (!parsed.success) throw problems.validation(issuesToErrors(parsed.error.issues), 'The query is not valid.');
    const id = String(req.params.id);
    const wait = parsed.data.wait ?? 0;
    if (wait === 0) {
      res.json(await service.get(tenantOf(req), id));
      return;
    }
    const aborted = new AbortController();
    res.on('close', () => aborted.abort());
    const task = await service.waitFor(tenantOf(req), id, wait, aborted.signal);
    if (!res.writableEnded && !aborted.signal.aborted) res.json(task);
  });

  router.get('/:id/events', async (req, res) => {
    const tenant = tenantOf(req);
    const id = String(req.params.id);
    // Registered before the first await: a client gone during the first read is still noticed.
    let closed = false;
    const cleanups: (() => void)[] = [];
    const close = () => {
      if (closed) return;
      closed = true;
      for (const cleanup of cleanups) cleanup();
      if (!res.writableEnded) res.end();
    };
    res.on('close', close);

    const first = await engine.store.getTask(id);
    if (!first || first.tenant !== tenant) throw problems.notFound(`video ${id} not found`);
    if (closed) return;
    res.status(200).set({
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();

    let lastStatus = '';
    let lastVersion = -1;
    /** Sends the row when it is newer than the last one sent and its status changed. */
    const send = async (row: TaskRow) => {
      if (closed || row.version <= lastVersion) return;
      lastVersion = row.version;
      if (row.status === lastStatus) return;
      lastStatus = row.status;
      const task = toTask(row, await engine.store.getAttempts(id));
      if (closed) return;
      res.write(`id: ${row.version}\nevent: ${task.status}\ndata: ${JSON.stringify(task)}\n\n`);
      if (TERMINAL_STATUSES.has(task.status as TaskStatus)) close();
    };
    cleanups.push(engine.events.subscribe(id, (row) => void send(row)));
    // Other replicas' changes arrive through the store.
    const recheck = () => {
      if (closed) return;
      void engine.store
        .getTask(id)
        .then((row) => row && send(row))
        .finally(() => {
          if (!closed) {
            const timer = engine.clock.setTimeout(recheck, 2_000);
            cleanups.push(() => timer.cancel());
          }
        });
    };
    const timer = engine.clock.setTimeout(recheck, 2_000);
    cleanups.push(() => timer.cancel());
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    heartbeat.unref();
    cleanups.push(() => clearInterval(heartbeat));
    await send(first);
  });

  return router;
}
