/**
 * The console names a task by what it makes from its operation, with its own copy of the list of
 * image operations (its bundle carries none of the server's code): the copy must follow the list.
 */
import { describe, expect, it } from 'vitest';
import { taskNoun } from '../../console/src/display.js';
import { OPERATIONS } from '../../src/core/model/canonical.js';
import { outputTypeOf } from '../../src/core/model/capabilities.js';

describe('the console name of a task', () => {
  it('is "Image" for every operation whose output is an image and "Video" for the others', () => {
    const named = OPERATIONS.map((operation) => `${operation}: ${taskNoun({ operation })}`);
    expect(named).toEqual(OPERATIONS.map((operation) => `${operation}: ${outputTypeOf(operation) === 'image' ? 'Image' : 'Video'}`));
  });
});
