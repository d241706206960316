/**
 * `/v1/models` and `/v1/providers`: what can be asked, who serves it, and how each provider is
 * doing. Both read the same capability declarations the router reads.
 */
import { Router } from 'express';
import { rememberMountPath } from './middleware.js';
import { MODELS, OPERATIONS, type Model, type Operation, type Quality } from '../core/model/canonical.js';
import type { Engine } from '../core/tasks/engine.js';
import type { FieldRule } from '../core/model/offerings.js';

interface ModelEntry {
  model: Model;
  operations: {
    operation: Operation;
    providers: { provider: string; enabled: boolean; qualities: Quality[]; upstream: string; fields: Record<string, FieldRule> }[];
  }[];
}

/** Canonical models and operations, with every provider offering each (from capabilities). */
export function listModels(engine: Engine): { data: ModelEntry[] } {
  const data: ModelEntry[] = [];
  for (const model of MODELS) {
    const operations: ModelEntry['operations'] = [];
    for (const operation of OPERATIONS) {
      const providers: ModelEntry['operations'][number]['providers'] = [];
      for (const runtime of engine.runtimes.values()) {
        for (const offering of runtime.provider.offerings) {
          if (offering.model !== model || offering.operation !== operation) continue;
          providers.push({
            provider: runtime.id,
            enabled: runtime.enabled,
            qualities: [...offering.qualities],
            upstream: offering.upstream,
            fields: offering.fields as Record<string, FieldRule>,
          });
        }
      }
      if (providers.length > 0) operations.push({ operation, providers });
    }
    if (operations.length > 0) data.push({ model, operations });
  }
  return { data };
}

export async function listProviders(engine: Engine) {
  const counts = await engine.store.countByPhase();
  let queued = 0;
  for (const [key, count] of counts) if (key.startsWith('dispatch:')) queued += count;
  const now = engine.clock.now();
  return {
    data: [...engine.runtimes.values()].map((runtime) => {
      const stats = runtime.stats.snapshot(now);
      const inFlight = (counts.get(`submitting:${runtime.id}`) ?? 0) + (counts.get(`tracking:${runtime.id}`) ?? 0);
      const cooling = runtime.coolingDownUntil;
      return {
        id: runtime.id,
        name: runtime.provider.name,
        enabled: runtime.enabled,
        mode: !runtime.enabled ? ('disabled' as const) : runtime.simulated ? ('simulator' as const) : ('live' as const),
        disabled_reason: runtime.disabledReason ?? null,
        circuit: runtime.circuit,
        in_flight: inFlight,
        max_in_flight: runtime.config.max_in_flight,
        queued,
        cooling_down_until: cooling ? new Date(cooling).toISOString() : null,
        success_rate: stats.successRate,
        calls: stats.calls,
        latency_p50_ms: stats.latencyP50Ms,
        latency_p95_ms: stats.latencyP95Ms,
        median_completion_ms: stats.medianCompletionMs,
        priority: runtime.config.priority,
        weight: runtime.config.weight,
        pricing: runtime.pricing
          ? {
              currency: runtime.pricing.currency,
              credit_value: runtime.pricing.credit_value,
              rules: runtime.pricing.rules as unknown as Record<string, unknown>[],
            }
          : null,
      };
    }),
  };
}

export function catalogRoutes(engine: Engine): Router {
  const router = Router();
  router.use(rememberMountPath());
  router.get('/models', (_req, res) => {
    res.json(listModels(engine));
  });
  router.get('/providers', async (_req, res) => {
    res.json(await listProviders(engine));
  });
  return router;
}
