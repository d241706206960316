/**
 * `npm start` with an upstream key set (a live deployment) and the shipped sandbox key or
 * webhook secret still in use refuses to start: exit 78, with the problem on one line that names
 * the variable to set. The sandbox (no upstream key) keeps starting with nothing configured.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { gatewayExit } from '../support/gateway-process.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** What every start here runs with: any port, a fresh SQLite file. */
function basics(): Record<string, string> {
  return { PORT: '0', HOST: '127.0.0.1', DATABASE_URL: `sqlite:${join(mkdtempSync(join(tmpdir(), 'kg-live-start-')), 'gw.db')}` };
}

/** `npm start`'s entry in a process of its own, with `env` over the basics. */
function spawnGateway(env: Record<string, string>) {
  return spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src/main.ts')], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', ...basics(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function start(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return gatewayExit({ ...basics(), LOG_LEVEL: 'silent', ...env });
}

it('refuses a live start with the shipped key, naming GATEWAY_API_KEYS', { timeout: 60_000 }, async () => {
  const refused = await start({ FREEPIK_API_KEY: 'fpk-live-secret-value' });
  expect(refused.code).toBe(78);
  const problem = refused.stderr.split('\n').filter((line) => line.includes('dev-key'));
  expect(problem).toHaveLength(1);
  expect(problem[0]).toContain('set GATEWAY_API_KEYS');
  expect(refused.stderr).not.toContain('fpk-live-secret-value');
});

it('refuses a live start with the shipped webhook secret, naming GATEWAY_WEBHOOK_SECRETS', { timeout: 60_000 }, async () => {
  const refused = await start({
    KLING3API_API_KEY: 'k3-live-secret-value',
    GATEWAY_API_KEYS: 'ops:ops-key-123456',
    GATEWAY_WEBHOOK_SECRETS: 'ops:whsec_ZGV2LXNhbmRib3gtc2VjcmV0LWNoYW5nZS1tZQ==',
  });
  expect(refused.code).toBe(78);
  expect(refused.stderr).toMatch(/tenants\.ops\.webhook_secret: the shipped sandbox webhook secret is in use .* set GATEWAY_WEBHOOK_SECRETS/);
});

it('says at start which providers a live deployment leaves disabled (no key, or turned off), not that they are live, which variables it ignores, and that its public URL is loopback', { timeout: 60_000 }, async () => {
  const child = spawnGateway(
    {
      DATABASE_URL: 'sqlite::memory:',
      STORAGE_PATH: mkdtempSync(join(tmpdir(), 'kg-live-start-')),
      GATEWAY_API_KEYS: 'ops:ops-key-123456',
      FREEPIK_API_KEY: 'fpk-live-secret-value',
      // A key, but turned off: /v1/providers and check-config say disabled, so must the start.
      KLING_LEGACY_API_KEY: 'legacy-live-secret-value',
      KLING_LEGACY_BASE_URL: 'https://aggregator.example.com',
      KLING_LEGACY_ENABLED: 'false',
      // Misspelt: read by nothing, so the start says so (without the value).
      KLING3API_APIKEY: 'k3-misspelt-secret-value',
    },
  );
  // Generous: the sources start through tsx, slow on a loaded machine.
  const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
  const ended = new Promise((resolve) => child.once('exit', resolve));
  try {
    let stdout = '';
    const listening = await new Promise<{ msg: string; url: string; providers: { id: string; mode: string }[] }>((resolve, reject) => {
      child.stdout.on('data', (chunk) => {
        stdout += chunk.toString();
        const line = stdout.split('\n').find((text) => text.includes('kling-gateway listening on'));
        if (line) resolve(JSON.parse(line));
      });
      child.on('exit', () => reject(new Error(`the gateway ended before listening:\n${stdout}`)));
    });
    const warning = stdout.split('\n').find((text) => text.includes('KLING3API_APIKEY'));
    expect(warning && JSON.parse(warning)).toMatchObject({
      level: 'warn',
      variable: 'KLING3API_APIKEY',
      msg: 'environment variable KLING3API_APIKEY is set, but config.yaml reads no such variable (did you mean KLING3API_API_KEY?): it is ignored',
    });
    expect(stdout).not.toContain('k3-misspelt-secret-value');
    // FREEPIK_WEBHOOK_SECRET not set: Freepik is followed by polling only.
    expect(stdout.split('\n').filter((text) => text.includes('providers.freepik.webhook_secret is not set')).map((text) => JSON.parse(text).level)).toEqual(['warn']);
    // PUBLIC_URL left at its loopback default: no upstream can call back there.
    expect(stdout.split('\n').filter((text) => text.includes('is a loopback address in a live deployment')).map((text) => JSON.parse(text).level)).toEqual(['warn']);
    // The ready line says where the console and the docs are, the two things a newcomer opens next.
    expect(listening.msg).toContain(`(console at ${listening.url}/console, docs at ${listening.url}/docs)`);
    expect(listening.providers).toEqual([
      { id: 'freepik', mode: 'live' },
      { id: 'kling3api', mode: 'disabled' },
      { id: 'kling-legacy', mode: 'disabled' },
    ]);
  } finally {
    clearTimeout(timer);
    child.kill('SIGTERM');
    // A child killed by a signal has no exit code: wait for its end, not for the code.
    await ended;
  }
});

// A provider block that check-config refuses with exit 78 (an unknown region or API shape, two
// kinds of credentials) stopped the start with exit 1 as a crash ("failed to start"), so a
// supervisor that gives up on 78 kept restarting it.
it('refuses a provider block it cannot place (unknown region or API shape, two kinds of credentials) with exit 78, as check-config does', { timeout: 90_000 }, async () => {
  for (const [env, problem] of [
    [{ KLING_LEGACY_REGION: 'mars' }, 'providers.kling-legacy.region: unknown region "mars"'],
    [{ KLING_LEGACY_ENABLED: 'false', KLING_LEGACY_API_SHAPE: 'soap' }, 'providers.kling-legacy.api_shape'],
    [{ KLING_LEGACY_API_KEY: 'fpk-live-secret-value', KLING_LEGACY_ACCESS_KEY: 'ak-live', KLING_LEGACY_SECRET_KEY: 'sk-live', GATEWAY_API_KEYS: 'ops:ops-key-123456' }, 'providers.kling-legacy.api_key: give api_key, or access_key and secret_key, not both'],
  ] as const) {
    const refused = await start(env);
    expect(refused.code, JSON.stringify(env)).toBe(78);
    expect(refused.stderr).toContain('is not valid:');
    expect(refused.stderr).toContain(`  - ${problem}`);
    expect(refused.stderr).not.toContain('failed to start');
    expect(refused.stderr).not.toContain('fpk-live-secret-value');
  }
});
