/**
 * The order in which a dispatch pass offers queued tasks their providers' slots: fair between
 * tenants, by age within one tenant (SPEC §3: excess waits in `queued`, fair).
 *
 * The next task is always the oldest waiting task of some tenant: the tenant with the fewest
 * tasks in flight on the providers that task may take (its plan's candidates), counting the tasks
 * this order has already put ahead of it as in flight too; between tenants with as many, the one
 * whose task took a slot of one of those providers longest ago (never first), then the one whose
 * task is older. So one tenant's burst does not hold up another tenant's later task for the same
 * provider: slots go to whoever holds fewer of them, and tenants holding as many take turns.
 * The turns matter most with few slots: with a cap of one, every tenant holds none as the slot
 * frees, and by age alone the burst's next task (older) would take it every time. Every candidate
 * counts, not only the first: a tenant whose first choice is down or full runs at its later ones,
 * and is not to look idle there (it would take every slot freed at them). Tasks in flight on
 * providers the task cannot take do not count: a tenant busy elsewhere is not put behind
 * another's burst here.
 *
 * With one tenant waiting this is the queue's order (oldest first), unchanged.
 */

/** A task waiting in the queue, as far as its place in the order goes. */
export interface WaitingTask {
  id: string;
  tenant: string;
  createdAt: number;
  /** The providers of its plan, in its order (none for a task with no candidates). */
  providers: readonly string[];
}

/**
 * How many tasks of each tenant hold a slot of each provider, and when one of its tasks last took
 * one (`TaskRepository.fairShares`).
 */
export class FairShares {
  private readonly counts = new Map<string, number>();
  private readonly turns = new Map<string, number>();

  constructor(
    inFlight: Iterable<{ tenant: string; provider: string | null | undefined; count: number }> = [],
    turns: Iterable<{ tenant: string; provider: string; servedAt: number }> = [],
  ) {
    for (const entry of inFlight) this.add(entry.tenant, entry.provider ?? undefined, entry.count);
    for (const turn of turns) this.turns.set(key(turn.tenant, turn.provider), turn.servedAt);
  }

  /** Tasks of `tenant` holding a slot of `provider`. */
  of(tenant: string, provider: string | undefined): number {
    return this.counts.get(key(tenant, provider)) ?? 0;
  }

  add(tenant: string, provider: string | undefined, count = 1): void {
    this.counts.set(key(tenant, provider), this.of(tenant, provider) + count);
  }

  /** When a task of `tenant` last took a slot of `provider` (never: minus infinity). */
  servedAt(tenant: string, provider: string | undefined): number {
    return this.turns.get(key(tenant, provider)) ?? Number.NEGATIVE_INFINITY;
  }

  serve(tenant: string, provider: string | undefined, at: number): void {
    this.turns.set(key(tenant, provider), at);
  }
}

const key = (tenant: string, provider: string | undefined) => `${provider ?? ''}\n${tenant}`;

/** Later than any time a turn is stored at (milliseconds since 1970): where the turns this order gives count from. */
const AFTER_EVERY_TURN = 2 ** 52;

/** A task's providers, each once (a task with none: the one key `undefined`). */
function providersOf(task: WaitingTask): readonly (string | undefined)[] {
  return task.providers.length === 0 ? [undefined] : [...new Set(task.providers)];
}

/** Whether every task of `queue` is one tenant's (then its order is already fair). */
export function oneTenant(queue: readonly { tenant: string }[]): boolean {
  return queue.every((task) => task.tenant === queue[0]!.tenant);
}

/** One tenant's waiting tasks, oldest first, and the next of them to place. */
interface Line<T> {
  tasks: T[];
  next: number;
  /** In flight on the providers of `tasks[next]` (with those placed already). */
  share: number;
  /** When the tenant last took a slot of one of those providers (placed tasks count as later than any). */
  served: number;
}

/** Whether `a`'s next task goes before `b`'s. */
function before<T extends WaitingTask>(a: Line<T>, b: Line<T>): boolean {
  if (a.share !== b.share) return a.share < b.share;
  if (a.served !== b.served) return a.served < b.served;
  const x = a.tasks[a.next]!;
  const y = b.tasks[b.next]!;
  return x.createdAt !== y.createdAt ? x.createdAt < y.createdAt : x.id < y.id;
}

/**
 * `queue` (oldest first, as the store lists it) in fair order, given the tasks in flight now and
 * the tenants' last turns; `shares` is left as it was.
 */
export function fairOrder<T extends WaitingTask>(queue: readonly T[], shares: FairShares): T[] {
  if (oneTenant(queue)) return [...queue];
  const lines = new Map<string, Line<T>>();
  for (const task of queue) {
    const line = lines.get(task.tenant);
    if (line) line.tasks.push(task);
    else lines.set(task.tenant, { tasks: [task], next: 0, share: 0, served: 0 });
  }
  // Tasks placed by this order: counted as in flight, and as served after every turn stored.
  const placed = new FairShares();
  let turn = 0;
  const rank = (line: Line<T>) => {
    const task = line.tasks[line.next]!;
    // Each task in flight holds one provider's slot: their sum over the candidates. A placed task
    // may take any of its candidates: it counts once at each, and the most placed at one of them count.
    let inFlight = 0;
    let placedAhead = 0;
    let served = Number.NEGATIVE_INFINITY;
    for (const provider of providersOf(task)) {
      inFlight += shares.of(task.tenant, provider);
      placedAhead = Math.max(placedAhead, placed.of(task.tenant, provider));
      const placedAt = placed.servedAt(task.tenant, provider);
      served = Math.max(served, placedAt > Number.NEGATIVE_INFINITY ? placedAt : shares.servedAt(task.tenant, provider));
    }
    line.share = inFlight + placedAhead;
    line.served = served;
  };
  // A binary heap of the tenants' lines, the line whose next task goes first on top.
  const heap = [...lines.values()];
  for (const line of heap) rank(line);
  const swap = (i: number, j: number) => ([heap[i], heap[j]] = [heap[j]!, heap[i]!]);
  const down = (start: number) => {
    for (let i = start; ; ) {
      const left = 2 * i + 1;
      const right = left + 1;
      let top = i;
      if (left < heap.length && before(heap[left]!, heap[top]!)) top = left;
      if (right < heap.length && before(heap[right]!, heap[top]!)) top = right;
      if (top === i) return;
      swap(i, top);
      i = top;
    }
  };
  for (let i = Math.floor(heap.length / 2) - 1; i >= 0; i--) down(i);

  const order: T[] = [];
  while (heap.length > 0) {
    const line = heap[0]!;
    const task = line.tasks[line.next++]!;
    order.push(task);
    for (const provider of providersOf(task)) {
      placed.add(task.tenant, provider);
      placed.serve(task.tenant, provider, AFTER_EVERY_TURN + turn);
    }
    turn++;
    if (line.next < line.tasks.length) {
      // Only this tenant's rank changed: its line moves down from the top to its new place.
      rank(line);
    } else {
      heap[0] = heap[heap.length - 1]!;
      heap.pop();
    }
    if (heap.length > 0) down(0);
  }
  return order;
}
