/**
 * The `pattern`s of the published API document are run by whoever validates requests against it:
 * a proxy or API gateway in front of this one, a client library, a contract test. Each must answer
 * a hostile value at once. The `group_by` pattern had optional whitespace on both sides of an
 * optional key inside a repeated group, so a run of `,  ` ending in a stray character made it try
 * every split of every run of spaces: about a second at 48 characters, doubling with each space,
 * far past any bound at the 200 the document allows, on input any caller chooses.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cpuTimer } from '../support/cpu-time.js';

const document = JSON.parse(readFileSync(new URL('../../openapi/gateway.json', import.meta.url), 'utf8')) as unknown;

function patternsOf(node: unknown, found = new Set<string>()): Set<string> {
  if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'pattern' && typeof value === 'string') found.add(value);
      else patternsOf(value, found);
    }
  }
  return found;
}

/** Runs of what patterns repeat (separators, spaces, digits, letters, a key), cut to `length`, ending in a character none takes. */
function hostileValues(length: number): string[] {
  const pumps = [' ', ',', ', ', ',  ', ' , ', '\t,', 'a', '0', '00:', '/', '-', '.', 'provider ', 'provider,', 'model , '];
  return pumps.flatMap((pump) => {
    const run = pump.repeat(Math.ceil(length / pump.length)).slice(0, length);
    return [`${run}!`, `${run}\u0000`, `provider${run}!`];
  });
}

describe('the patterns of the API document', () => {
  const patterns = [...patternsOf(document)];

  it('there are some, among them the usage query group_by', () => {
    expect(patterns.some((pattern) => pattern.includes('provider|account'))).toBe(true);
  });

  it.each(patterns.map((pattern) => [pattern]))('%s answers hostile values at once', (source) => {
    // The flag a JSON Schema validator compiles them with (Ajv: `u`).
    const pattern = new RegExp(source, 'u');
    for (const value of hostileValues(48)) {
      // CPU time: the wall clock also counts the time a loaded machine gives this process no core.
      const cpuMs = cpuTimer();
      pattern.test(value);
      expect(cpuMs(), JSON.stringify(value)).toBeLessThan(50);
    }
  });
});
