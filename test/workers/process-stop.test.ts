/**
 * The process stops once, whatever asks (a signal, the primary giving up), and a failing status
 * wins: a SIGTERM during a give-up (exit 78 for a refused configuration, 1 for a failed first
 * start) ended the process with 0, after a second stop closed the store again.
 */
import { expect, it } from 'vitest';
import { ProcessStop } from '../../src/workers/process-stop.js';

function stopWithWork() {
  let finish!: () => void;
  let runs = 0;
  const exits: number[] = [];
  const stop = new ProcessStop(
    () => {
      runs++;
      return new Promise<void>((resolve) => (finish = resolve));
    },
    (code) => exits.push(code),
    () => undefined,
  );
  return { stop, exits, runs: () => runs, finish: () => finish() };
}

it('ends with the give-up status when a SIGTERM comes while the primary gives up, stopping once', async () => {
  const { stop, exits, runs, finish } = stopWithWork();
  const gaveUp = stop.request(78);
  const signalled = stop.request(0);
  finish();
  await Promise.all([gaveUp, signalled]);
  expect(runs()).toBe(1);
  expect(exits).toEqual([78]);
});

it('ends with the give-up status when the primary gives up during a stop a SIGTERM began', async () => {
  const { stop, exits, runs, finish } = stopWithWork();
  const signalled = stop.request(0);
  const gaveUp = stop.request(1);
  finish();
  await Promise.all([gaveUp, signalled]);
  expect(runs()).toBe(1);
  expect(exits).toEqual([1]);
});

it('ends with 0 after a stop nothing failed, and with 1 when the stop itself fails', async () => {
  const clean = stopWithWork();
  const stopped = clean.stop.request();
  clean.finish();
  await stopped;
  expect(clean.exits).toEqual([0]);

  const errors: unknown[] = [];
  const exits: number[] = [];
  const failing = new ProcessStop(() => Promise.reject(new Error('store would not close')), (code) => exits.push(code), (error) => errors.push(error));
  await failing.request();
  expect(exits).toEqual([1]);
  expect(errors).toHaveLength(1);
});

it('ends with the first failing status asked for, not a later one', async () => {
  const { stop, exits, finish } = stopWithWork();
  const refused = stop.request(78);
  const failed = stop.request(1);
  finish();
  await Promise.all([refused, failed]);
  expect(exits).toEqual([78]);
});
