/**
 * Response shapes of the endpoints that are not tasks (quote, models, providers, webhooks,
 * health). With the canonical schemas they make up the gateway's OpenAPI document.
 */
import { z } from 'zod';
import { Model, Operation, Quality, RoutingStrategy, Task } from '../core/model/canonical.js';

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
                required_one_of: z.array(z.array(z.string())).meta({
                  description:
                    'Groups of fields of which a request needs at least one each, where no one of them is `required` ' +
                    '(e.g. `[["prompt", "multi_shot"]]`). Empty when there are none.',
                }),
              }),
            ),
          }),
        ),
      }),
    ),
  })
  .meta({ id: 'ModelList' });

export const ProviderAccountStatus = z
  .object({
    id: z.string(),
    circuit: z.enum(['closed', 'open', 'half_open', 'isolated']),
    in_flight: z.number().int(),
    max_in_flight: z.number().int(),
    cooling_down_until: z.string().nullable().meta({ description: 'Set after a 429 with Retry-After to this account.' }),
    success_rate: z.number().nullable().meta({ description: "Share of this account's successful upstream calls in the last 10 minutes." }),
    calls: z.number().int(),
    latency_p50_ms: z.number().nullable(),
    latency_p95_ms: z.number().nullable(),
  })
  .meta({ id: 'ProviderAccountStatus' });

export const ProviderStatus = z
  .object({
    id: z.string(),
    name: z.string(),
    enabled: z.boolean(),
    mode: z.enum(['live', 'simulator', 'disabled']).meta({
      description: '`live` with an upstream key; `simulator` when no upstream key is configured in the sandbox; `disabled` when turned off in config, or left without a key in a live deployment (`disabled_reason` says which).',
    }),
    disabled_reason: z.string().nullable(),
    can_cancel: z.boolean().meta({
      description:
        'Whether the provider can cancel a task it accepted. When false, `POST /v1/videos/{id}/cancel` cancels its tasks only while they are ' +
        'waiting at the gateway (`queued` with no `provider_task_id`) and answers `409` once it holds one, also while it is `queued` in ' +
        "the provider's own queue (`provider_task_id` set).",
    }),
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
    accounts: z.array(ProviderAccountStatus).meta({
      description:
        "The provider's upstream accounts (`providers.<id>.accounts`; one account `default` for a single key), each with its own " +
        'in-flight cap, rate windows, circuit and cool-down. The figures above sum them up: the provider is open only when every account is.',
    }),
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

export const Health = z
  .object({
    status: z.string(),
    store: z.string().optional(),
    reason: z.string().optional().meta({ description: "Why the replica is not ready although its store answers: its clock is off the database server's, by how much." }),
  })
  .meta({ id: 'Health' });

const money = (description: string) => z.number().nullable().meta({ description });

export const UsageBudget = z
  .object({
    tenant: z.string(),
    amount: z.number().meta({ description: 'The budget per period, in `currency`.' }),
    currency: z.string(),
    period: z.enum(['day', 'month']).meta({ description: 'UTC calendar day or month.' }),
    period_key: z.string().meta({ description: '`2026-11-22` (day) or `2026-11` (month).', example: '2026-11' }),
    period_start: z.string().meta({ description: 'Inclusive, ISO 8601 UTC.' }),
    period_end: z.string().meta({ description: 'Exclusive, ISO 8601 UTC.' }),
    per_task_limit: z.number().nullable().meta({ description: 'Largest estimated cost of one task; providers quoting more are passed over.' }),
    spent: z.number().meta({ description: 'Final charges of the period’s finished tasks.' }),
    reserved: z.number().meta({ description: 'Held for unfinished tasks (their estimate, or what their provider reported so far).' }),
    remaining: z.number().meta({ description: '`amount - spent - reserved`, never below 0.' }),
    used_ratio: z.number().nullable().meta({ description: '`(spent + reserved) / amount`.' }),
    warned_at: z.string().nullable().meta({ description: 'When the 80 % alert (`budget.warning`) went out this period.' }),
    exhausted_at: z.string().nullable().meta({ description: 'When the 100 % alert (`budget.exhausted`) went out this period.' }),
  })
  .meta({ id: 'UsageBudget', description: 'A tenant’s budget in the current period, across all replicas.' });

export const UsageRow = z
  .object({
    provider: z.string().nullable().optional().meta({ description: 'Group key (with `group_by=provider`); null for tasks no provider took.' }),
    account: z.string().nullable().optional().meta({
      description:
        'Group key (with `group_by=provider,account`): the provider account that took the task (each is billed on its own); null for tasks no account took.',
    }),
    model: z.string().optional().meta({ description: 'Group key (with `group_by=model`).' }),
    operation: z.string().optional().meta({ description: 'Group key (with `group_by=operation`).' }),
    quality: z.string().optional().meta({ description: 'Group key (with `group_by=quality`).' }),
    day: z.string().optional().meta({ description: 'Group key (with `group_by=day`): UTC day of creation, `YYYY-MM-DD`.' }),
    tenant: z.string().optional().meta({ description: 'Group key (with `group_by=tenant`, admin keys only).' }),
    currency: z.string().nullable().meta({ description: 'Rows are always split by currency; null for providers without a price list.' }),
    tasks: z.number().int().meta({ description: 'Tasks created in the window.' }),
    succeeded: z.number().int(),
    failed: z.number().int(),
    canceled: z.number().int(),
    in_progress: z.number().int().meta({ description: 'Not finished yet; their money is not counted until they are.' }),
    video_seconds: z.number().meta({ description: 'Seconds of video delivered: the providers’ durations, else the duration asked for.' }),
    credits: z.number().meta({ description: 'Credits charged for the finished tasks (failed ones included when charged).' }),
    currency_amount: money('Currency value of `credits`, summed in millionths (exact to the cent).'),
    credits_estimated: z.number().meta({ description: 'Part of `credits` from the gateway’s price lists (the provider reported no charge).' }),
    credits_reported: z.number().meta({ description: 'Part of `credits` the providers reported charging.' }),
    currency_amount_estimated: money('Currency value of `credits_estimated`.'),
    currency_amount_reported: money('Currency value of `credits_reported`.'),
    tasks_reported: z.number().int().meta({ description: 'Finished tasks whose charge the provider reported.' }),
    cost_per_second: money(
      'What a second of video cost: over `video_seconds`, the money of the succeeded tasks that counted seconds and of the failed and canceled ones (a charged failure is part of what the delivered seconds cost); a succeeded task that counted none, such as an edit of no known length or an image, adds none of its money. Null when no task counted any seconds.',
    ),
    success_rate: z.number().nullable().meta({ description: '`succeeded / (succeeded + failed)`.' }),
    median_time_to_complete_ms: z.number().nullable().meta({ description: 'Median from creation to success, over the succeeded tasks.' }),
    drift_tasks: z.number().int().meta({
      description:
        'Quote against actual: succeeded tasks with both an estimate above 0 credits and a reported charge (failed ones are left out: a refund or partial charge says nothing of the price list; an estimate of 0 has no ratio, as in `cost_drift_ratio`).',
    }),
    drift_estimated_credits: z.number().meta({ description: 'What the price list estimated for those tasks.' }),
    drift_reported_credits: z.number().meta({ description: 'What the providers reported charging for them.' }),
    drift_ratio: z.number().nullable().meta({
      description: '`drift_reported_credits / drift_estimated_credits`: 1 is an exact price list; above 1 the estimates are too low.',
    }),
    tasks_at_risk: z.number().int().meta({
      description:
        'Finished tasks this provider may also have billed although another provider took them (a create left unanswered, then failed over with `failover_on_timeout`); counted under the provider that may hold them, not in `tasks`.',
    }),
    credits_at_risk: z.number().meta({ description: 'Its estimate for those tasks: possibly billed, not included in `credits`.' }),
    currency_amount_at_risk: money('Currency value of `credits_at_risk`, not included in `currency_amount`.'),
  })
  .meta({ id: 'UsageRow' });

export const UsageReportSchema = z
  .object({
    object: z.literal('usage'),
    from: z.string().meta({ description: 'Inclusive start of the window (task creation time), ISO 8601 UTC.' }),
    to: z.string().meta({ description: 'Exclusive end of the window.' }),
    group_by: z.array(z.enum(['provider', 'account', 'model', 'operation', 'quality', 'day', 'tenant'])),
    tenant: z.string().nullable().meta({ description: 'Whose tasks the rows cover; null when an admin key reads every tenant.' }),
    data: z.array(UsageRow).meta({ description: 'One row per combination of the group keys and currency, sorted by them.' }),
    budgets: z.array(UsageBudget).meta({
      description:
        'Budget state of the tenant (every budgeted tenant for an admin key) in the current period, whatever `from` and `to` ask: ' +
        'each entry names its period (`period_key`, `period_start`, `period_end`), which may not be the window of `data`. ' +
        'A past period’s spend is in `data` (ask its window).',
    }),
  })
  .meta({ id: 'UsageReport' });

/** A task event, POSTed to the task's `webhook_url` (`task-lifecycle.ts`): its type, when, and the task. */
export const taskEvent = (type: 'video.processing' | 'video.succeeded' | 'video.failed' | 'video.canceled') =>
  z
    .object({
      type: z.literal(type),
      timestamp: z.string().meta({ description: 'When the task changed (ISO 8601, UTC).' }),
      data: Task,
    })
    .meta({ description: `A \`${type}\` event (Standard Webhooks).` });

/** The body of one budget alert: `budget.warning` at 80 %, `budget.exhausted` at 100 %, each its own type and threshold. */
export const budgetEvent = <Type extends 'budget.warning' | 'budget.exhausted'>(type: Type, percent: Type extends 'budget.warning' ? 80 : 100) =>
  z
    .object({
      type: z.literal(type),
      timestamp: z.string(),
      data: UsageBudget.extend({
        object: z.literal('budget'),
        threshold_percent: z.literal(percent),
        trigger: z.enum(['reserved', 'settled', 'refused']).meta({
          description: 'What reached the threshold: a reservation at create, a task’s final charge, or a create refused for the budget.',
        }),
      }),
    })
    // No component id: the generator does not collect schemas that only webhooks use, so it stays inline.
    .meta({ description: `A \`${type}\` account event, POSTed to \`tenants.<name>.events_url\` (Standard Webhooks).` });

/** Either budget alert. */
export const BudgetEvent = z.union([budgetEvent('budget.warning', 80), budgetEvent('budget.exhausted', 100)]);
