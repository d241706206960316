/**
 * A task's life as a timeline: created, each provider attempt (outcome, HTTP status, latency,
 * error), and how it ended.
 */
import { formatMs, type Task } from '../../../packages/client/src/index.js';
import { localTime } from '../display.js';

const OUTCOME_TEXT: Record<string, string> = {
  accepted: 'accepted the task',
  failed: 'refused (not accepted upstream)',
  ambiguous: 'no readable answer (the task may exist upstream)',
  skipped: 'skipped (circuit open)',
  interrupted: 'interrupted (the gateway stopped mid-request)',
  sending: 'sending now',
};

export function AttemptsTimeline({ task }: { task: Task }) {
  return (
    <ol class="timeline" aria-label="Timeline">
      <li class="timeline-item">
        <time dateTime={task.created_at}>{localTime(task.created_at)}</time>
        <div>Created ({task.operation}, {task.model} {task.quality})</div>
      </li>
      {task.attempts.map((attempt, index) => (
        <li key={`${attempt.at}-${index}`} class={`timeline-item outcome-${attempt.outcome}`}>
          <time dateTime={attempt.at}>{localTime(attempt.at)}</time>
          <div>
            <strong>
              Attempt {index + 1}: {attempt.provider}
            </strong>{' '}
            {OUTCOME_TEXT[attempt.outcome] ?? attempt.outcome}
            <div class="muted small">
              {[
                attempt.http_status !== null ? `HTTP ${attempt.http_status}` : null,
                attempt.latency_ms !== null ? formatMs(attempt.latency_ms) : null,
                attempt.error_code,
                attempt.provider_code ? `upstream code ${attempt.provider_code}` : null,
              ]
                .filter(Boolean)
                .join(' · ')}
            </div>
            {attempt.message ? <div class="small">{attempt.message}</div> : null}
          </div>
        </li>
      ))}
      {task.completed_at ? (
        <li class={`timeline-item end-${task.status}`}>
          <time dateTime={task.completed_at}>{localTime(task.completed_at)}</time>
          <div>
            <strong>{task.status === 'succeeded' ? 'Succeeded' : task.status === 'canceled' ? 'Canceled' : 'Failed'}</strong>
            {task.error ? (
              <>
                {' '}— {task.error.code}: <bdi>{task.error.message}</bdi>
              </>
            ) : null}
          </div>
        </li>
      ) : (
        <li class="timeline-item pending">
          <div>
            <strong>{task.status !== 'queued' ? 'Generating' : task.provider_task_id ? `Waiting in ${task.provider}'s queue` : 'Waiting for a provider'}</strong>
            {task.provider_status ? (
              <>
                {' '}(upstream says <bdi>{task.provider_status}</bdi>)
              </>
            ) : null}
            …
          </div>
        </li>
      )}
    </ol>
  );
}
