/**
 * Result custody (SPEC §7): keeps what was paid for. A task the upstream finished waits in
 * `storing` (still `processing` to callers) while this worker copies each output into the
 * gateway's storage; then it reports `succeeded`. Like tracking, each task is leased to one
 * replica at a time and every step is written to the store, so a crash or a restart resumes
 * the copy instead of losing it. A copy that fails is retried with back-off; one that keeps
 * failing never fails the generation: the task succeeds with that output marked `not_stored`
 * and pointing at the upstream's URL. When the gateway's own storage was what failed (a full
 * disk, S3 down), the output is copied again later, after the task succeeded, with a long
 * back-off until the provider's URL dies (`recopyOutput`). A second pass deletes copies past the
 * tenant's retention.
 */
import type { TimerHandle } from '../clock.js';
import type { ObjectStorage } from '../../storage/object-storage.js';
import { CoalescingRunner } from './coalescing-runner.js';
import type { Engine } from './engine.js';
import { deliveryBackoffMs } from './outbound-webhooks.js';
import { copyToStorage, CopyAbortedError, extensionOf, mediaTypeOf, STORAGE_WRITE_FAILED, type CopyOutcome, type CopyPolicy } from './output-copy.js';
import { randomToken } from './random-token.js';
import { TaskLifecycle } from './task-lifecycle.js';
import { storageExpiresAt, type OutputRecord, type TaskPhase, type TaskRecord } from './task-records.js';

/** Tasks leased per claim at most (a claim takes no more than there are free copy slots). */
const STORAGE_BATCH = 20;
/** Tasks looked at per retention page. */
const RETENTION_BATCH = 100;
const DAY_MS = 24 * 3600_000;
/** The first later copy of an output given up on for the gateway's storage is due this long after the give-up. */
const RECOPY_FIRST_MS = 60_000;
/** Later copies wait twice as long each time, up to this. */
const RECOPY_LONGEST_MS = 3600_000;
/** How long later copies go on when the provider documents no lifetime of its results. */
const RECOPY_WITHOUT_LIFETIME_MS = DAY_MS;

/**
 * `storage_error` of an output the gateway's storage could not take, while later copies go on
 * (`until`: the last one), or once they ended (`until` null).
 */
function storageFailedWording(reason: string, tries: number, later: number, until: number | null): string {
  const laterTries = later === 0 ? '' : ` and ${later} later ${later === 1 ? 'try' : 'tries'}`;
  if (until !== null) return `${reason} (gave up after ${tries} tries${laterTries}; copied again later, until ${new Date(until).toISOString()})`;
  return `${reason} (gave up after ${tries} tries${laterTries})`;
}

/** `output` as stored under `key` at `storedAt` by the copy that came back `outcome`, kept until `expiresAt` (null: for good). */
function storedOutput(output: OutputRecord, key: string, outcome: Extract<CopyOutcome, { ok: true }>, storedAt: number, expiresAt: number | null): OutputRecord {
  return { ...output, storage: 'stored', storageError: null, key, sha256: outcome.sha256, bytes: outcome.bytes, contentType: outcome.contentType, storedAt, expiresAt };
}

/** What a failed copy's log line says of why: the reason, the address refused, the storage's own error (never in the task). */
function failureFields(outcome: Extract<CopyOutcome, { ok: false }>, storage: ObjectStorage): Record<string, unknown> {
  return {
    reason: outcome.reason,
    ...(outcome.address ? { address: outcome.address } : {}),
    ...(outcome.storageError !== undefined ? { err: outcome.storageError, storage: storage.description } : {}),
  };
}

/** A later copy is due for `output` at `now`. */
function recopyDue(output: OutputRecord, now: number): boolean {
  return output.storage === 'not_stored' && typeof output.recopyAt === 'number' && output.recopyAt <= now;
}

/**
 * The storage key of output `index`: `<tenant>/<UTC day the task was created>/<task>-<index>.<ext>`.
 * One folder per tenant and day, not per task: on the filesystem backend a new folder for every
 * task cost more CPU than the rest of the file's write (about 0.6–0.9 ms of kernel time per
 * folder on the benchmark's ext4), and a day's folder is what an operator looks through or
 * archives. Each output keeps the key it was stored under, so outputs stored under the older
 * `<tenant>/<task>/<index>.<ext>` keys are read and deleted as before.
 */
export function outputKey(task: Pick<TaskRecord, 'tenant' | 'id' | 'createdAt'>, index: number, contentType: string, suffix?: string): string {
  // A part of dots only (a tenant named `.` or `..`) would name the folder itself or its parent: dots become `_`.
  const safe = (text: string) => (/^\.+$/.test(text) ? '_'.repeat(text.length) : text.replace(/[^A-Za-z0-9._-]/g, '_'));
  const day = new Date(task.createdAt).toISOString().slice(0, 10);
  // A later copy (`suffix`: drawn for it) has a key of its own, so that deleting what a copy given
  // up on may have left (by a replica that stalled past its lease included) never reaches a file
  // another copy stored.
  return `${safe(task.tenant)}/${day}/${safe(task.id)}-${index}${suffix === undefined ? '' : `-${safe(suffix)}`}.${extensionOf(contentType)}`;
}

/**
 * `storage_error` of an output whose upstream URL is gone: answered 404/410 past the lifetime the
 * provider documents (`expiredAt`), or to every try.
 */
function goneWording(reason: string, tries: number, expiredAt: number | null): string {
  if (expiredAt !== null) {
    return `${reason} after ${new Date(expiredAt).toISOString()}, when the provider's documented lifetime of results ended: its copy is gone`;
  }
  return `${reason} ${tries === 1 ? 'on the only try' : `on all ${tries} tries`}: its copy is gone`;
}

export class ResultCustody {
  readonly lifecycle: TaskLifecycle;
  private readonly runner = new CoalescingRunner(() => this.copyDue());
  private readonly retention = new CoalescingRunner(async () => {
    // Retention is counted on this clock: one off the other replicas' could delete copies early.
    if (this.engine.clockWatch.holdReason) return;
    await this.expireRetained();
    await this.sweepAbandonedWrites();
  });
  /** Aborted when the gateway stops: copies in flight end without counting as failures. */
  private readonly stopping = new AbortController();
  /**
   * Copies on their way, by task id, each settling once its outcome is written
   * (`storage.copy_concurrency` at most). A claim may take one of those tasks again: its lease ran
   * out while the store refused the renewals (the claim takes any task whose lease ended, this
   * replica's too). Its copy goes on; a second one would fetch it twice and could leave a file no
   * task points to.
   */
  private readonly copies = new Map<string, Promise<void>>();
  /** The last pass left due tasks behind for want of a free slot: one settling starts another pass. */
  private more = false;

  constructor(private readonly engine: Engine) {
    this.lifecycle = new TaskLifecycle(engine);
  }

  /**
   * The worker loop's pass (and a task's outputs coming due): claims as many due tasks as there are
   * free copy slots and starts their copies, and settles once they are on their way, not once they
   * are copied. Each copy frees its slot the moment it ends and a new pass fills it, so a slow or
   * silent file host holds only its own slot, never the copies of every other task.
   */
  start(): Promise<void> {
    return this.runner.run();
  }

  /** Copies the outputs of every task whose copy is due, and waits for every copy on its way. */
  async tick(): Promise<void> {
    await this.runner.run();
    await this.copiesSettled();
  }

  /** Deletes stored copies past their retention. */
  purge(): Promise<void> {
    return this.retention.run();
  }

  /** Stops copies in flight (their tasks are picked up again after a restart or by another replica). */
  stop(): void {
    this.stopping.abort();
  }

  /** Settles once no pass is running and no copy is on its way (after `stop`, copies end at once). */
  async idle(): Promise<void> {
    await Promise.all([this.copiesSettled(), this.retention.idle()]);
  }

  /** Settles once no storing pass runs and no copy is on its way (one settling may start a pass). */
  private async copiesSettled(): Promise<void> {
    for (;;) {
      await this.runner.idle();
      if (this.copies.size === 0) return;
      await Promise.allSettled([...this.copies.values()]);
    }
  }

  private copyPolicy: CopyPolicy | undefined;

  /** Built once: its connection agents (address guard) are kept with it. */
  private get policy(): CopyPolicy {
    const { config, trustedResultOrigins } = this.engine;
    return (this.copyPolicy ??= {
      allowPrivate: config.storage.allow_private_sources,
      trustedOrigins: trustedResultOrigins,
      timeoutMs: config.storage.copy_timeout_ms,
      idleTimeoutMs: config.storage.idle_timeout_ms,
      maxBytes: config.storage.max_bytes,
    });
  }

  /**
   * How long a copying replica owns a task before it renews its lease (every third of it, while
   * the copies run; `keepLease`). A replica that dies mid-copy holds the task for one lease
   * (`tracking.lease_ms`), not for the whole copy time limit (`storage.copy_timeout_ms`, minutes).
   */
  private get leaseMs(): number {
    return this.engine.config.tracking.lease_ms;
  }

  /**
   * Renews this replica's lease on `task` until `stop` (its copies are done). `lost` is aborted
   * when the lease turns out to be another replica's: the task's copies stop then, since that
   * replica copies it now and decides what its keys hold (it may give an output up and delete
   * its key, which a copy still running here would then fill with a file no task points to).
   */
  private keepLease(task: TaskRecord, phase: TaskPhase, lost: AbortController): { stop(): void } {
    const { clock, logger } = this.engine;
    let timer: TimerHandle | undefined;
    let stopped = false;
    const schedule = () => {
      timer = clock.setTimeout(() => {
        this.lifecycle
          .extendLease(task, phase, clock.now() + this.leaseMs)
          .then((held) => {
            // Stopped meanwhile: the copy is done and the lease given back with it.
            if (stopped) return;
            if (!held) {
              logger.warn({ task_id: task.id }, 'the lease of a task being copied was lost; its copy is finished elsewhere');
              lost.abort();
            } else schedule();
          })
          .catch((error) => {
            logger.warn({ task_id: task.id, err: error }, 'could not renew the lease of a task being copied; trying again');
            if (!stopped) schedule();
          });
      }, this.leaseMs / 3);
    };
    schedule();
    return {
      stop() {
        stopped = true;
        timer?.cancel();
      },
    };
  }

  private async copyDue(): Promise<void> {
    const { tasks, clock, owner, storage, config } = this.engine;
    // Stopping; or this clock is off the other replicas', so its leases would be misjudged (`ClockWatch`).
    if (this.stopping.signal.aborted || this.engine.clockWatch.holdReason) return;
    if (!storage || config.storage.mode !== 'copy') {
      await this.finishWithoutStorage();
      return;
    }
    this.more = false;
    // Tasks waiting to succeed first; then later copies of succeeded tasks, in the slots left.
    let storing = true;
    for (;;) {
      const room = Math.min(config.storage.copy_concurrency - this.copies.size, STORAGE_BATCH);
      if (room <= 0) {
        this.more = true;
        return;
      }
      const due = storing
        ? await tasks.claimDueForStorage(clock.now(), owner, this.leaseMs, room)
        : await tasks.claimDueForRecopy(clock.now(), owner, this.leaseMs, room);
      for (const task of due) if (!this.copies.has(task.id)) this.startCopy(task, storing ? 'storing' : 'done');
      if (this.stopping.signal.aborted) return;
      if (due.length < room) {
        if (!storing) return;
        storing = false;
      }
    }
  }

  /**
   * Copies a claimed task's outputs on its own: its lease is kept while they run, they stop when
   * the gateway stops or the lease is lost, and its slot is given back (with a new pass when more
   * tasks were due) the moment it ends.
   */
  private startCopy(task: TaskRecord, phase: 'storing' | 'done'): void {
    const { logger } = this.engine;
    const stop = new AbortController();
    const lease = this.keepLease(task, phase, stop);
    const stopping = () => stop.abort();
    this.stopping.signal.addEventListener('abort', stopping, { once: true });
    if (this.stopping.signal.aborted) stop.abort();
    const run: Promise<void> = (phase === 'storing' ? this.storeLeased(task, stop.signal) : this.recopyLeased(task, stop.signal))
      .catch((error) => logger.error({ task_id: task.id, err: error }, 'storing outputs failed; will retry'))
      .finally(() => {
        lease.stop();
        this.stopping.signal.removeEventListener('abort', stopping);
        this.copies.delete(task.id);
        if (this.more && !this.stopping.signal.aborted) this.runner.run().catch((error) => logger.error({ err: error }, 'storing pass failed'));
      });
    this.copies.set(task.id, run);
  }

  /**
   * Storage is off (`storage.mode: passthrough`) while tasks still wait in `storing`, left there
   * by a process that copied before the operator turned copies off: nothing would ever copy them,
   * and they would stay `processing` for good. They succeed now, their uncopied outputs passed
   * through as the upstream's URLs, as if storage had been off when they finished. Only tasks
   * nobody has taken for a whole lease past their due time: while replicas disagree on the mode
   * (a rolling restart that turns copies on), the replicas that copy take theirs first.
   */
  private async finishWithoutStorage(): Promise<void> {
    const { tasks, clock, owner, logger } = this.engine;
    for (;;) {
      // Due a lease ago and unleased since then; leased from now for one lease, as any claim.
      const due = await tasks.claimDueForStorage(clock.now() - this.leaseMs, owner, 2 * this.leaseMs, STORAGE_BATCH);
      for (const task of due) {
        const outputs = task.outputs.map((output): OutputRecord => (output.storage === 'pending' ? { ...output, storage: 'passthrough' } : output));
        logger.warn({ task_id: task.id }, 'storage is off: a task waiting for its copies succeeds with the upstream URLs');
        await this.lifecycle.finishStoring(task, outputs);
      }
      if (due.length < STORAGE_BATCH || this.stopping.signal.aborted) return;
    }
  }

  /** Copies the pending outputs of a task this replica leased, then finishes it or schedules the next try. */
  private async storeLeased(task: TaskRecord, signal: AbortSignal): Promise<void> {
    const { clock, config } = this.engine;
    const outputs = await Promise.all(task.outputs.map((output, index) => this.copyOutput(task, output, index, signal)));
    if (outputs.some((output) => output === undefined)) {
      // Stopped mid-copy: give the task back as it was, to be copied again at once elsewhere or after a
      // restart (a lease lost meanwhile writes nothing: the task is another replica's).
      await this.lifecycle.retryStoringAt(task, task.outputs, clock.now());
      return;
    }
    const settled = outputs as OutputRecord[];
    const givenUp = settled.flatMap((output, index) => (task.outputs[index]!.storage === 'pending' && output.storage === 'not_stored' ? [index] : []));
    const waiting = settled.filter((output) => output.storage === 'pending');
    let written;
    if (waiting.length === 0) {
      written = await this.lifecycle.finishStoring(task, settled);
    } else {
      const attempts = Math.max(...waiting.map((output) => output.copyAttempts));
      const retryAt = clock.now() + Math.min(deliveryBackoffMs(attempts), config.storage.copy_timeout_ms * 4);
      written = await this.lifecycle.retryStoringAt(task, settled, retryAt);
    }
    // Only once the give-up is written under this replica's lease: a replica whose lease ran out
    // meanwhile may be looking at a copy another one has stored and recorded since.
    if (written) await this.deleteLeftovers(task, givenUp);
  }

  /**
   * Deletes whatever sits at the keys of outputs given up on: a write the store took but whose
   * answer was lost, or one made just before a crash, leaves an object no task points to, which
   * retention would never delete. Deleting a key that holds nothing does nothing.
   */
  private async deleteLeftovers(task: TaskRecord, indexes: readonly number[]): Promise<void> {
    if (!this.engine.storage) return;
    for (const index of indexes) {
      const output = task.outputs[index]!;
      await this.deleteKey(task, index, outputKey(task, index, mediaTypeOf(undefined, output.upstreamUrl, output.type)));
    }
  }

  /**
   * One copy of `output` under `key`: its outcome, or undefined when it was stopped (the gateway
   * stopping, the lease lost). A copy that throws is a failure to retry.
   */
  private async tryCopy(output: OutputRecord, key: string, storage: ObjectStorage, signal: AbortSignal): Promise<CopyOutcome | undefined> {
    try {
      return await copyToStorage({ url: output.upstreamUrl, key, kind: output.type, storage, policy: this.policy, signal });
    } catch (error) {
      if (error instanceof CopyAbortedError) return undefined;
      return { ok: false, retryable: true, gone: false, reason: `the copy failed: ${(error as Error).message}` };
    }
  }

  /** One output after one copy try: stored, still pending (to retry), or given up on. Undefined when stopped. */
  private async copyOutput(task: TaskRecord, output: OutputRecord, index: number, signal: AbortSignal): Promise<OutputRecord | undefined> {
    const { storage, clock, config, metrics, logger } = this.engine;
    if (output.storage !== 'pending' || !storage || config.storage.mode !== 'copy') return output;
    const started = clock.now();
    // The key's extension follows the URL; the media type recorded is what the provider sends.
    const key = outputKey(task, index, mediaTypeOf(undefined, output.upstreamUrl, output.type));
    const outcome = await this.tryCopy(output, key, storage, signal);
    if (!outcome) return undefined;
    if (outcome.ok) {
      const now = clock.now();
      const days = this.retentionDays(task.tenant);
      metrics.outputCopies.inc({ outcome: 'stored' });
      metrics.outputBytesStored.inc(outcome.bytes);
      logger.info({ task_id: task.id, output: index, bytes: outcome.bytes, duration_ms: now - started, storage: storage.kind }, 'output stored');
      return { ...storedOutput(output, key, outcome, now, days !== undefined ? now + days * DAY_MS : null), copyAttempts: output.copyAttempts + 1 };
    }
    const copyAttempts = output.copyAttempts + 1;
    const goneAnswers = output.goneAnswers + (outcome.gone ? 1 : 0);
    // Past the lifetime the provider documents, a 404/410 is what it said would happen: final at once.
    const pastLifetime = outcome.gone && output.upstreamExpiresAt !== null && clock.now() >= output.upstreamExpiresAt;
    const giveUp = !outcome.retryable || pastLifetime || copyAttempts >= config.storage.max_attempts;
    // Gone only when nothing but 404/410 was ever answered: a CDN not ready yet answers 404 for a while, then the file.
    const gone = giveUp && outcome.gone && (pastLifetime || goneAnswers === copyAttempts);
    // The gateway's own storage failed (not the source): the output is copied again later, after
    // the task succeeded, for as long as the provider keeps the file.
    const recopyUntil = giveUp && !gone && outcome.storageError !== undefined ? this.recopyUntil(output) : null;
    metrics.outputCopies.inc({ outcome: giveUp ? 'not_stored' : 'retrying' });
    logger.warn(
      {
        task_id: task.id,
        output: index,
        attempt: copyAttempts,
        ...failureFields(outcome, storage),
      },
      giveUp
        ? recopyUntil !== null
          ? 'output not stored; the task reports the upstream URL, and the output is copied again later'
          : 'output not stored; the task reports the upstream URL'
        : 'output copy failed; will retry',
    );
    return {
      ...output,
      storage: giveUp ? 'not_stored' : 'pending',
      storageError: gone
        ? goneWording(outcome.reason, copyAttempts, pastLifetime ? output.upstreamExpiresAt : null)
        : giveUp && outcome.retryable
          ? storageFailedWording(outcome.reason, copyAttempts, 0, recopyUntil)
          : outcome.reason,
      upstreamGone: output.upstreamGone || gone,
      copyAttempts,
      goneAnswers,
      ...(recopyUntil !== null ? { recopyAt: clock.now() + RECOPY_FIRST_MS, recopyUntil, recopies: 0 } : {}),
    };
  }

  /**
   * Until when an output the gateway's storage could not take is copied again: the provider's
   * documented lifetime of its results, else a day. Null when that leaves no time for one.
   */
  private recopyUntil(output: OutputRecord): number | null {
    const now = this.engine.clock.now();
    const until = output.upstreamExpiresAt ?? now + RECOPY_WITHOUT_LIFETIME_MS;
    return until >= now + RECOPY_FIRST_MS ? until : null;
  }

  /**
   * Later copies of a succeeded task this replica leased: each output whose later copy is due is
   * copied again (as the first copy was: written then renamed into place, under its own key). The
   * outcome is written over the task as it is by then; a copy stopped (the gateway stopping, the
   * lease lost) leaves its output as it was, due again.
   */
  private async recopyLeased(task: TaskRecord, signal: AbortSignal): Promise<void> {
    const now = this.engine.clock.now();
    const results = await Promise.all(task.outputs.map((output, index) => (recopyDue(output, now) ? this.recopyOutput(task, output, index, signal) : undefined)));
    const changed = new Map<number, OutputRecord>();
    results.forEach((result, index) => {
      if (result) changed.set(index, result);
    });
    if (changed.size === 0) {
      // Nothing done (stopped): given back to be taken again at once (a lease lost is not written over).
      await this.lifecycle.releaseRecopy(task);
      return;
    }
    await this.writeRecopies(task, changed);
  }

  /**
   * Writes the outcomes of later copies over the task as it reads now (retention may have expired
   * another of its copies since the claim), only while this replica holds its lease. Once written,
   * an output stored is counted and logged as recovered. A copy stored under a key no output then
   * points to (the task deleted, taken over by another replica after this one stalled past its
   * lease, or the outcome never written) is deleted: each later copy has a key of its own.
   */
  private async writeRecopies(task: TaskRecord, changed: Map<number, OutputRecord>): Promise<void> {
    const { tasks, owner, logger, metrics, storage } = this.engine;
    const applied = new Set<number>();
    let written = false;
    for (let round = 0; round < 3 && !written; round++) {
      const fresh = await tasks.get(task.id);
      // Deleted, or another replica holds it now: that one decides what its outputs hold.
      if (!fresh || fresh.leaseOwner !== owner) break;
      const outputs = fresh.outputs.map((output, index) => {
        const result = changed.get(index);
        return result && output.storage === 'not_stored' && typeof output.recopyAt === 'number' ? result : output;
      });
      written = (await this.lifecycle.recopied(fresh, outputs)) !== undefined;
      if (!written) {
        if (round === 2) logger.warn({ task_id: task.id }, 'could not write the outcome of later copies (the task kept changing); they are tried again');
        continue;
      }
      for (const [index, output] of changed) {
        if (outputs[index] !== output) continue;
        applied.add(index);
        if (output.storage !== 'stored') continue;
        metrics.outputCopies.inc({ outcome: 'recovered' });
        metrics.outputBytesStored.inc(output.bytes ?? 0);
        logger.info(
          { task_id: task.id, output: index, bytes: output.bytes, later_tries: output.recopies, storage: storage?.kind },
          "output recovered: stored by a later copy after the gateway's storage had failed",
        );
      }
    }
    for (const [index, output] of changed) {
      if (output.storage === 'stored' && output.key && !applied.has(index)) await this.deleteKey(task, index, output.key);
    }
  }

  /** Deletes what a copy may have left at `key`, which no output points to (nothing there: nothing done). */
  private async deleteKey(task: TaskRecord, index: number, key: string): Promise<void> {
    const { storage, logger } = this.engine;
    try {
      await storage?.delete(key);
    } catch (error) {
      logger.warn({ task_id: task.id, output: index, err: error, storage: storage?.description }, 'could not delete what a copy given up on may have left');
    }
  }

  /**
   * One later copy of an output the gateway's storage could not take: stored, due again (doubling
   * from a minute up to an hour), or given up on for good (past `recopyUntil`, the source refused
   * for good, or the tenant's retention of the task's copies ended first). Undefined when stopped.
   */
  private async recopyOutput(task: TaskRecord, output: OutputRecord, index: number, signal: AbortSignal): Promise<OutputRecord | undefined> {
    const { storage, clock, metrics, logger } = this.engine;
    if (!storage) return undefined;
    const now = clock.now();
    const later = (output.recopies ?? 0) + 1;
    const days = this.retentionDays(task.tenant);
    // Retention is counted from the task's end, as for the task's other copies: one that would
    // already be deleted is not made.
    const keepUntil = days !== undefined ? (task.completedAt ?? now) + days * DAY_MS : null;
    if (keepUntil !== null && keepUntil <= now) {
      metrics.outputCopies.inc({ outcome: 'not_recovered' });
      const kept = Number(days!.toFixed(4));
      return {
        ...output,
        recopyAt: null,
        storageError: `${storageFailedWording(STORAGE_WRITE_FAILED, output.copyAttempts, later - 1, null)}; not copied again: the ${kept}-day retention of the task's copies ended first`,
      };
    }
    const key = outputKey(task, index, mediaTypeOf(undefined, output.upstreamUrl, output.type), `later-${randomToken(6)}`);
    const outcome = await this.tryCopy(output, key, storage, signal);
    if (!outcome) return undefined;
    if (outcome.ok) return { ...storedOutput(output, key, outcome, clock.now(), keepUntil), recopyAt: null, recopies: later };
    // Its key is its own: whatever a write whose answer was lost left there, no output points to.
    await this.deleteKey(task, index, key);
    const until = output.recopyUntil ?? now;
    const next = now + Math.min(RECOPY_FIRST_MS * 2 ** later, RECOPY_LONGEST_MS);
    const pastLifetime = outcome.gone && output.upstreamExpiresAt !== null && now >= output.upstreamExpiresAt;
    const final = !outcome.retryable || pastLifetime || next > until;
    metrics.outputCopies.inc({ outcome: final ? 'not_recovered' : 'recopy_failed' });
    logger.warn(
      {
        task_id: task.id,
        output: index,
        later_try: later,
        ...failureFields(outcome, storage),
      },
      final ? 'later copy of an output failed; it stays not stored' : 'later copy of an output failed; will retry',
    );
    return {
      ...output,
      storageError: pastLifetime
        ? goneWording(outcome.reason, later, output.upstreamExpiresAt)
        : storageFailedWording(outcome.reason, output.copyAttempts, later, final ? null : until),
      upstreamGone: output.upstreamGone || pastLifetime,
      recopyAt: final ? null : next,
      recopies: later,
    };
  }

  /**
   * Deletes temporary files of copies whose process died mid-write (kill -9): nothing else ever
   * would. Untouched for twice the copy time limit: no live copy runs that long.
   */
  async sweepAbandonedWrites(): Promise<number> {
    const { storage, config, logger } = this.engine;
    if (!storage?.sweepAbandoned) return 0;
    try {
      const deleted = await storage.sweepAbandoned(2 * config.storage.copy_timeout_ms);
      if (deleted > 0) logger.info({ deleted }, 'deleted files of copies interrupted mid-write');
      return deleted;
    } catch (error) {
      logger.warn({ err: error }, 'could not sweep files of interrupted copies; will retry');
      return 0;
    }
  }

  /** Days the tenant's stored outputs are kept (its own setting, else the gateway's), or undefined to keep them. */
  private retentionDays(tenant: string): number | undefined {
    const { config } = this.engine;
    return config.tenants[tenant]?.retention_days ?? config.storage.retention_days;
  }

  /** Deletes stored copies whose retention ended, page by page; returns how many copies were deleted. */
  async expireRetained(): Promise<number> {
    const { tasks, clock, storage, logger, metrics } = this.engine;
    if (!storage) return 0;
    let deleted = 0;
    // One pass walks every expired copy once: a page the storage would not delete (left as it
    // is, tried again by the next pass) must not hold back the copies after it.
    const now = clock.now();
    let after: { storageExpiresAt: number; id: string } | undefined;
    for (;;) {
      const page = await tasks.listStorageExpired(now, RETENTION_BATCH, after);
      const last = page.at(-1);
      const lastExpiresAt = last && storageExpiresAt(last.outputs);
      if (last && lastExpiresAt != null) after = { storageExpiresAt: lastExpiresAt, id: last.id };
      for (const task of page) {
        const outputs: OutputRecord[] = [];
        for (const output of task.outputs) {
          if (output.storage !== 'stored' || output.expiresAt === null || output.expiresAt > now || !output.key) {
            outputs.push(output);
            continue;
          }
          try {
            await storage.delete(output.key);
          } catch (error) {
            // Left as it is: the next pass tries again.
            logger.warn({ task_id: task.id, err: error }, 'could not delete an expired output; will retry');
            outputs.push(output);
            continue;
          }
          deleted++;
          metrics.outputCopies.inc({ outcome: 'expired' });
          // Retention may be part of a day (`retention_days: 0.5`): named as configured, not rounded.
          const days = Number(((output.expiresAt - (output.storedAt ?? output.expiresAt)) / DAY_MS).toFixed(4));
          outputs.push({ ...output, storage: 'expired', storageError: `deleted after the ${days}-day retention`, key: null });
        }
        await this.lifecycle.expireStored(task, outputs);
      }
      if (page.length < RETENTION_BATCH) return deleted;
    }
  }
}
