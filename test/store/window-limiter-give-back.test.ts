/**
 * A place given back in the window it was counted in (a create refused as bad input) is free
 * again at once, even when it was the only one counted; one given back as that window is about
 * to turn is left counted (a give-back landing in the next window would free a place there).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { openWindowLimiter } from '../../src/store/window-limiter.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('giving a counted place back', () => {
  it('frees the place of the only request counted in the window', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-12-04T10:00:00.000Z') });
    const limiter = await openWindowLimiter({ dialect: 'sqlite' } as Store, { name: 'only', points: 1, windowMs: 60_000 });
    const first = await limiter.take('acme');
    expect(first.allowed).toBe(true);
    await limiter.giveBack('acme', (first as { countedUntil: number }).countedUntil);
    expect((await limiter.take('acme')).allowed).toBe(true);
    expect((await limiter.take('acme')).allowed).toBe(false);
  });

  it('keeps the place counted when the window has a second or less left', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-12-04T10:00:00.000Z') });
    const limiter = await openWindowLimiter({ dialect: 'sqlite' } as Store, { name: 'late', points: 1, windowMs: 60_000 });
    const first = await limiter.take('acme');
    const countedUntil = (first as { countedUntil: number }).countedUntil;
    vi.setSystemTime(countedUntil - 1_000);
    await limiter.giveBack('acme', countedUntil);
    expect((await limiter.take('acme')).allowed).toBe(false);
  });
});
