/**
 * Inbound provider webhooks (SPEC §4). Signed ones (`/v1/webhooks/<provider>`) are verified by
 * the provider's adapter (signature, timestamp) and de-duplicated by `webhook-id` before they
 * change anything. Unsigned callbacks (`/v1/webhooks/<provider>/<token>`) are accepted only on a
 * task's secret token and never believed as such: they make the task poll now.
 */
import express, { Router } from 'express';
import { rememberMountPath } from './middleware.js';
import type { Engine } from '../core/tasks/engine.js';
import { ProblemError, problems } from '../core/model/problems.js';
import type { Tracker } from '../core/tasks/tracker.js';

/** How long a sender is asked to wait when news arrives before its task is recorded. */
const WEBHOOK_RETRY_AFTER_S = 5;

export function webhookRoutes(engine: Engine, tracker: Tracker): Router {
  const router = Router();
  router.use(rememberMountPath());
  const raw = express.raw({ type: () => true, limit: '1mb' });
  const { metrics, store, clock, logger } = engine;

  router.post('/:provider', raw, async (req, res) => {
    const providerId = String(req.params.provider);
    const runtime = engine.runtimes.get(providerId);
    if (!runtime || runtime.provider.inboundWebhook !== 'signed' || !runtime.provider.verifyWebhook) {
      throw problems.notFound(`no signed webhooks for provider ${providerId}`);
    }
    if (!runtime.webhookSecret) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'no_secret' });
      throw problems.notFound(`webhooks for ${providerId} are not configured (no webhook secret)`);
    }
    const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const headers: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(' ') : value;
    }
    const verification = runtime.provider.verifyWebhook({ headers, rawBody }, runtime.webhookSecret, clock.now());
    if (!verification.ok) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'rejected' });
      logger.warn({ provider: providerId, reason: verification.reason, request_id: req.id }, 'webhook rejected');
      throw new ProblemError(401, 'bad-signature', 'Webhook not verified', verification.reason);
    }
    if (verification.providerTaskId === undefined) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'unreadable' });
      logger.warn({ provider: providerId, webhook_id: verification.webhookId, request_id: req.id }, 'signed webhook names no task; polling covers it');
      res.json({ received: true, matched: false });
      return;
    }
    const task = await store.findByProviderTask(providerId, verification.providerTaskId);
    if (!task) {
      // Not known (yet?). While a create to this provider is still being recorded it may be
      // about that task: ask the sender to retry shortly rather than drop the news. Otherwise it
      // is not ours (another client of the same account), and a retry would change nothing.
      if (await store.isSubmittingTo(providerId)) {
        metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'retry_later' });
        throw problems.retryLater('a create to this provider is still being recorded; retry shortly', WEBHOOK_RETRY_AFTER_S);
      }
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'unmatched' });
      res.json({ received: true, matched: false });
      return;
    }
    const fresh = await store.rememberInboundWebhook(providerId, verification.webhookId, clock.now());
    if (!fresh) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'duplicate' });
      res.json({ received: true, duplicate: true });
      return;
    }
    try {
      await tracker.onWebhook(task, verification.report);
    } catch (error) {
      // Not applied: forget the id so the sender's retry is not taken for a replay.
      await store.forgetInboundWebhook(providerId, verification.webhookId).catch(() => undefined);
      throw error;
    }
    metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'applied' });
    res.json({ received: true, matched: true });
  });

  router.post('/:provider/:token', raw, async (req, res) => {
    const providerId = String(req.params.provider);
    const runtime = engine.runtimes.get(providerId);
    if (!runtime || runtime.provider.inboundWebhook !== 'token') {
      throw problems.notFound(`no callbacks for provider ${providerId}`);
    }
    const task = await store.findByCallbackToken(String(req.params.token));
    if (!task || task.provider !== providerId) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'unknown_token' });
      throw problems.notFound('unknown callback');
    }
    if (task.phase === 'submitting') {
      // The create's answer is not recorded yet, so there is nothing to confirm against: retry.
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'retry_later' });
      throw problems.retryLater('the create is still being recorded; retry shortly', WEBHOOK_RETRY_AFTER_S);
    }
    let body: unknown;
    try {
      body = JSON.parse((Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)).toString('utf8') || 'null');
    } catch {
      body = undefined;
    }
    const named = runtime.provider.readCallbackTaskId?.(body);
    if (named && task.provider_task_id && named !== task.provider_task_id) {
      metrics.inboundWebhooks.inc({ provider: providerId, outcome: 'mismatch' });
      throw problems.validation([{ path: 'task_id', message: 'does not match this callback' }]);
    }
    // Unsigned: believe nothing in the body. A claim that the task finished is confirmed by
    // asking the provider now; a progress claim changes nothing and waits for the next poll.
    const claimsFinished = runtime.provider.callbackClaimsFinished?.(body) ?? true;
    metrics.inboundWebhooks.inc({ provider: providerId, outcome: claimsFinished ? 'confirming' : 'progress' });
    if (claimsFinished) await tracker.pollSoon(task);
    res.json({ received: true, matched: true });
  });

  return router;
}
