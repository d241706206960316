/**
 * Inbound provider webhooks (SPEC §4): signed ones on `/v1/webhooks/<provider>` or on the path
 * of the attempt they are about (`/v1/webhooks/<provider>/<attempt key>`), unsigned callbacks on
 * `/v1/webhooks/<provider>/<token>`. What they mean is decided in core
 * (`InboundWebhooks`); these routes hand over the raw request.
 */
import express, { Router, type Request } from 'express';
import type { InboundWebhooks } from '../core/tasks/inbound-webhooks.js';
import { rememberMountPath } from './middleware.js';

function rawBodyOf(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

function headersOf(req: Request): Record<string, string | undefined> {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    headers[name.toLowerCase()] = Array.isArray(value) ? value.join(' ') : value;
  }
  return headers;
}

export function webhookRoutes(inbound: InboundWebhooks): Router {
  const router = Router();
  router.use(rememberMountPath());
  // Signatures are over the exact bytes: the body is read raw.
  const raw = express.raw({ type: () => true, limit: '1mb' });

  router.post('/:provider', raw, async (req, res) => {
    res.json(await inbound.receiveSigned(String(req.params.provider), { headers: headersOf(req), rawBody: rawBodyOf(req) }, req.id));
  });

  router.post('/:provider/:token', raw, async (req, res) => {
    const provider = String(req.params.provider);
    if (inbound.isSigned(provider)) {
      // A signed provider's webhook on the attempt's own path (see `Dispatcher.callbackUrlFor`).
      res.json(await inbound.receiveSigned(provider, { headers: headersOf(req), rawBody: rawBodyOf(req) }, req.id, String(req.params.token)));
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(rawBodyOf(req).toString('utf8') || 'null');
    } catch {
      body = undefined;
    }
    res.json(await inbound.receiveCallback(String(req.params.provider), String(req.params.token), body));
  });

  return router;
}
