/**
 * One task: status (live while it runs), what it is, what it cost, the video playing inline (or
 * the image shown), and every attempt as a timeline. A task whose operation makes an image is
 * called an image throughout (heading, tab title, cancel, announcements).
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import {
  cancelPending,
  formatChargesAtRisk,
  formatCost,
  formatElapsed,
  GatewayError,
  isTaskIdSegment,
  isTerminal,
  outputGone,
  type Task,
  type TaskOutput,
  type TaskStatus,
} from '../../../packages/client/src/index.js';
import { AttemptsTimeline } from '../components/attempts-timeline.js';
import { PageHeading } from '../components/page-heading.js';
import { ProblemMessage } from '../components/problem-message.js';
import { StatusBadge } from '../components/status-badge.js';
import { WebhookDeliveries, webhookUrlOf } from '../components/webhook-deliveries.js';
import { costSource, holderText, localTime, taskNoun } from '../display.js';
import { useSession } from '../gateway-context.js';
import { handedOver, takeHandedOver } from '../task-handoff.js';
import { newer } from '../task-statuses.js';
import { passing, RETRY_MS, useGatewayData } from '../use-gateway-data.js';

/** What the task's cost is, under it. */
const COST_NOTES = {
  estimate: 'estimated from the price list; replaced by the provider’s figure when it reports one',
  provider: 'as reported by the provider',
  nothing: 'no provider holds this task: nothing is charged',
} as const;

/**
 * What other providers may also have billed (`cost.at_risk`): their creates went unanswered
 * before the task moved on. Nothing when none may have.
 */
function CostAtRisk({ task }: { task: Task }) {
  const text = formatChargesAtRisk(task.cost);
  if (!text) return null;
  return (
    <div class="cost-at-risk">
      {text}
      <div class="muted small">
        a create sent there went unanswered before another provider took the task; the gateway cannot tell whether it was billed.
        Not in the cost above; budgets count it as spent.
      </div>
    </div>
  );
}

/** Follow a running task this long at most (the gateway's deadline ends it sooner). */
const FOLLOW_MS = 6 * 3600_000;

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** Where an output's file comes from, in words: the gateway's stored copy or the provider's. */
function outputSource(output: TaskOutput): string {
  const kept = output.expires_at ? `, kept until ${localTime(output.expires_at)}` : '';
  const upstreamUntil = output.upstream_url_expires_at ? ` (the provider keeps it until ${localTime(output.upstream_url_expires_at)})` : '';
  switch (output.storage) {
    case 'stored':
      return `the gateway's stored copy${kept}`;
    case 'pending':
      return `the provider's copy; the gateway is still storing its own${upstreamUntil}`;
    case 'not_stored':
      return `the provider's copy; the gateway could not store one${output.storage_error ? `: ${output.storage_error}` : ''}${upstreamUntil}`;
    case 'expired':
      return `the provider's copy; the gateway's copy was deleted${output.storage_error ? `: ${output.storage_error}` : ''}${upstreamUntil}`;
    default:
      return `the provider's copy${upstreamUntil}`;
  }
}

/** The aspect ratio the task asked for (`16:9`, `9:16`, `1:1`; `auto` or none: the default 16:9). */
function aspectOf(task: Task): string {
  const asked = (task.request as { aspect_ratio?: unknown }).aspect_ratio;
  return asked === '9:16' || asked === '1:1' ? asked : '16:9';
}

/**
 * How long a video the task asked for ("10 s", "7 s in 2 shots"), as the gateway accepted it; null
 * for a request with no duration (an image, a lip-sync or an edit, whose length is the source's).
 */
function lengthOf(task: Task): string | null {
  const { duration, multi_shot: shots } = task.request as { duration?: unknown; multi_shot?: unknown };
  if (typeof duration !== 'number') return null;
  return Array.isArray(shots) && shots.length > 1 ? `${duration} s in ${shots.length} shots` : `${duration} s`;
}

/** Where an output's file can be had outside the player: open it, download it (the gateway's copy), and its source. */
function OutputLinks({ output }: { output: TaskOutput }) {
  return (
    <>
      <a href={output.url} target="_blank" rel="noopener noreferrer">
        open the file
      </a>
      {output.storage === 'stored' ? (
        // The gateway's own link: saved under the name the gateway gives it. A browser ignores
        // `download` on another origin (a provider's URL, a public_url on another host), so
        // there it opens in a new tab rather than leaving the console.
        <>
          {' · '}
          <a href={output.url} download target="_blank" rel="noopener noreferrer">
            download
          </a>
        </>
      ) : null}
      {output.upstream_url !== output.url && !output.upstream_url_gone ? (
        <>
          {' · '}
          <a href={output.upstream_url} target="_blank" rel="noopener noreferrer">
            the provider's copy
          </a>
        </>
      ) : null}
      <div class="output-source">From {outputSource(output)}.</div>
    </>
  );
}

function OutputMedia({ task, index }: { task: Task; index: number }) {
  const output = task.outputs[index]!;
  const label = `${output.type === 'video' ? 'Video' : 'Image'} output ${index + 1}`;
  // `url` is the gateway's signed link to its stored copy (it needs no key, and a <video> can ask
  // it for ranges) or, where no copy is kept, the provider's own URL: either plays as it is.
  const src = output.url;
  /** The link the player could not load; a new link (the task read again) is tried afresh. */
  const [failedSrc, setFailedSrc] = useState<string | null>(null);
  if (outputGone(output)) {
    return (
      <div class="notice output-gone" role="status">
        <strong>{label} can no longer be fetched.</strong> The gateway kept no copy
        {output.storage_error ? ` (${output.storage_error})` : ''} and the provider{' '}
        {output.upstream_url_gone ? 'no longer has it' : `kept its copy until ${localTime(output.upstream_url_expires_at)} only`}.
      </div>
    );
  }
  if (failedSrc === src) {
    // No player, and none of the room kept for one: the file's links, which may still work
    // outside it (a browser that cannot play the format, a link that has since come back).
    return (
      <div class="notice output-failed" role="status">
        <strong>{label} could not be loaded here.</strong>{' '}
        <OutputLinks output={output} />
      </div>
    );
  }
  const failed = () => setFailedSrc(src);
  return (
    <figure class="output" data-storage={output.storage} data-aspect={aspectOf(task)}>
      {output.type === 'video' ? (
        <video class="output-video" controls playsInline preload="metadata" src={src} aria-label={label} onError={failed} />
      ) : null}
      {output.type === 'image' ? <img class="output-image" src={src} alt={`Generated image, output ${index + 1}`} onError={failed} /> : null}
      <figcaption>
        {label}
        {output.duration ? ` · ${output.duration} s` : ''} · <OutputLinks output={output} />
        {output.type === 'video' && output.upstream_id ? (
          // The legacy Kling-API's own id of the video: what extends it or syncs its lips, asked nowhere else.
          <div class="upstream-id muted small">
            Kling video id <code>{output.upstream_id}</code>: the <code>video_id</code> to give to extend it (video-extend) or sync its lips (lip-sync)
          </div>
        ) : null}
      </figcaption>
    </figure>
  );
}

/** Times a cancel kept undecided (409 cancel-pending) is asked again by itself, as the CLI's `cancel` does. */
const CANCEL_PENDING_ROUNDS = 3;
/** The longest Retry-After of an undecided cancel waited out before asking again, in seconds. */
const CANCEL_PENDING_LONGEST_WAIT_S = 30;

/**
 * A cancel the gateway keeps but has not decided (409 cancel-pending: the create on its way to a
 * provider is unanswered), said plainly: kept, what decides it, and that it is asked again by
 * itself (`waitS`), or, those rounds spent, that the page shows the end and Cancel asks again.
 */
function CancelPendingNote({ noun, waitS }: { noun: string; waitS: number | null }) {
  const what = noun.toLowerCase();
  return (
    <div class="notice cancel-pending" role="status">
      <strong>The cancel is kept, not decided yet.</strong> This {what} is being sent to a provider right now, and whether the provider
      accepts it is not known. If the provider turns it down, the {what} ends canceled and is sent nowhere else; if it accepts it, it is
      canceled there only if that provider can cancel a task, otherwise it runs to the end and is billed.{' '}
      {waitS !== null
        ? `Asking again in ${waitS} s.`
        : `Still not decided after asking again: this page shows the ${what} canceled once the provider turns it down. Press Cancel ${what} to ask again.`}
    </div>
  );
}

function CancelControl({ task, onCanceled }: { task: Task; onCanceled: (task: Task) => void }) {
  const { client } = useSession();
  const [available, setAvailable] = useState<boolean | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  /** A cancel kept undecided: asked again in `waitS` seconds, or (null) no more by itself. */
  const [pending, setPending] = useState<{ waitS: number | null } | null>(null);
  /** The next ask of an undecided cancel, scheduled. */
  const askAgain = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  // The control pressed is replaced by the next one: the keyboard's place moves with it.
  const focusNext = useRef(false);
  const noun = taskNoun(task);
  const cancelButton = useRef<HTMLButtonElement>(null);
  const keepButton = useRef<HTMLButtonElement>(null);
  const note = useRef<HTMLParagraphElement>(null);
  const running = !isTerminal(task);
  // Whether the provider holding a task (processing, or queued in its own queue) can cancel it there (asked while it runs).
  const providers = useGatewayData((_c, signal) => (running ? client.listProviders({ signal }) : Promise.resolve(undefined)), [client, running]);
  const held = task.status === 'processing' || Boolean(task.provider_task_id);
  const holder = held && task.provider ? providers.data?.data.find((provider) => provider.id === task.provider) : undefined;
  // Offered while no provider holds the task (queued at the gateway), or when its provider can cancel there. While
  // that is not known (or a gateway does not say) it is offered: a refusal says why (409).
  const cancelable = holder?.can_cancel !== false;
  useEffect(() => {
    void client.hasEndpoint('cancel').then(setAvailable);
  }, [client]);
  useEffect(() => {
    // Taken by a provider that cannot cancel while the keyboard was on Cancel video or its question,
    // which go away: the keyboard goes on from the sentence that takes their place.
    if (!cancelable && running && (!document.activeElement || document.activeElement === document.body)) note.current?.focus();
  }, [cancelable, running]);
  useEffect(() => {
    // Ended, or taken by a provider that cannot cancel: an undecided cancel is not asked again.
    if (running && cancelable) return;
    clearTimeout(askAgain.current);
    setPending(null);
  }, [cancelable, running]);
  useEffect(() => () => clearTimeout(askAgain.current), []);
  useEffect(() => {
    if (!focusNext.current) return;
    focusNext.current = false;
    (confirming ? keepButton : cancelButton).current?.focus();
  }, [confirming]);
  const confirm = (value: boolean) => {
    focusNext.current = true;
    setConfirming(value);
  };
  if (!running) return null;
  if (available === false) return <p class="muted small">Cancel is not available on this gateway.</p>;
  if (!cancelable) {
    const what = noun.toLowerCase();
    return (
      <div class="cancel">
        <p class="muted small" ref={note} tabIndex={-1}>
          {task.provider} cannot cancel {/^[aeiou]/.test(what) ? 'an' : 'a'} {what} it accepted: this one runs to the end and is billed as usual.
        </p>
      </div>
    );
  }
  const cancel = async (round = 0) => {
    clearTimeout(askAgain.current);
    setBusy(true);
    setError(undefined);
    try {
      onCanceled(await client.cancelVideo(task.id));
      setPending(null);
      setConfirming(false);
    } catch (caught) {
      if (cancelPending(caught)) {
        // Kept, not decided yet: said so, and asked again after its Retry-After, a few times (the
        // page follows the task meanwhile, so its end shows however it comes).
        const waitS = Math.min(Math.max(caught.retryAfterSeconds ?? 1, 1), CANCEL_PENDING_LONGEST_WAIT_S);
        const again = round < CANCEL_PENDING_ROUNDS;
        setPending({ waitS: again ? waitS : null });
        if (again) askAgain.current = setTimeout(() => void cancel(round + 1), waitS * 1000);
      } else {
        // Refused (a provider holds the task, or it finished): the question is answered, so it
        // closes, and the reason shows beside the button it came from.
        setPending(null);
        setError(caught);
      }
      if (round === 0) confirm(false);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="cancel">
      {confirming ? (
        // Escape answers the question as Keep it does, as it closes any question a page asks.
        <div role="group" aria-label="Confirm cancel" onKeyDown={(event) => event.key === 'Escape' && confirm(false)}>
          <span>Cancel this {noun.toLowerCase()}? A task a provider already holds cannot be canceled.</span>{' '}
          <button type="button" class="danger" onClick={() => void cancel()} disabled={busy}>
            Yes, cancel
          </button>{' '}
          <button type="button" ref={keepButton} onClick={() => confirm(false)}>
            Keep it
          </button>
        </div>
      ) : (
        <button type="button" ref={cancelButton} onClick={() => confirm(true)}>
          Cancel {noun.toLowerCase()}
        </button>
      )}
      {pending ? <CancelPendingNote noun={noun} waitS={pending.waitS} /> : null}
      <ProblemMessage error={error} context="Cancel" />
    </div>
  );
}

/**
 * The prompt, its first lines only when it is long (up to 2,500 characters: a phone's screens of
 * text before the status and the result), and the whole of it when asked. The whole text is always
 * in the page, for a screen reader and the browser's find.
 */
function Prompt({ text }: { text: string }) {
  const shown = useRef<HTMLSpanElement>(null);
  const [expanded, setExpanded] = useState(false);
  const [long, setLong] = useState(false);
  useLayoutEffect(() => {
    const measure = () => {
      const element = shown.current;
      // Measured clipped: is there more than the first lines show?
      if (element && !expanded) setLong(element.scrollHeight > element.clientHeight + 1);
    };
    measure();
    addEventListener('resize', measure);
    return () => removeEventListener('resize', measure);
  }, [text, expanded]);
  return (
    <div class="prompt-block">
      {/* In its own direction: a prompt written right to left reads so, its end at the left. */}
      <blockquote id="task-prompt" class="prompt" dir="auto">
        {/* Clipped inside the quote's padding, so no part of a sixth line shows in it. */}
        <span ref={shown} class={expanded ? undefined : 'clamped'}>
          {text}
        </span>
      </blockquote>
      {long ? (
        <button type="button" class="link-button small" aria-controls="task-prompt" aria-expanded={expanded ? 'true' : 'false'} onClick={() => setExpanded(!expanded)}>
          {expanded ? 'Show less' : 'Show the whole prompt'}
        </button>
      ) : null}
    </div>
  );
}

export function TaskPage({ id }: { id: string }) {
  const { client, announce, signOut } = useSession();
  // Opened by the create that made it: the task as its answer had it, shown at once.
  const [task, setTask] = useState<Task | undefined>(() => handedOver(id));
  /**
   * The read of the task shown now. A read older than it is not shown: the event stream's first
   * event, read before a cancel and answered after the cancel's own answer, showed a canceled task
   * running again, Cancel offered.
   */
  const shown = useRef<Task | undefined>(task);
  const [error, setError] = useState<unknown>(undefined);
  const resultHeading = useRef<HTMLHeadingElement>(null);
  /** The task ended while the keyboard was on its cancel controls, which go away with it. */
  const refocus = useRef(false);
  useEffect(() => {
    if (!refocus.current) return;
    refocus.current = false;
    resultHeading.current?.focus();
  });

  useEffect(() => {
    const aborter = new AbortController();
    // The create's answer, when it opened this page: followed from there, not read again first.
    let known = takeHandedOver(id);
    shown.current = known;
    setTask(known);
    setError(undefined);
    // `.` and `..` name no task: asked for, the URL would resolve to another route.
    if (!isTaskIdSegment(id)) return;
    /** The status last shown; each change after the first shown is read out, once, by the page's announcer. */
    let shownStatus = known?.status;
    const seen = (current: Task) => {
      if (!newer(current, shown.current)) return;
      shown.current = current;
      // Ended (here or elsewhere) while the keyboard was on Cancel video or its question: those go
      // away with it, so the keyboard goes on from the result, not from the top of the page.
      if (isTerminal(current) && document.activeElement?.closest('.cancel')) refocus.current = true;
      if (shownStatus !== undefined && current.status !== shownStatus) announce(`${taskNoun(current)} ${current.status}`);
      shownStatus = current.status;
      setTask(current);
      setError(undefined);
    };
    (async () => {
      // A gateway that cannot be reached for a while (a restart, a dropped connection) is shown,
      // and the task is looked at again until it answers: the page never stops following.
      while (!aborter.signal.aborted) {
        try {
          const current = known ?? (await client.getVideo(id, { signal: aborter.signal }));
          known = undefined;
          seen(current);
          if (isTerminal(current)) return;
          const last = await client.waitForVideo(id, { signal: aborter.signal, timeoutMs: FOLLOW_MS, onUpdate: seen });
          seen(last);
          return;
        } catch (caught) {
          if (aborter.signal.aborted || !passing(caught)) throw caught;
          setError(caught);
          await pause(RETRY_MS, aborter.signal);
        }
      }
    })().catch((caught: unknown) => {
      if (aborter.signal.aborted) return;
      if (caught instanceof GatewayError && caught.status === 401) signOut('The gateway no longer accepts this key. Sign in again.');
      else setError(caught);
    });
    return () => aborter.abort();
  }, [client, id, announce, signOut]);

  if (!task) {
    return (
      <section>
        {/* What it makes is not known until it loads. */}
        <PageHeading title={`Task ${id}`} />
        {!isTaskIdSegment(id) ? (
          <div class="problem" role="alert">
            <strong>Not found.</strong> No task has the id “{id}”.
          </div>
        ) : error ? (
          <ProblemMessage error={error} retrying />
        ) : (
          <p class="muted">Loading…</p>
        )}
        <p>
          <Link href="/">Back to the tasks</Link>
        </p>
      </section>
    );
  }

  const prompt = typeof task.request.prompt === 'string' ? task.request.prompt : null;
  const webhookUrl = webhookUrlOf(task);
  const length = lengthOf(task);
  const noun = taskNoun(task);
  const took = task.completed_at ? formatElapsed(Date.parse(task.completed_at) - Date.parse(task.created_at)) : null;
  return (
    <article aria-labelledby="task-title" class="task-page">
      <p class="breadcrumb">
        <Link href="/">Tasks</Link> <span aria-hidden="true">›</span> <code>{task.id}</code>
      </p>
      <div class="page-head">
        <PageHeading title={`${noun} ${task.id}`}>
          <span id="task-title">{noun}</span> <code class="task-id">{task.id}</code>
        </PageHeading>
        {/* Not a live region: each status change is read out once, by the page's announcer ("Video succeeded"). */}
        <div class="status-line">
          <StatusBadge status={task.status as TaskStatus} />
          {!isTerminal(task) ? <span class="muted small">{error ? ' reconnecting…' : ' following live…'}</span> : null}
        </div>
      </div>
      <ProblemMessage error={error} retrying />
      {prompt ? <Prompt text={prompt} /> : null}

      <div class="task-grid">
        <section aria-labelledby="result-heading" class="panel">
          <h2 id="result-heading" tabIndex={-1} ref={resultHeading}>
            Result
          </h2>
          {task.outputs.length > 0 ? (
            task.outputs.map((_output, index) => <OutputMedia key={index} task={task} index={index} />)
          ) : task.status === 'failed' || task.status === 'canceled' ? (
            <div class="problem">
              <strong>{task.status === 'failed' ? 'Failed' : 'Canceled'}</strong>
              {task.error ? (
                <>
                  : <code>{task.error.code}</code> — <bdi>{task.error.message}</bdi>
                  {task.error.provider_code ? <span class="muted"> (upstream code {task.error.provider_code})</span> : null}
                </>
              ) : null}
            </div>
          ) : (
            <p class="muted">The {noun.toLowerCase()} appears here when it is ready.</p>
          )}
          <CancelControl
            task={task}
            onCanceled={(canceled) => {
              if (newer(canceled, shown.current)) {
                shown.current = canceled;
                setTask(canceled);
              }
              // The cancel controls go away with the task's end: the keyboard goes on from the result
              // (unless a cancel asked again by itself ended it while the keyboard was elsewhere).
              const focused = document.activeElement;
              if (!focused || focused === document.body || focused.closest('.cancel')) resultHeading.current?.focus();
            }}
          />
        </section>

        <section aria-labelledby="details-heading" class="panel">
          <h2 id="details-heading">Details</h2>
          <dl class="details">
            <dt>Cost</dt>
            <dd class="cost" data-estimated={String(task.cost.estimated)}>
              {formatCost(task.cost)}
              <div class="muted small">
                {COST_NOTES[costSource(task)]}
              </div>
              <CostAtRisk task={task} />
            </dd>
            <dt>Model</dt>
            <dd>
              {task.model} · {task.quality} · {task.operation}
            </dd>
            {length ? (
              <>
                <dt>Duration</dt>
                <dd>{length}</dd>
                {typeof task.request.aspect_ratio === 'string' ? (
                  <>
                    <dt>Aspect ratio</dt>
                    <dd>{task.request.aspect_ratio}</dd>
                  </>
                ) : null}
              </>
            ) : null}
            <dt>Provider</dt>
            <dd>
              {holderText(task)}
              {task.provider_task_id ? <div class="muted small">upstream task {task.provider_task_id}</div> : null}
              {task.provider_status ? (
                <div class="muted small">
                  upstream status <bdi>{task.provider_status}</bdi>
                </div>
              ) : null}
            </dd>
            <dt>Created</dt>
            <dd>{localTime(task.created_at)}</dd>
            <dt>Finished</dt>
            <dd>{task.completed_at ? `${localTime(task.completed_at)} (took ${took})` : '—'}</dd>
            {Object.keys(task.metadata).length > 0 ? (
              <>
                <dt>Metadata</dt>
                <dd>
                  {Object.entries(task.metadata).map(([key, value]) => (
                    <div key={key}>
                      <bdi>
                        <code>{key}</code>
                      </bdi>{' '}
                      = <bdi>{value}</bdi>
                    </div>
                  ))}
                </dd>
              </>
            ) : null}
          </dl>
          {task.warnings.length > 0 ? (
            <div class="notice">
              <strong>Warnings</strong>
              <ul>
                {task.warnings.map((warning) => (
                  <li key={warning}>{warning}</li>
                ))}
              </ul>
            </div>
          ) : null}
        </section>
      </div>

      <section aria-labelledby="timeline-heading" class="panel">
        <h2 id="timeline-heading">Attempts</h2>
        <AttemptsTimeline task={task} />
      </section>

      {webhookUrl ? <WebhookDeliveries task={task} url={webhookUrl} /> : null}

      <details class="panel">
        <summary>The request as accepted</summary>
        <pre>{JSON.stringify(task.request, null, 2)}</pre>
      </details>
    </article>
  );
}
