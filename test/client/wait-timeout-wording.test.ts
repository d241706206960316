/**
 * `WaitTimeoutError`'s message names the time the wait was given, as given: a `timeoutMs` of 1500
 * (the CLI's `--timeout 1.5`) said "after 2 s", and one of 400 "still queued after 0 s".
 */
import { expect, it } from 'vitest';
import { WaitTimeoutError, type Task } from '../../packages/client/src/index.js';

const task = { id: 'vid_1', status: 'processing' } as Task;

it.each([
  [1_500, 'video vid_1 is still processing after 1.5 s'],
  [400, 'video vid_1 is still processing after 0.4 s'],
  [1_800_000, 'video vid_1 is still processing after 1800 s'],
  [2_000, 'video vid_1 is still processing after 2 s'],
])('a wait of %d ms says: %s', (timeoutMs, message) => {
  expect(new WaitTimeoutError(task, timeoutMs).message).toBe(message);
});
