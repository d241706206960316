/**
 * What this replica can ask the providers about, where other replicas share the task store: the
 * `provider:account` keys of the accounts it holds keys for. During a rolling deploy another
 * replica may hold a key or an account this one lacks; a task only that one can ask about (a poll,
 * the lookup of a create in doubt) is left to it, and taken here only once it has waited
 * `strandedAfterMs` past when it was due (no replica could ask about it): looked at, and ended at
 * its deadline. Undefined on a store no other replica shares: there is nobody to leave a task to,
 * and the plain (index-friendly) claims are used.
 */
import type { TrackingScope } from './task-repository.js';
import type { Engine } from './engine.js';

/** Worked out once per engine: only the replica's configuration decides it. */
const scopes = new WeakMap<Engine, TrackingScope | undefined>();

export function askableScope(engine: Engine): TrackingScope | undefined {
  if (scopes.has(engine)) return scopes.get(engine);
  const scope = engine.replicas
    ? {
        askable: [...engine.runtimes.values()].flatMap((runtime) => (runtime.keyless ? [] : runtime.accounts.map((account) => `${runtime.id}:${account.id}`))),
        strandedAfterMs: engine.config.tracking.poll_max_interval_ms,
      }
    : undefined;
  scopes.set(engine, scope);
  return scope;
}
