/**
 * A database URL as `check-config` and `migrate` show it: never its password, however the
 * password is written (a generated one often holds `/`, `+` or `#`, unescaped in the URL).
 */
import { expect, it } from 'vitest';
import { databaseUrlProblem, describeDatabaseUrl } from '../../src/store/database-url.js';

const PASSWORD = 'LEAKCANARY';

it.each([
  ['postgres://gw:pw-LEAKCANARY@db:5432/gateway', 'postgres://gw:…@db:5432/gateway'],
  ['postgres://gw:p@ss-LEAKCANARY@db:5432/gateway', 'postgres://gw:…@db:5432/gateway'],
  // Unescaped, a `/`, `?` or `#` ends the user part for URL parsers (the URL does not open), but it is the password still.
  ['postgres://gw:pa/ss-LEAKCANARY@db:5432/gateway', 'postgres://gw:…@db:5432/gateway'],
  ['postgres://gw:pa#ss-LEAKCANARY@db:5432/gateway', 'postgres://gw:…@db:5432/gateway'],
  ['postgres://gw:pa?ss-LEAKCANARY@db:5432/gateway', 'postgres://gw:…@db:5432/gateway'],
  ['postgres://gw:base64/+LEAKCANARY/=@db/gateway?sslmode=require', 'postgres://gw:…@db/gateway?sslmode=require'],
  ['postgres://db:5432/gateway?user=gw&password=LEAKCANARY', 'postgres://db:5432/gateway?user=gw&password=…'],
  // The query's names are decoded as node-postgres decodes them.
  ['postgres://db:5432/gateway?user=gw&pass%77ord=LEAKCANARY', 'postgres://db:5432/gateway?user=gw&pass%77ord=…'],
  ['postgres://db/gateway?ssl%70assword=LEAKCANARY&sslmode=require', 'postgres://db/gateway?ssl%70assword=…&sslmode=require'],
  // A user name may hold an `@` too: the password runs from its first `:` to the last `@`.
  ['postgres://gate@way:LEAKCANARY@db:5432/gateway', 'postgres://gate@way:…@db:5432/gateway'],
  // A query password holding an `@` is not taken for the end of a user part.
  ['postgres://gw@db:5432/gateway?password=x@LEAKCANARY', 'postgres://gw@db:5432/gateway?password=…'],
  ['postgres://gw:p@ss@db/gateway?password=q@LEAKCANARY&sslmode=require', 'postgres://gw:…@db/gateway?password=…&sslmode=require'],
])('%s is shown as %s', (url, shown) => {
  expect(describeDatabaseUrl(url)).toBe(shown);
  expect(describeDatabaseUrl(url)).not.toContain(PASSWORD);
});

it('a URL without a password is shown as it is', () => {
  expect(describeDatabaseUrl('postgres://gateway@db:5432/gateway')).toBe('postgres://gateway@db:5432/gateway');
  expect(describeDatabaseUrl('sqlite:./data/kling-gateway.db')).toBe('sqlite:./data/kling-gateway.db');
  expect(describeDatabaseUrl('postgres://gw@db/gateway?application_name=a@b')).toBe('postgres://gw@db/gateway?application_name=a@b');
});

it('a refused URL is quoted without its user part, however its password is written', () => {
  for (const url of ['mysql://gw:pw-LEAKCANARY@db/gateway', 'mysql://gw:pa/ss-LEAKCANARY@db/gateway', 'mysql://db/gateway?pass%77ord=LEAKCANARY']) {
    expect(databaseUrlProblem(url)).toMatch(/^must start with sqlite: or postgres:\/\//);
    expect(databaseUrlProblem(url)).not.toContain(PASSWORD);
  }
});
