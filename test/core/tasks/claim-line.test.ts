import { describe, expect, it } from 'vitest';
import { ClaimLine } from '../../../src/core/tasks/claim-line.js';

/** Whether `promise` has settled once every pending callback ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('ClaimLine', () => {
  it('lets a task claim a provider only after every older task that may want it is done with it', async () => {
    const line = new ClaimLine();
    const oldest = line.join(['kling3api']);
    const middle = line.join(['kling3api']);
    const youngest = line.join(['kling3api']);
    expect(await settled(oldest.waitFor('kling3api'))).toBe(true);
    expect(await settled(middle.waitFor('kling3api'))).toBe(false);

    // The middle one is done first (passed the provider over): the youngest still waits for the oldest.
    middle.release('kling3api');
    expect(await settled(youngest.waitFor('kling3api'))).toBe(false);
    oldest.release('kling3api');
    expect(await settled(youngest.waitFor('kling3api'))).toBe(true);
  });

  it('never holds up a task for providers it does not share with the older ones', async () => {
    const line = new ClaimLine();
    const older = line.join(['freepik', 'kling3api']);
    const other = line.join(['legacy']);
    const younger = line.join(['kling3api']);
    expect(await settled(other.waitFor('legacy'))).toBe(true);
    // Done with freepik only: kling3api is still the older task's turn.
    older.release('freepik');
    expect(await settled(younger.waitFor('kling3api'))).toBe(false);
    older.releaseAll();
    expect(await settled(younger.waitFor('kling3api'))).toBe(true);
  });

  it('gives every turn on at once when a task is done claiming, and releasing twice is harmless', async () => {
    const line = new ClaimLine();
    const older = line.join(['freepik', 'kling3api', 'freepik']);
    const younger = line.join(['freepik', 'kling3api']);
    older.releaseAll();
    older.release('kling3api');
    older.releaseAll();
    expect(await settled(Promise.all([younger.waitFor('freepik'), younger.waitFor('kling3api')]))).toBe(true);
  });
});
