/**
 * Sign in with a gateway key. The key is checked against the gateway before it is kept (for this
 * tab only, in sessionStorage).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { GatewayClient, GatewayError } from '../../../packages/client/src/index.js';
import { notePageShown } from '../components/page-heading.js';
import { ProblemMessage } from '../components/problem-message.js';
import { gatewayBaseUrl } from '../session.js';

/**
 * How long the key's check may go unanswered: a read the gateway answers at once, so a gateway
 * that takes it and sends nothing is said to be so (as a quote is), not "Checking…" for the
 * client's two minutes, which it keeps for a create.
 */
const SIGN_IN_TIMEOUT_MS = 15_000;

/** A key the browser cannot send: it holds a character an HTTP header cannot carry. */
class UnusableKey extends Error {
  constructor(character: string) {
    super(`This cannot be a gateway key: it holds “${character}”, which an HTTP header cannot carry.`);
  }
}

/** Sign in pressed with no key (or only spaces): nothing to check. */
class NoKey extends Error {
  constructor() {
    super('Enter a gateway key.');
  }
}

export function SignInPage({ onSignedIn, reason }: { onSignedIn: (key: string) => void; reason: string | null }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const [checking, setChecking] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    document.title = 'Sign in · Kling Gateway';
    notePageShown();
    // One field: start in it (its label is read out).
    input.current?.focus();
  }, []);

  const submit = async (event: Event) => {
    event.preventDefault();
    const trimmed = key.trim();
    if (checking) return;
    setError(undefined);
    if (!trimmed) {
      setError(new NoKey());
      return;
    }
    // A key travels in the Authorization header, which holds Latin-1 only; the browser would
    // refuse to send any other with a message about Headers.
    const foreign = /[^\u0000-\u00ff]/u.exec(trimmed);
    if (foreign) {
      setError(new UnusableKey(foreign[0]));
      return;
    }
    setChecking(true);
    try {
      // Any authenticated read proves the key; providers is small and has no side effects.
      await new GatewayClient({ baseUrl: gatewayBaseUrl(), apiKey: trimmed, timeoutMs: SIGN_IN_TIMEOUT_MS }).listProviders();
      onSignedIn(trimmed);
    } catch (caught) {
      setError(caught);
    } finally {
      setChecking(false);
    }
  };

  const refused = error instanceof GatewayError && error.status === 401;
  const fieldError = refused ? 'The gateway does not accept this key.' : error instanceof UnusableKey || error instanceof NoKey ? error.message : null;
  return (
    <main id="main" class="sign-in">
      <h1>Kling Gateway console</h1>
      <p>Sign in with a gateway key. It is kept in this browser tab only and forgotten when the tab closes.</p>
      {reason ? (
        <p class="notice" role="status">
          {reason}
        </p>
      ) : null}
      {/* noValidate: an empty key is said at the field (role alert), as every other problem with it is. */}
      <form onSubmit={submit} class="stack" noValidate aria-describedby={fieldError ? 'key-error' : undefined}>
        <label for="gateway-key">Gateway key</label>
        <input
          id="gateway-key"
          ref={input}
          name="gateway-key"
          type="password"
          autoComplete="off"
          spellcheck={false}
          required
          value={key}
          onInput={(event) => setKey((event.target as HTMLInputElement).value)}
          aria-invalid={fieldError ? 'true' : undefined}
          aria-describedby={fieldError ? 'key-hint key-error' : 'key-hint'}
        />
        <div id="key-hint" class="muted small">
          A key from the gateway's <code>GATEWAY_API_KEYS</code> (the sandbox started by <code>npm start</code> takes{' '}
          <code>dev-key</code>).
        </div>
        {fieldError ? (
          <p id="key-error" class="problem" role="alert">
            {fieldError}
          </p>
        ) : (
          <ProblemMessage error={error} />
        )}
        {/* Not disabled while checking: a disabled button loses the keyboard's focus. */}
        <button type="submit" class="primary" aria-disabled={checking ? 'true' : undefined}>
          {checking ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
