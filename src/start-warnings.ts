/**
 * What a start warns of, read from the store before the worker loops run: tasks and events a
 * configuration change left with nobody to serve them. Each warning names how many and what
 * happens to them; a store that cannot say is passed over (each such task or delivery records
 * why it failed when its time comes).
 */
import type { GatewayConfig } from './config/config.js';
import type { ProviderRuntime } from './core/upstream/provider-runtime.js';
import type { Logger } from './observability/logger.js';
import type { ProviderEndpoint } from './sandbox/sandbox.js';
import type { TaskStore } from './store/task-store.js';

/** The words a warning about `count` things uses: the singular's when one, else the plural's. */
function wording<Words extends Record<string, string>>(count: number, one: Words, many: Words): Words {
  return count === 1 ? one : many;
}

/**
 * Says at start which tasks in flight nothing can ask about, which fail as `timeout` at their
 * deadline: those of an account no longer configured (renamed or removed, a provider's own key
 * moved into `accounts` under another id), and those of a provider left without a key (which a
 * live start disables with an endpoint that is never called; `enabled: false` keeps the key and
 * follows them). A store that cannot say is passed over: the tracker logs each such task when it
 * comes to poll it anyway.
 */
export async function warnOfStrandedTasks(
  taskStore: TaskStore,
  runtimes: ReadonlyMap<string, ProviderRuntime>,
  endpoints: ReadonlyMap<string, ProviderEndpoint>,
  logger: Logger,
): Promise<void> {
  const stranded = (tasks: number) =>
    wording(
      tasks,
      { tasks: '1 task', them: 'it', fail: 'it fails', deadline: 'its deadline', have: 'it has' },
      { tasks: `${tasks} tasks`, them: 'them', fail: 'they fail', deadline: 'their deadline', have: 'they have' },
    );
  for (const runtime of runtimes.values()) {
    let counts: Map<string, number>;
    try {
      counts = await taskStore.countInFlightByAccount(runtime.id);
    } catch {
      continue;
    }
    const keyless = endpoints.get(runtime.id)?.disabledReason;
    if (keyless !== undefined) {
      const tasks = [...counts.values()].reduce((sum, count) => sum + Math.max(count, 0), 0);
      if (tasks === 0) continue;
      const words = stranded(tasks);
      logger.warn(
        { provider: runtime.id, tasks },
        `${words.tasks} in flight on ${runtime.id}, which has no key now (${keyless}): nothing can ask about ${words.them}, so ${words.fail} as timeout at ${words.deadline}; give the key back, and turn the provider off with enabled: false instead (its tasks in flight are still followed)`,
      );
      continue;
    }
    for (const [account, tasks] of counts) {
      if (tasks <= 0 || runtime.account(account || undefined)) continue;
      const name = account || 'default';
      const words = stranded(tasks);
      logger.warn(
        { provider: runtime.id, account: name, tasks },
        `${words.tasks} in flight on ${runtime.id} account ${name}, which the configuration no longer has: nothing can ask about ${words.them}, so ${words.fail} as timeout at ${words.deadline}; restore that account (a provider's own api_key is its account "default") until ${words.have} ended`,
      );
    }
  }
}

/**
 * Says at start how many queued tasks only providers switched off now could take (turned off,
 * left without a key, or gone): each fails with `no_provider_available` at the first dispatch
 * after the start, before anything is sent (so the advice is for the next such change). A store
 * that cannot say is passed over: each such task's error names its providers and why. With
 * `replicas` (a store other replicas may share) they wait instead for a replica that has one of
 * those providers on, and fail as timeout at their deadline if none does.
 */
export async function warnOfUnsendableQueuedTasks(
  taskStore: TaskStore,
  runtimes: ReadonlyMap<string, ProviderRuntime>,
  logger: Logger,
  replicas = false,
): Promise<void> {
  let counts: Map<string, number>;
  try {
    counts = await taskStore.countQueuedByCandidates();
  } catch {
    return;
  }
  for (const [candidates, tasks] of counts) {
    const providers = candidates.split(',').filter(Boolean);
    if (tasks <= 0 || providers.length === 0 || providers.some((id) => runtimes.get(id)?.enabled)) continue;
    const why = providers.map((id) => `${id}: ${runtimes.get(id)?.disabledReason ?? 'not configured'}`).join('; ');
    const words = wording(
      tasks,
      { queued: '1 queued task', they: 'it', fail: 'fails', wait: 'waits' },
      { queued: `${tasks} queued tasks`, they: 'they', fail: 'fail', wait: 'wait' },
    );
    const only = wording(providers.length, { one: providers[0]!, they: 'it' }, { one: 'one of them', they: 'they' });
    if (replicas) {
      logger.warn(
        { providers, tasks },
        `${words.queued} may go only to ${providers.join(', ')}, switched off on this replica (${why}): ${words.they} ${words.wait} for a replica that has ${only.one} on, ` +
          `and ${words.fail} as timeout at ${words.they === 'it' ? 'its' : 'their'} deadline if none does; to end such tasks at once, cancel them (GET /v1/providers shows each provider's queue)`,
      );
      continue;
    }
    // Said after the fact: the dispatch runs as the start ends, so the advice is for the next such change.
    logger.warn(
      { providers, tasks },
      `${words.queued} may go only to ${providers.join(', ')}, switched off now (${why}): ${words.they} ${words.fail} with no_provider_available at the first dispatch after this start, before anything is sent; ` +
        `to keep such tasks when switching a provider off, leave ${only.one} on until the queue holds none that only ${only.they} can take (GET /v1/providers shows each one's queue)`,
    );
  }
}

/**
 * Says at start how many webhook events wait for a tenant that has no webhook secret now (its
 * secret, or the tenant itself, removed from the configuration): an event is never sent unsigned,
 * so each is tried again on the usual back-off and fails unsent after its last try, unless the
 * secret is given back (and the gateway restarted) before then. A store that cannot say is passed
 * over: each such delivery records why it failed.
 */
export async function warnOfUnsignableDeliveries(taskStore: TaskStore, config: GatewayConfig, logger: Logger): Promise<void> {
  let counts: Map<string, number>;
  try {
    counts = await taskStore.countPendingDeliveriesByTenant();
  } catch {
    return;
  }
  for (const [tenant, deliveries] of counts) {
    if (deliveries <= 0 || (config.tenants[tenant]?.webhook_secret ?? []).length > 0) continue;
    const words = wording(
      deliveries,
      { events: '1 webhook event', they: 'it', it: 'it', is: 'is', fails: 'fails', its: 'its' },
      { events: `${deliveries} webhook events`, they: 'they', it: 'them', is: 'are', fails: 'fail', its: 'their' },
    );
    const fail =
      `${words.they} ${words.is} tried again on the usual back-off and ${words.fails} unsent (never unsigned) ` +
      `after ${words.its} last try (webhooks.max_attempts ${config.webhooks.max_attempts})`;
    // A tenant no API key names cannot have settings of its own: the start refuses `tenants.<name>` then.
    const named = config.auth.api_keys.some((entry) => entry.tenant === tenant);
    logger.warn(
      { tenant, deliveries },
      named
        ? `${words.events} of tenant ${tenant} ${words.is} waiting to be sent, and the tenant has no webhook_secret now: ${fail}; ` +
            `to send ${words.it}, give tenants.${tenant}.webhook_secret (or GATEWAY_WEBHOOK_SECRETS) back and restart before then, and keep it until the tenant's events have gone out`
        : `${words.events} of tenant ${tenant} ${words.is} waiting to be sent, and no API key names the tenant now (so it has no webhook_secret): ${fail}; ` +
            `to send ${words.it}, give the tenant back (a key in GATEWAY_API_KEYS and its webhook_secret) and restart before then, and keep them until the tenant's events have gone out`,
    );
  }
}
