/** What a promise that must fail with an `UpstreamError` failed with (the test fails otherwise). */
import { expect } from 'vitest';
import { UpstreamError } from '../../src/core/upstream/upstream-error.js';

export async function upstreamFailure(promise: Promise<unknown>): Promise<UpstreamError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(UpstreamError);
  return error as UpstreamError;
}
