/**
 * What the start refuses once it knows the providers' prices (README, Configuration; the same
 * as `kling-gateway check-config`): `cheapest` over providers pricing in different currencies,
 * a budget in a currency a provider does not price in, an `events_url` webhooks may not reach.
 * The start stops with exit 78 and names the file it read, whether it runs one process or the
 * workers of `WORKERS`, which would otherwise be refused alike at every replacement. A start
 * that fails in the workers for another reason (a storage folder that cannot be written) stops
 * the gateway as it stops a lone process.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { gatewayExit } from '../support/gateway-process.js';

/** A configuration file of the operator's own (not `config.yaml`) that asks `cheapest` over USD and EUR prices. */
function mixedCurrencyCheapest(): { env: Record<string, string>; file: string } {
  const folder = mkdtempSync(join(tmpdir(), 'kg-start-refusals-'));
  const file = join(folder, 'production.yaml');
  writeFileSync(
    file,
    [
      'server: { port: 0, host: 127.0.0.1, public_url: "http://127.0.0.1:8080" }',
      `database: { url: "sqlite:${join(folder, 'gw.db')}" }`,
      'auth: { api_keys: "dev:dev-key" }',
      'routing: { strategy: cheapest }',
      `storage: { filesystem: { path: "${join(folder, 'outputs')}" } }`,
      'log: { level: silent }',
      'providers: { kling3api: { pricing: { currency: EUR } } }',
    ].join('\n'),
  );
  return { env: { CONFIG_FILE: file }, file };
}

it('refuses cheapest over mixed currencies with exit 78, naming the file it read', { timeout: 40_000 }, async () => {
  const { env, file } = mixedCurrencyCheapest();
  const refused = await gatewayExit(env, [], 30_000);
  expect(refused.stderr).toContain(`${file} is not valid`);
  expect(refused.stderr).toContain('routing.strategy: cheapest compares estimated amounts');
  expect(refused.code).toBe(78);
});

it('stops with exit 78 when its WORKERS are refused the configuration, instead of replacing them forever', { timeout: 60_000 }, async () => {
  const { env, file } = mixedCurrencyCheapest();
  const refused = await gatewayExit({ ...env, WORKERS: '2' }, [], 45_000);
  expect(refused.stderr).toContain(`${file} is not valid`);
  expect(refused.stderr).toContain('routing.strategy: cheapest compares estimated amounts');
  expect(refused.code).toBe(78);
});

it('stops when its WORKERS cannot start (a storage folder that cannot be written), instead of replacing them forever', { timeout: 60_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-start-refusals-'));
  const notAFolder = join(folder, 'a-file');
  writeFileSync(notAFolder, '');
  const failed = await gatewayExit(
    { WORKERS: '2', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: `sqlite:${join(folder, 'gw.db')}`, STORAGE_PATH: join(notAFolder, 'outputs'), LOG_LEVEL: 'silent' },
    [],
    45_000,
  );
  expect(failed.stderr).toContain('storage.filesystem.path');
  expect(failed.code).toBe(1);
});

it('names server.host when the start cannot listen there (a name with no address, an address of another machine), with WORKERS too', { timeout: 60_000 }, async () => {
  const base = () => {
    const folder = mkdtempSync(join(tmpdir(), 'kg-start-refusals-'));
    return { PORT: '0', DATABASE_URL: `sqlite:${join(folder, 'gw.db')}`, STORAGE_PATH: join(folder, 'outputs'), LOG_LEVEL: 'silent' };
  };
  const [unknownName, otherMachine, workers] = await Promise.all([
    gatewayExit({ ...base(), HOST: 'no-such-host.invalid' }, [], 45_000),
    gatewayExit({ ...base(), HOST: '192.0.2.1', WORKERS: '2' }, [], 45_000),
    // TEST-NET-1: an address no machine here holds.
    gatewayExit({ ...base(), HOST: '192.0.2.1' }, [], 45_000),
  ]);
  expect(unknownName.stderr).toMatch(/server\.host "no-such-host\.invalid" has no address \(getaddrinfo (ENOTFOUND|EAI_AGAIN) no-such-host\.invalid\): set HOST to a name or address of this machine \(0\.0\.0\.0: every one\)/);
  expect(unknownName.code).toBe(1);
  expect(otherMachine.stderr).toContain('server.host "192.0.2.1" is not an address of this machine (listen EADDRNOTAVAIL: address not available 192.0.2.1): set HOST to a name or address of this machine (0.0.0.0: every one)');
  expect(otherMachine.code).toBe(1);
  // The primary of WORKERS listens for them: the same words.
  expect(workers.stderr).toContain('server.host "192.0.2.1" is not an address of this machine');
  expect(workers.code).toBe(1);
});
