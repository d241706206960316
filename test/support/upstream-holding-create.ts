/**
 * An upstream on loopback that holds each create until the test lets it answer: for news a
 * provider sends about a task (a webhook, a callback) while the gateway still waits for the
 * create's answer.
 */
import { afterEach } from 'vitest';
import { GatewayDeploys, type TestGateway } from './harness.js';
import { loopbackServer } from './raw-answer.js';

export interface UpstreamHoldingCreate {
  readonly base: string;
  /** The paths of the status fetches it answered. */
  readonly statusCalls: string[];
  /** The body of every create that reached the upstream, in order. */
  readonly creates: Record<string, string>[];
  /** The body of the first create, once it has reached the upstream. */
  readonly createReached: Promise<Record<string, string>>;
  /** Lets the create be answered. */
  answerCreate(): void;
  close(): Promise<void>;
}

/** One answer to a status fetch: its HTTP status and JSON body, or the connection reset before any answer. */
export type StatusAnswer = { http: number; body: unknown } | 'reset';

/**
 * Answers a create with `answers.create` once `answerCreate` is called, and every other request
 * with `answers.status` (a body sent with 200), or, when it is a function, with what it gives for
 * the fetch's number (0 first).
 */
export async function upstreamHoldingCreate(answers: { create: unknown; status: unknown }): Promise<UpstreamHoldingCreate> {
  const statusCalls: string[] = [];
  const creates: Record<string, string>[] = [];
  let reached!: (body: Record<string, string>) => void;
  const createReached = new Promise<Record<string, string>>((resolve) => (reached = resolve));
  let answerCreate!: () => void;
  const answered = new Promise<void>((resolve) => (answerCreate = resolve));
  const server = await loopbackServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      const reply = (body: unknown) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'POST') {
        statusCalls.push(req.url ?? '');
        if (typeof answers.status !== 'function') return reply(answers.status);
        const answer = (answers.status as (call: number) => StatusAnswer)(statusCalls.length - 1);
        if (answer === 'reset') return req.socket.destroy();
        res.statusCode = answer.http;
        return reply(answer.body);
      }
      const body = JSON.parse(raw) as Record<string, string>;
      creates.push(body);
      reached(body);
      void answered.then(() => reply(answers.create));
    });
  });
  return { base: server.base, statusCalls, creates, createReached, answerCreate, close: () => server.close() };
}

/** Lets gateway time run on `gateway` in 100 ms steps (at most 5 s) until the task is terminal; returns it. */
export async function finishesSoon(gateway: TestGateway, id: string): Promise<any> {
  let task: any;
  await gateway.advanceUntil(async () => {
    task = (await gateway.get(id)).body;
    return ['succeeded', 'failed', 'canceled'].includes(task.status);
  }, 100, 50);
  return task;
}

/** A legacy Kling-API task the upstream holds, done at once. */
export const LEGACY_TASK_ID = '831922345719271433';
export const LEGACY_VIDEO = 'https://cdn.example.com/lighthouse.mp4';

/** A legacy Kling-API upstream holding its create, whose task is done at once. */
export function legacyUpstreamHoldingCreate(): Promise<UpstreamHoldingCreate> {
  const done = { task_id: LEGACY_TASK_ID, task_status: 'succeed', task_status_msg: '', task_result: { videos: [{ id: 'v1', url: LEGACY_VIDEO, duration: '5' }] } };
  return upstreamHoldingCreate({
    create: { code: 0, message: 'SUCCEED', request_id: 'r1', data: { task_id: LEGACY_TASK_ID, task_status: 'submitted' } },
    status: { code: 0, message: 'SUCCEED', request_id: 'r2', data: done },
  });
}

/** kling3api's server error (seed 004's `INTERNAL_ERROR`) naming the task `taskId` beside it. */
export function kling3apiNamedServerError(taskId: string) {
  return { code: 'INTERNAL_ERROR', message: 'Server error, please try again later', data: { task_id: taskId } };
}

/** kling3api's status answer showing `taskId` done, its video at `video`, 400 credits charged. */
export function kling3apiShownDone(taskId: string, video: string) {
  return { code: 200, message: 'success', data: { task_id: taskId, status: 'SUCCESS', response: [video], consumed_credits: 400 } };
}

/**
 * A kling3api-only create (`prompt`) answered with kling3api's server error naming `named`, the
 * status showing that task done with `video`; and what a test of it opens — gateways (`open`),
 * upstreams (`upstream`), deploys (`deploys`) — closed after each test, held creates answered first.
 */
export function namedCreateCase(named: string, video: string, prompt: string) {
  const namedServerError = kling3apiNamedServerError(named);
  const shown = kling3apiShownDone(named, video);
  const open: TestGateway[] = [];
  const upstreams: UpstreamHoldingCreate[] = [];
  let deploys: GatewayDeploys | undefined;
  afterEach(async () => {
    for (const upstream of upstreams) upstream.answerCreate();
    for (const gateway of open.splice(0)) await gateway.close().catch(() => undefined);
    for (const upstream of upstreams.splice(0)) await upstream.close();
    await deploys?.close();
    deploys = undefined;
  });
  return {
    request: { model: 'kling-v3', prompt, duration: 5, routing: { providers: ['kling3api'] } },
    namedServerError,
    shown,
    open,
    /** An upstream answering creates with the named server error (once let) and status fetches with `status`. */
    async upstream(status: unknown = shown): Promise<UpstreamHoldingCreate> {
      const upstream = await upstreamHoldingCreate({ create: namedServerError, status });
      upstreams.push(upstream);
      return upstream;
    },
    /** Deploys of gateways on one database, one after another. */
    async deploys(): Promise<GatewayDeploys> {
      deploys = await GatewayDeploys.start();
      return deploys;
    },
  };
}
