/**
 * Any error from the gateway, said plainly: the problem's title and detail, each invalid field,
 * each provider's reasons; or that the gateway cannot be reached, or lacks the endpoint.
 */
import {
  EndpointNotAvailableError,
  GatewayError,
  GatewayUnreachableError,
} from '../../../packages/client/src/index.js';

export function ProblemMessage({ error, context }: { error: unknown; context?: string }) {
  if (!error) return null;
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
        <strong>Cannot reach the gateway.</strong> {error.message}
      </div>
    );
  }
  if (error instanceof GatewayError) {
    const { problem } = error;
    return (
      <div class="problem" role="alert">
        <strong>
          {problem.title} ({error.status})
        </strong>
        {problem.detail ? <span> — {problem.detail}</span> : null}
        {problem.errors?.length ? (
          <ul>
            {problem.errors.map((field) => (
              <li key={field.path}>
                <code>{field.path}</code>: {field.message}
              </li>
            ))}
          </ul>
        ) : null}
        {problem.providers?.length ? (
          <ul>
            {problem.providers.map((provider) => (
              <li key={provider.provider}>
                <strong>{provider.provider}</strong>: {provider.reasons.join('; ')}
              </li>
            ))}
          </ul>
        ) : null}
        {error.requestId ? <div class="muted small">request id {error.requestId}</div> : null}
      </div>
    );
  }
  return (
    <div class="problem" role="alert">
      <strong>Something went wrong.</strong> {error instanceof Error ? error.message : String(error)}
    </div>
  );
}
