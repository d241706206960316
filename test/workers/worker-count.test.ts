/** `WORKERS`: unset or 1 is one process; a count up to 64, or `auto` (the cores); anything else refuses to start. */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config.js';
import { workerCount } from '../../src/workers/worker-count.js';

const FILE = 'sqlite:./data/kling-gateway.db';

describe('workerCount', () => {
  it.each([
    [undefined, 1],
    ['', 1],
    ['1', 1],
    [' 2 ', 2],
    ['64', 64],
  ])('WORKERS=%j is %i', (value, count) => {
    expect(workerCount(value, FILE)).toBe(count);
  });

  it('auto is one per core, at least one and at most 64', () => {
    expect(workerCount('auto', FILE, () => 2)).toBe(2);
    expect(workerCount('auto', FILE, () => 0)).toBe(1);
    expect(workerCount('auto', FILE, () => 256)).toBe(64);
  });

  it.each(['0', '65', '-1', '1.5', 'two', '2x'])('refuses WORKERS=%j, saying what is allowed', (value) => {
    expect(() => workerCount(value, FILE)).toThrow(ConfigError);
    expect(() => workerCount(value, FILE)).toThrow(/whole number from 1 to 64, or auto/);
  });

  it('refuses several workers on an in-memory database, which they could not share', () => {
    expect(() => workerCount('2', 'sqlite::memory:')).toThrow(/in-memory SQLite database/);
    expect(workerCount('1', 'sqlite::memory:')).toBe(1);
    expect(workerCount('2', 'postgres://gateway@db:5432/gateway')).toBe(2);
  });
});
