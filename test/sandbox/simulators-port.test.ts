/**
 * `SIMULATORS_PORT` for `npm run simulators`: the control API's port, the simulators on the next
 * ones. A value no port can be is refused naming the variable, not with node's words about
 * whichever port it reached ("options.port should be >= 0 and < 65536. Received … (NaN)").
 */
import { expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config.js';
import { simulatorsPort } from '../../src/sandbox/simulator-host.js';

it('takes 9100 when unset or empty, and any port that leaves room for the simulators after it', () => {
  expect(simulatorsPort(undefined, 3)).toBe(9100);
  expect(simulatorsPort('', 3)).toBe(9100);
  expect(simulatorsPort(' 18500 ', 3)).toBe(18500);
  expect(simulatorsPort('0', 3)).toBe(0);
  expect(simulatorsPort('65532', 3)).toBe(65532);
});

it('refuses a value no port can be, naming SIMULATORS_PORT and what it takes', () => {
  for (const value of ['abc', '-1', '91OO', '9100.5', '65533', '70000']) {
    let refused: unknown;
    try {
      simulatorsPort(value, 3);
    } catch (error) {
      refused = error;
    }
    expect(refused, value).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).problems, value).toEqual([
      `SIMULATORS_PORT must be a whole number from 1 to 65532 (the 3 simulators take the ports after it), or 0 for any free ports (got "${value}")`,
    ]);
  }
});
