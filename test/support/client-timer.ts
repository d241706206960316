import { vi } from 'vitest';

/**
 * Runs `body` with `setTimeout` faked, so an upstream client's time limit (a real `setTimeout`
 * started as the call begins) runs out only when the test says, with `runOut(ms)` — e.g. once the
 * simulator holds the request. With a real 50 ms limit, a loaded machine can let it run out before
 * the request is even written: the call then fails `not_sent`, not `timeout`, and a fault queued
 * for it is left for the next call.
 */
export async function withClientTimerHeld<T>(body: (runOut: (ms: number) => Promise<void>) => Promise<T>): Promise<T> {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  try {
    return await body(async (ms) => {
      await vi.advanceTimersByTimeAsync(ms);
    });
  } finally {
    vi.useRealTimers();
  }
}
