/**
 * Inbound provider webhooks (SPEC §4): signed ones on `/v1/webhooks/<provider>` or on the path
 * of the attempt they are about (`/v1/webhooks/<provider>/<attempt key>`), unsigned callbacks on
 * `/v1/webhooks/<provider>/<token>`. What they mean is decided in core
 * (`InboundWebhooks`); these routes hand over the raw request. The plain case is answered ahead of
 * express (`hot-webhook.ts`) through the same `receiveWebhook`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import express, { Router, type Request, type Response } from 'express';
import type { InboundWebhooks, WebhookReceipt } from '../core/tasks/inbound-webhooks.js';
import { TASK_ID_LOCAL, rememberMountPath } from './middleware.js';
import { WEBHOOK_BODY_LIMIT, type WebhookBodyBudget } from './webhook-body-budget.js';


function rawBodyOf(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

function headersOf(incoming: IncomingHttpHeaders): Record<string, string | undefined> {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(incoming)) {
    headers[name.toLowerCase()] = Array.isArray(value) ? value.join(' ') : value;
  }
  return headers;
}

/**
 * A webhook to `/v1/webhooks/<provider>[/<token>]`, with its headers and raw body: what the
 * provider is told (problem details are thrown). `onTask` is told the task it was about, once known.
 */
export async function receiveWebhook(
  inbound: InboundWebhooks,
  provider: string,
  token: string | undefined,
  incoming: IncomingHttpHeaders,
  rawBody: Buffer,
  requestId: string,
  onTask?: (taskId: string) => void,
): Promise<WebhookReceipt> {
  if (token === undefined || inbound.isSigned(provider)) {
    // On a token path: a signed provider's webhook on the attempt's own path (see `Dispatcher.callbackUrlFor`).
    return inbound.receiveSigned(provider, { headers: headersOf(incoming), rawBody }, requestId, token, onTask);
  }
  let body: unknown;
  try {
    body = JSON.parse(rawBody.toString('utf8') || 'null');
  } catch {
    body = undefined;
  }
  return inbound.receiveCallback(provider, token, body, onTask);
}

export function webhookRoutes(inbound: InboundWebhooks, budget: WebhookBodyBudget): Router {
  const router = Router();
  router.use(rememberMountPath());
  // Signatures are over the exact bytes: the body is read raw.
  const raw = express.raw({ type: () => true, limit: WEBHOOK_BODY_LIMIT });

  const receive = async (req: Request, res: Response, token: string | undefined) => {
    // The task the webhook was about goes on the request's log line.
    const onTask = (taskId: string) => (res.locals[TASK_ID_LOCAL] = taskId);
    res.json(await receiveWebhook(inbound, String(req.params.provider), token, req.headers, rawBodyOf(req), req.id, onTask));
  };
  // Counted against the budget the hot webhook shares, before a byte of the body is read.
  const counted = budget.middleware();
  router.post('/:provider', counted, raw, (req, res) => receive(req, res, undefined));
  router.post('/:provider/:token', counted, raw, (req, res) => receive(req, res, String(req.params.token)));

  return router;
}
