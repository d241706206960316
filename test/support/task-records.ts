/**
 * Task records for tests of the engine below the HTTP layer.
 */
import type { TaskRecord } from '../../src/core/tasks/task-records.js';

/** A queued task as the task service creates it, at `createdAt` (default 2026-01-01). */
export function taskRecord(id: string, overrides: Partial<TaskRecord> = {}): TaskRecord {
  const T0 = overrides.createdAt ?? Date.UTC(2026, 0, 1);
  return {
    id,
    tenant: 'acme',
    status: 'queued',
    phase: 'dispatch',
    model: 'kling-v3',
    quality: 'pro',
    operation: 'text-to-video',
    request: { model: 'kling-v3', prompt: 'a fox', quality: 'pro', operation: 'text-to-video', duration: 5 },
    plan: {
      explicit: ['model', 'prompt'],
      candidates: [
        { provider: 'freepik', estimate: { credits: 56, currencyAmount: 0.56, currency: 'USD' }, warnings: ['audio is off'] },
        { provider: 'kling3api', warnings: [] },
      ],
    },
    warnings: ['audio is off'],
    metadata: { order: '42' },
    provider: null,
    account: null,
    providerTaskId: null,
    providerStatus: null,
    tracking: null,
    outputs: [],
    error: null,
    cost: { credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' },
    webhookUrl: 'https://hooks.example.com/kling',
    callbackToken: `tok_${id}`,
    createdAt: T0,
    updatedAt: T0,
    completedAt: null,
    deadlineAt: T0 + 30 * 60_000,
    dispatchAfter: T0,
    nextPollAt: null,
    pollCount: 0,
    leaseOwner: null,
    leaseUntil: null,
    expectsWebhook: false,
    cancelAt: null,
    cancelRequestedAt: null,
    version: 0,
    statusVersion: 0,
    ...overrides,
  };
}
