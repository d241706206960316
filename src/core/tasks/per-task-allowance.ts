/**
 * How often something may be done per task, in this process: `burst` times at once, then one more
 * per `intervalMs` (a token bucket per task id). What unsigned callbacks may make the provider be
 * asked: whoever holds a task's callback URL may post to it as often as they like, and each ask
 * costs a status call on the account, whose rate windows every tenant's creates and polls share.
 * At most `maxTasks` tasks are remembered; when a new one would pass that, those whose allowance
 * is whole again are forgotten (as good as never seen), and if none is, all are.
 */
export class PerTaskAllowance {
  private readonly taken = new Map<string, { left: number; at: number }>();

  constructor(
    private readonly burst: number,
    private readonly maxTasks: number,
  ) {}

  /** Takes one for `taskId` at `now`: `true`, or (none left) when the next one comes. */
  take(taskId: string, now: number, intervalMs: number): true | number {
    const last = this.taken.get(taskId);
    const left = last ? this.leftOf(last, now, intervalMs) : this.burst;
    if (left < 1) return last!.at + (1 - last!.left) * intervalMs;
    if (!last && this.taken.size >= this.maxTasks) {
      for (const [id, taken] of this.taken) if (this.leftOf(taken, now, intervalMs) >= this.burst) this.taken.delete(id);
      if (this.taken.size >= this.maxTasks) this.taken.clear();
    }
    this.taken.set(taskId, { left: left - 1, at: now });
    return true;
  }

  private leftOf(taken: { left: number; at: number }, now: number, intervalMs: number): number {
    return Math.min(this.burst, taken.left + (now - taken.at) / intervalMs);
  }
}
