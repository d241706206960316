/**
 * A provider block that does not add up (an unknown region, an API shape the provider does not
 * speak) is refused by `check-config` and at start, quoting what it got, as every config refusal
 * does; a key pasted into the wrong variable is quoted nowhere.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { loadConfigFile, parseConfig } from '../../src/config/config.js';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDER_IDS, PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { runCliCaptured } from '../support/cli-run.js';

const CONFIG = join(fileURLToPath(new URL('../../', import.meta.url)), 'config.yaml');
const SECRET_KEY = 'sk-official-secret-9d2c41';
/** Kling's official credentials, the secret key pasted once more into the wrong variable. */
const misplaced = [
  { KLING_LEGACY_REGION: SECRET_KEY },
  { KLING_LEGACY_REGION: '', KLING_LEGACY_BASE_URL: 'https://api.klingai.com', KLING_LEGACY_API_SHAPE: SECRET_KEY },
].map((wrong) => ({ GATEWAY_API_KEYS: 'ops:ops-key-123', KLING_LEGACY_ACCESS_KEY: 'ak-official-7f3e', KLING_LEGACY_SECRET_KEY: SECRET_KEY, ...wrong }));

it('check-config names the field of a key put in region or api_shape without quoting the key', async () => {
  for (const env of misplaced) {
    for (const json of [false, true]) {
      const checked = await runCliCaptured([...(json ? ['--json'] : []), 'check-config', CONFIG], { env });
      expect(checked.code).toBe(78);
      const shown = `${checked.stdout}${checked.stderr}`;
      expect(shown).toMatch(/providers\.kling-legacy\.(region|api_shape)/);
      expect(shown).toContain('[redacted]');
      expect(shown).not.toContain(SECRET_KEY.slice(0, 8));
    }
  }
});

it('the start refuses such a block without quoting the key', async () => {
  for (const env of misplaced) {
    const config = loadConfigFile(CONFIG, env, PROVIDER_IDS);
    const refusal = await startSandbox(config, PROVIDERS, new ManualClock(0)).then(
      () => 'started',
      (error: Error) => error.message,
    );
    expect(refusal).toMatch(/^providers\.kling-legacy\.(region|api_shape): .*\[redacted\]/);
    expect(refusal).not.toContain(SECRET_KEY.slice(0, 8));
  }
});

it('refuses an unknown region or API shape in the sandbox too, before going live would', async () => {
  for (const env of [{ KLING_LEGACY_REGION: 'mars' }, { KLING_LEGACY_API_SHAPE: 'soap' }]) {
    const checked = await runCliCaptured(['check-config', CONFIG], { env });
    expect(checked.code).toBe(78);
    expect(`${checked.stdout}${checked.stderr}`).toMatch(/providers\.kling-legacy\.(region: unknown region "mars"|api_shape: kling-legacy speaks .* not "soap")/);
    const config = loadConfigFile(CONFIG, env, PROVIDER_IDS);
    const refusal = await startSandbox(config, PROVIDERS, new ManualClock(0)).then(
      (sandbox) => sandbox.close().then(() => 'started'),
      (error: Error) => error.message,
    );
    expect(refusal).toMatch(/^providers\.kling-legacy\.(region|api_shape): /);
  }
});

it('refuses a webhook secret given to a provider that signs no webhooks, at start and in check-config, naming the field', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'kg-unsigned-')), 'config.yaml');
  writeFileSync(
    file,
    readFileSync(CONFIG, 'utf8')
      .replace('    api_key: ${KLING3API_API_KEY:-}\n', '    api_key: ${KLING3API_API_KEY:-}\n    webhook_secret: ${KLING3API_WEBHOOK_SECRET:-}\n')
      .replace('    api_key: ${KLING_LEGACY_API_KEY:-}\n', '    api_key: ${KLING_LEGACY_API_KEY:-}\n    webhook_secret: ${KLING_LEGACY_WEBHOOK_SECRET:-}\n'),
  );
  const cases = [
    [{ KLING3API_WEBHOOK_SECRET: 'k3-whsec-123456' }, 'providers.kling3api.webhook_secret: kling3api sends no webhooks (its tasks are polled); leave it out'],
    [
      { KLING_LEGACY_WEBHOOK_SECRET: 'kl-whsec-123456', GATEWAY_API_KEYS: 'ops:ops-key-123', KLING_LEGACY_BASE_URL: 'https://api.example-reseller.com', KLING_LEGACY_API_KEY: 'kl-live-123456' },
      'providers.kling-legacy.webhook_secret: kling-legacy signs no webhooks (each callback carries a token of its own, which the gateway checks); leave it out',
    ],
  ] as const;
  for (const [env, message] of cases) {
    const config = loadConfigFile(file, env, PROVIDER_IDS);
    const refusal = await startSandbox(config, PROVIDERS, new ManualClock(0)).then(
      (sandbox) => sandbox.close().then(() => 'started'),
      (error: Error) => error.message,
    );
    expect(refusal).toBe(message);
    const checked = await runCliCaptured(['check-config', file], { env });
    expect(checked.code).toBe(78);
    expect(`${checked.stdout}${checked.stderr}`).toContain(message);
  }
});

it('check-config refuses an unknown region of a disabled provider as the start does, not "disabled" and exit 0', async () => {
  const env = { KLING_LEGACY_ENABLED: 'false', KLING_LEGACY_REGION: 'mars' };
  const config = loadConfigFile(CONFIG, env, PROVIDER_IDS);
  const refusal = await startSandbox(config, PROVIDERS, new ManualClock(0)).then(
    (sandbox) => sandbox.close().then(() => 'started'),
    (error: Error) => error.message,
  );
  expect(refusal).toMatch(/^providers\.kling-legacy\.region: unknown region "mars"/);
  const checked = await runCliCaptured(['check-config', CONFIG], { env });
  expect(`${checked.stdout}${checked.stderr}`).toContain(refusal);
  expect(checked.code).toBe(78);
});

it('a provider without regions whose file gives no base_url is told to give one, not to name a region it cannot have', async () => {
  // A file of one's own (no ${FREEPIK_BASE_URL:-…} default) with a Freepik key and no base_url.
  const config = parseConfig(
    {
      server: { public_url: 'https://gateway.example.com' },
      database: { url: 'sqlite::memory:' },
      auth: { api_keys: 'acme:acme-key-123' },
      providers: { freepik: { api_key: 'fpk-live-123456' } },
    },
    {},
    PROVIDER_IDS,
  );
  const refusal = await startSandbox(config, PROVIDERS, new ManualClock(0)).then(
    (sandbox) => sandbox.close().then(() => 'started'),
    (error: Error) => error.message,
  );
  expect(refusal).toBe('providers.freepik.base_url: required when credentials are set');
});
