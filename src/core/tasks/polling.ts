/**
 * When to ask an upstream about a task next (SPEC §4): not before a job of that length could
 * possibly finish, then backing off exponentially with jitter so many tasks started together do
 * not poll in lockstep. While an upstream webhook is expected, polling is only a safety net.
 */

export interface PollingSettings {
  poll_min_interval_ms: number;
  poll_max_interval_ms: number;
  poll_backoff: number;
  poll_jitter: number;
  webhook_safety_poll_ms: number;
}

function jittered(delay: number, jitter: number, random: () => number): number {
  return Math.round(delay * (1 + jitter * (2 * random() - 1)));
}

/**
 * Delay from acceptance to the first poll. While a webhook is expected the poll is only a
 * safety net, so it waits at least the safety interval.
 */
export function firstPollDelay(
  minimumRunTimeMs: number,
  settings: PollingSettings,
  random: () => number,
  expectsWebhook = false,
): number {
  const base = Math.max(minimumRunTimeMs, settings.poll_min_interval_ms, expectsWebhook ? settings.webhook_safety_poll_ms : 0);
  // Jitter only upwards here: never earlier than the job could finish.
  return base + Math.round(base * settings.poll_jitter * random());
}

/** Delay after the `pollCount`-th poll (1 = after the first). */
export function nextPollDelay(
  pollCount: number,
  settings: PollingSettings,
  random: () => number,
  expectsWebhook: boolean,
): number {
  const exponent = Math.max(0, pollCount - 1);
  let delay = Math.min(settings.poll_max_interval_ms, settings.poll_min_interval_ms * settings.poll_backoff ** exponent);
  if (expectsWebhook) delay = Math.max(delay, settings.webhook_safety_poll_ms);
  const ceiling = Math.max(settings.poll_max_interval_ms, expectsWebhook ? settings.webhook_safety_poll_ms : 0);
  return Math.min(ceiling, Math.max(settings.poll_min_interval_ms, jittered(delay, settings.poll_jitter, random)));
}
