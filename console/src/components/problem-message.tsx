/**
 * Any error from the gateway, said plainly: the problem's title and detail, each invalid field,
 * each provider's reasons (once each); or that the gateway cannot be reached, or lacks the endpoint.
 * Where the page asks again by itself (`retrying`), a failure that passes says so, so nobody
 * reloads or signs in again to get the page back.
 */
import {
  detailRepeatsItsField,
  EndpointNotAvailableError,
  GatewayError,
  GatewayUnreachableError,
  reasonsNotByField,
} from '../../../packages/client/src/index.js';
import { passing } from '../use-gateway-data.js';

/** What a page that asks again by itself says under a failure that passes. */
function RetryNote() {
  return <div class="muted small">Asking again every few seconds: this fills in by itself once the gateway answers.</div>;
}

/**
 * The wait an answer's `Retry-After` asks for, as a reader takes it in ("30 s", "5 min"): a detail
 * says "send it again after Retry-After seconds", a header the page's reader never sees.
 */
function waitText(seconds: number): string {
  return seconds < 120 ? `${Math.max(1, Math.ceil(seconds))} s` : `${Math.ceil(seconds / 60)} min`;
}

export function ProblemMessage({ error, context, retrying = false }: { error: unknown; context?: string; retrying?: boolean }) {
  if (!error) return null;
  const note = retrying && passing(error) ? <RetryNote /> : null;
  if (error instanceof EndpointNotAvailableError) {
    return (
      <div class="notice" role="status">
        <strong>Not available on this gateway.</strong> {context ? `${context}: ` : ''}it has no <code>{error.endpoint}</code>
        {' '}(a newer gateway version provides it).
      </div>
    );
  }
  if (error instanceof GatewayUnreachableError) {
    return (
      <div class="problem" role="alert">
        {/* The heading says "cannot reach"; the rest says where and why (a hung or foreign gateway says its own). */}
        <strong>Cannot reach the gateway.</strong> {error.name === 'GatewayUnreachableError' ? `${error.url}: ${error.reason}` : error.message}
        {note}
      </div>
    );
  }
  if (error instanceof GatewayError) {
    const { problem } = error;
    const errors = problem.errors ?? [];
    // A capability 422 says each provider's reasons three times over: quoted in `detail`, by field
    // in `errors[]` and by provider in `providers[]`. Each is shown once: by field where it is
    // about one, the rest by provider; the detail, which only quotes them, is left out.
    const byProvider = problem.providers ?? [];
    const otherReasons = reasonsNotByField(problem);
    return (
      <div class="problem" role="alert">
        <strong>
          {problem.title} ({error.status})
        </strong>
        {problem.detail && byProvider.length === 0 && !detailRepeatsItsField(problem, problem.detail) ? <span> — <bdi>{problem.detail}</bdi></span> : null}
        {errors.length ? (
          <ul>
            {errors.map((field) =>
              field.providers?.length ? (
                <li key={field.path}>
                  <bdi>
                    <code>{field.path}</code>
                  </bdi>
                  :
                  <ul>
                    {field.providers.map((entry) => (
                      <li key={entry.provider}>
                        <strong>{entry.provider}</strong>: {entry.reasons.join('; ')}
                      </li>
                    ))}
                  </ul>
                </li>
              ) : (
                <li key={field.path}>
                  <bdi>
                    <code>{field.path}</code>
                  </bdi>
                  : <bdi>{field.message}</bdi>
                </li>
              ),
            )}
          </ul>
        ) : null}
        {otherReasons.length ? (
          <ul>
            {otherReasons.map((entry) => (
              <li key={entry.provider}>
                <strong>{entry.provider}</strong>: {entry.reasons.join('; ')}
              </li>
            ))}
          </ul>
        ) : null}
        {error.retryAfterSeconds !== null && !note ? <div>Try again in {waitText(error.retryAfterSeconds)} (the gateway's Retry-After).</div> : null}
        {error.requestId ? <div class="muted small">request id {error.requestId}</div> : null}
        {note}
      </div>
    );
  }
  return (
    <div class="problem" role="alert">
      <strong>Something went wrong.</strong> {error instanceof Error ? error.message : String(error)}
    </div>
  );
}
