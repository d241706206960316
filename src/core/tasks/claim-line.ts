/**
 * The order in which one dispatch pass's tasks claim provider slots: the pass's order, per provider.
 *
 * A pass dispatches several tasks at once (their upstream creates are the slow part and run side
 * by side), but a slot that frees must go to the first task of the pass's order waiting for its
 * provider (fair between tenants, oldest first within one: `fair-queue.ts`), not to whichever
 * claim's transaction happens to run first. So each task of the pass joins the line in the order
 * the pass lists them, and before it claims a slot of a provider it waits until every task ahead
 * of it in the pass (an "older" one, below) that may want that provider has claimed one or given
 * it up. A task gives a provider's turn on as soon as it is done with it (passed over, found full,
 * refused) and all its turns before its create leaves: its request is never waited for.
 *
 * Nothing can wait in a circle: a task only ever waits for older ones, and every dispatch gives
 * all its turns on when it ends, whatever way it ends (`ClaimTurn.releaseAll`, in a `finally`).
 */

/** One task's place in its pass's line. */
export interface ClaimTurn {
  /** Resolves once every older task of the pass that may want `provider` has claimed or given it up. */
  waitFor(provider: string): Promise<void>;
  /** This task is done with `provider`: younger tasks may claim it. */
  release(provider: string): void;
  /** This task is done claiming (its create leaves, or its dispatch ended): younger tasks may claim anything. */
  releaseAll(): void;
}

export class ClaimLine {
  /** For each provider, when the youngest task that joined wanting it gives it on. */
  private readonly last = new Map<string, Promise<void>>();

  /** The turn of the next task, younger than every task that joined before; `providers` are those its plan may try. */
  join(providers: readonly string[]): ClaimTurn {
    const ahead = new Map<string, Promise<void>>();
    const gives = new Map<string, () => void>();
    for (const provider of new Set(providers)) {
      const before = this.last.get(provider);
      if (before) ahead.set(provider, before);
      const mine = new Promise<void>((resolve) => gives.set(provider, resolve));
      // The next task waits for this one and, through it, for every older one: a task done
      // early (passed the provider over) does not let a younger one past an older one still claiming.
      this.last.set(provider, before ? Promise.all([before, mine]).then(() => undefined) : mine);
    }
    const release = (provider: string) => {
      gives.get(provider)?.();
      gives.delete(provider);
    };
    return {
      waitFor: (provider) => ahead.get(provider) ?? Promise.resolve(),
      release,
      releaseAll: () => {
        for (const provider of [...gives.keys()]) release(provider);
      },
    };
  }
}
