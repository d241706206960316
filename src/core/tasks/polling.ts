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

/**
 * After the first poll of a job that has run `minimumRunTimeMs`, the next waits at least this
 * share of the time the job has run so far (which grows by the same share each poll). A job that
 * cannot finish in 30 s is not worth asking about every 2 s after that: polls come at 30, 37.5,
 * 47, 59, 73 s…, so a 60 s job costs at most five polls and is seen finished within a quarter of
 * its run time.
 */
export const RUN_TIME_SHARE = 0.25;

/**
 * Delay after the `pollCount`-th poll (1 = after the first): the back-off from the min interval,
 * or, when longer, `RUN_TIME_SHARE` of the time a job of at least `minimumRunTimeMs` has run by
 * then.
 */
export function nextPollDelay(
  pollCount: number,
  settings: PollingSettings,
  random: () => number,
  expectsWebhook: boolean,
  minimumRunTimeMs = 0,
): number {
  const exponent = Math.max(0, pollCount - 1);
  const backoff = settings.poll_min_interval_ms * settings.poll_backoff ** exponent;
  const shareOfRunTime = minimumRunTimeMs * RUN_TIME_SHARE * (1 + RUN_TIME_SHARE) ** exponent;
  let delay = Math.min(settings.poll_max_interval_ms, Math.max(backoff, shareOfRunTime));
  if (expectsWebhook) delay = Math.max(delay, settings.webhook_safety_poll_ms);
  const ceiling = Math.max(settings.poll_max_interval_ms, expectsWebhook ? settings.webhook_safety_poll_ms : 0);
  return Math.min(ceiling, Math.max(settings.poll_min_interval_ms, jittered(delay, settings.poll_jitter, random)));
}

/**
 * How long past its deadline a tracked task's last look may wait for its account to take a call
 * (cooling down after a 429, a full rate window, an open circuit): a job that finished in time is
 * still seen. The deadline pass leaves a task whose next poll is due within it to that poll.
 */
export const LAST_LOOK_GRACE_MS = 60_000;

/**
 * The latest a task's next poll may be: its deadline itself while that has not come, so a job
 * that finished in time is seen before the deadline pass ends the task (one last look); once it
 * has come (the last look waited for its account), the end of the grace, past which the deadline
 * pass ends the task instead.
 */
export function lastPollAt(deadlineAt: number, now: number): number {
  return now < deadlineAt ? deadlineAt : deadlineAt + LAST_LOOK_GRACE_MS + 1;
}
