/**
 * Loading from the gateway in a component: the data, the error, whether it is loading, and a
 * reload. Requests of a previous render are aborted; a 401 signs the console out; a failure that
 * passes (the gateway down, restarting or busy) is asked again soon, so the page recovers by itself.
 * An error is that of the load of the current `deps`: one of other deps (a Cost period left) is
 * not shown while the new load is on its way, which says Loading… instead.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { GatewayError, GatewayUnreachableError, NoAnswerError, type GatewayClient } from '../../packages/client/src/index.js';
import { useSession } from './gateway-context.js';

/** After a failure that passes, ask again this soon. */
export const RETRY_MS = 3_000;

/** A failure that passes: the gateway down or restarting, or busy. Waiting can help. */
export function passing(error: unknown): boolean {
  return error instanceof GatewayUnreachableError || (error instanceof GatewayError && (error.status >= 500 || error.status === 429));
}

export interface GatewayData<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload(): void;
}

export function useGatewayData<T>(
  load: (client: GatewayClient, signal: AbortSignal) => Promise<T>,
  deps: readonly unknown[],
  /** Read again this long after a load: a number, or one worked out from what was loaded (none: not again). */
  options: {
    refreshMs?: number | ((value: T) => number | undefined);
    /**
     * A load the gateway takes and does not answer within this is given up as `NoAnswerError` (and
     * asked again, as any failure that passes): a page that says it refreshes every few seconds
     * would otherwise show its last figures as current for the client's two minutes.
     */
    answerWithinMs?: number;
  } = {},
): GatewayData<T> {
  const session = useSession();
  const [data, setData] = useState<T | undefined>(undefined);
  const [failure, setFailure] = useState<{ error: unknown; deps: readonly unknown[] } | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [generation, setGeneration] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const aborter = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      setLoading(true);
      const refresh = options.refreshMs;
      let again = typeof refresh === 'number' ? refresh : undefined;
      // This load's own signal: the effect's abort, or the answer's time limit passing.
      const load = new AbortController();
      const forward = () => load.abort(aborter.signal.reason);
      aborter.signal.addEventListener('abort', forward, { once: true });
      const limitMs = options.answerWithinMs;
      let gaveUp = false;
      const limit = limitMs
        ? setTimeout(() => {
            gaveUp = true;
            load.abort(new NoAnswerError(session.client.baseUrl, limitMs));
          }, limitMs)
        : undefined;
      try {
        const value = await loadRef.current(session.client, load.signal).catch((error: unknown) => {
          throw gaveUp && !aborter.signal.aborted ? new NoAnswerError(session.client.baseUrl, limitMs!) : error;
        });
        if (aborter.signal.aborted) return;
        if (typeof refresh === 'function') again = refresh(value);
        setData(value);
        setFailure(undefined);
      } catch (caught) {
        if (aborter.signal.aborted) return;
        if (caught instanceof GatewayError && caught.status === 401) {
          session.signOut('The gateway no longer accepts this key. Sign in again.');
          return;
        }
        setFailure({ error: caught, deps });
        if (passing(caught)) again = Math.min(again ?? RETRY_MS, RETRY_MS);
      } finally {
        clearTimeout(limit);
        aborter.signal.removeEventListener('abort', forward);
        if (!aborter.signal.aborted) {
          setLoading(false);
          // Refresh only while the tab is visible; a hidden tab catches up when shown again.
          if (again) timer = setTimeout(() => void (document.hidden ? waitVisible().then(run) : run()), again);
        }
      }
    };
    void run();
    return () => {
      aborter.abort();
      if (timer) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, generation]);

  const reload = useCallback(() => setGeneration((value) => value + 1), []);
  const error = failure && sameDeps(failure.deps, deps) ? failure.error : undefined;
  return { data, error, loading, reload };
}

function sameDeps(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((value, index) => Object.is(value, b[index]));
}

function waitVisible(): Promise<void> {
  return new Promise((resolve) => {
    const onChange = () => {
      if (document.hidden) return;
      document.removeEventListener('visibilitychange', onChange);
      resolve();
    };
    document.addEventListener('visibilitychange', onChange);
  });
}
