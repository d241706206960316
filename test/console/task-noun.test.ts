/**
 * The console names a task by what it makes from its operation, with its own copy of the list of
 * image operations (its bundle carries none of the server's code): the copy must follow the list.
 */
import { describe, expect, it } from 'vitest';
import { holderText, taskNoun } from '../../console/src/display.js';
import { OPERATIONS } from '../../src/core/model/canonical.js';
import { outputTypeOf } from '../../src/core/model/capabilities.js';

describe('the console name of a task', () => {
  it('is "Image" for every operation whose output is an image and "Video" for the others', () => {
    const named = OPERATIONS.map((operation) => `${operation}: ${taskNoun({ operation })}`);
    expect(named).toEqual(OPERATIONS.map((operation) => `${operation}: ${outputTypeOf(operation) === 'image' ? 'Image' : 'Video'}`));
  });
});

describe('the console name of the provider holding a task', () => {
  const refused = [{ provider: 'freepik', outcome: 'failed' }] as never;
  it('says no provider accepted a task that ended refused by every provider tried, naming the last', () => {
    expect(holderText({ status: 'failed', provider: 'freepik', provider_task_id: null, attempts: refused })).toBe('— (no provider accepted it; freepik was tried last)');
  });

  it('says "not yet" of a task still waiting for a provider after one refused it, not as if it were over', () => {
    expect(holderText({ status: 'queued', provider: 'freepik', provider_task_id: null, attempts: refused })).toBe('— (no provider has accepted it yet; freepik was tried last)');
    expect(holderText({ status: 'queued', provider: null, provider_task_id: null, attempts: [] })).toBe('— (no provider has accepted it yet)');
  });

  it('names the provider holding an accepted task', () => {
    expect(holderText({ status: 'processing', provider: 'kling3api', provider_task_id: 'n75_1', attempts: [{ provider: 'kling3api', outcome: 'accepted' }] as never })).toBe('kling3api');
  });
});
