/**
 * Settles what a replica that stopped mid-create left behind (SPEC §5). A submission holds its
 * task under a lease; when the lease runs out with the task still in `submitting`, its attempts
 * tell what the upstream may hold:
 * - the provider accepted (its task id is on the attempt): tracking resumes from it;
 * - a request was in flight with no answer recorded: the upstream may hold the task, so the
 *   task fails with a clear error rather than being sent again (paying twice);
 * - nothing was in flight: the task goes back to the queue.
 */
import type { Engine } from './engine.js';
import type { TaskLifecycle } from './task-lifecycle.js';
import type { AttemptRecord, TaskRecord } from './task-records.js';

/** Abandoned submissions settled per call. */
const RECOVERY_BATCH = 100;

export class Recovery {
  constructor(
    private readonly engine: Engine,
    private readonly lifecycle: TaskLifecycle,
    /** Whether this process is still running the task's dispatch (then it is not abandoned). */
    private readonly dispatchingHere: (taskId: string) => boolean,
  ) {}

  /**
   * After a restart. With a database no other replica shares, this is the only process, so every
   * lease left in it belongs to the previous run and ends now (tracking resumes at once). With
   * shared PostgreSQL other replicas may be alive: their leases are left to run out.
   */
  async atStart(): Promise<void> {
    const { tasks, clock } = this.engine;
    if (!tasks.sharedByReplicas) await tasks.expireLeftoverLeases();
    await this.recoverAbandoned(clock.now());
  }

  /** Settles submissions whose lease ran out, except those this process is still running. */
  async recoverAbandoned(now = this.engine.clock.now()): Promise<number> {
    const { tasks } = this.engine;
    const abandoned = (await tasks.listAbandonedSubmissions(now, RECOVERY_BATCH)).filter((task) => !this.dispatchingHere(task.id));
    for (const task of abandoned) {
      const attempts = await tasks.attempts(task.id);
      const accepted = attempts.find((attempt) => attempt.outcome === 'accepted' && attempt.providerTaskId);
      const inFlight = attempts.find((attempt) => attempt.outcome === 'sending');
      if (accepted) await this.resumeAccepted(task, accepted, now);
      else if (inFlight) await this.reportInterrupted(task, inFlight);
      else await this.lifecycle.requeue(task, now, task.leaseOwner);
    }
    return abandoned.length;
  }

  /** Tracks an upstream task whose acceptance was recorded on the attempt but not yet on the task. */
  private async resumeAccepted(task: TaskRecord, attempt: AttemptRecord, now: number): Promise<void> {
    await this.lifecycle.resumeTracking(task, attempt, now);
    this.engine.logger.warn(
      { task_id: task.id, provider: attempt.provider, provider_task_id: attempt.providerTaskId },
      'resumed tracking of a task accepted upstream before the gateway stopped',
    );
  }

  /** A create was on its way with no answer recorded: the upstream may hold the task, so it is not sent again. */
  private async reportInterrupted(task: TaskRecord, attempt: AttemptRecord): Promise<void> {
    await this.engine.tasks.updateAttempt(task.id, attempt.seq, {
      outcome: 'interrupted',
      message: 'the gateway stopped while this request was in flight',
    });
    await this.lifecycle.fail(
      task,
      {
        code: 'provider_error',
        message:
          `the gateway stopped while submitting to ${attempt.provider}; the provider may have accepted ` +
          'the task, so it was not sent again (to avoid paying twice)',
        provider_code: null,
      },
      { phases: ['submitting'], leaseOwner: task.leaseOwner },
    );
  }
}
