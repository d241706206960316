/**
 * Response shapes of the endpoints that are not tasks (quote, models, providers, webhooks,
 * health). With the canonical schemas they make up the gateway's OpenAPI document.
 */
import { z } from 'zod';
import { Model, Operation, Quality, RoutingStrategy } from '../core/model/canonical.js';

export const QuoteProvider = z
  .object({
    provider: z.string(),
    eligible: z.boolean(),
    reasons: z.array(z.string()).meta({ description: 'Why the provider cannot serve this request (empty when eligible).' }),
    warnings: z.array(z.string()),
    order: z.number().int().nullable().meta({ description: 'Position in the try order (1 = first), null when not tried.' }),
    estimated_credits: z.number().nullable(),
    estimated_cost: z.number().nullable().meta({ description: 'Currency value of the estimated credits.' }),
    currency: z.string().nullable(),
  })
  .meta({ id: 'QuoteProvider' });

export const Quote = z
  .object({
    strategy: RoutingStrategy,
    request: z.record(z.string(), z.unknown()).meta({ description: 'The canonical request with defaults applied.' }),
    order: z.array(z.string()).meta({ description: 'Providers in the order a create would try them.' }),
    providers: z.array(QuoteProvider),
  })
  .meta({ id: 'Quote' });

export const FieldRuleSchema = z
  .object({
    required: z.boolean().optional(),
    values: z.array(z.union([z.string(), z.number(), z.boolean()])).optional(),
    min: z.number().optional(),
    max: z.number().optional(),
    maxLength: z.number().optional(),
    maxItems: z.number().optional(),
  })
  .meta({ id: 'FieldRule' });

export const ModelList = z
  .object({
    data: z.array(
      z.object({
        model: Model,
        operations: z.array(
          z.object({
            operation: Operation,
            providers: z.array(
              z.object({
                provider: z.string(),
                enabled: z.boolean(),
                qualities: z.array(Quality),
                upstream: z.string(),
                fields: z.record(z.string(), FieldRuleSchema).meta({
                  description: 'Request fields this provider takes for this operation, with their limits.',
                }),
              }),
            ),
          }),
        ),
      }),
    ),
  })
  .meta({ id: 'ModelList' });

export const ProviderStatus = z
  .object({
    id: z.string(),
    name: z.string(),
    enabled: z.boolean(),
    mode: z.enum(['live', 'simulator', 'disabled']).meta({
      description: '`simulator` when no upstream key is configured; `disabled` when turned off in config.',
    }),
    disabled_reason: z.string().nullable(),
    circuit: z.enum(['closed', 'open', 'half_open', 'isolated']),
    in_flight: z.number().int(),
    max_in_flight: z.number().int(),
    queued: z.number().int().meta({ description: 'Tasks waiting for any provider.' }),
    cooling_down_until: z.string().nullable().meta({ description: 'Set after a 429 with Retry-After.' }),
    success_rate: z.number().nullable().meta({ description: 'Share of successful upstream calls in the last 10 minutes.' }),
    calls: z.number().int(),
    latency_p50_ms: z.number().nullable(),
    latency_p95_ms: z.number().nullable(),
    median_completion_ms: z.number().nullable(),
    priority: z.number(),
    weight: z.number(),
    pricing: z
      .object({
        currency: z.string(),
        credit_value: z.number(),
        rules: z.array(z.record(z.string(), z.unknown())),
      })
      .nullable(),
  })
  .meta({ id: 'ProviderStatus' });

export const ProviderList = z.object({ data: z.array(ProviderStatus) }).meta({ id: 'ProviderList' });

export const WebhookAck = z
  .object({
    received: z.boolean(),
    duplicate: z.boolean().optional().meta({ description: 'This webhook-id was seen before; nothing changed.' }),
    matched: z.boolean().optional().meta({ description: 'Whether the webhook named a task of this gateway.' }),
  })
  .meta({ id: 'WebhookAck' });

export const Health = z.object({ status: z.string(), store: z.string().optional() }).meta({ id: 'Health' });
