/**
 * Which providers a start puts on a simulator (SPEC §6, §7 "Safe defaults"): with no upstream key
 * all of them (the sandbox); once one provider has a key, none by default, so a real request never
 * lands on a simulator because a key was not injected; `sandbox.simulators` says otherwise.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { ManualClock } from '../../src/core/clock.js';
import { PROVIDER_IDS, PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox.js';

const started: Sandbox[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((sandbox) => sandbox.close()));
});

/** What each provider's endpoint is at start: `simulated`, `live`, `disabled` (with its reason) or absent (turned off). */
async function startWith(extra: Record<string, unknown>): Promise<Record<string, string>> {
  const config = parseConfig(
    {
      server: { public_url: 'https://gateway.example.com' },
      database: { url: 'sqlite::memory:' },
      auth: { api_keys: 'acme:acme-key-123' },
      tenants: { acme: { webhook_secret: 'whsec_YWNtZS1zZWNyZXQta2V5' } },
      ...extra,
    },
    {},
    PROVIDER_IDS,
  );
  const sandbox = await startSandbox(config, PROVIDERS, new ManualClock(0));
  started.push(sandbox);
  return Object.fromEntries(
    PROVIDER_IDS.map((id) => {
      const endpoint = sandbox.endpoints.get(id);
      const state = !endpoint ? 'off' : endpoint.simulated ? 'simulated' : endpoint.disabledReason ? 'disabled' : 'live';
      return [id, state];
    }),
  );
}

const FREEPIK_LIVE = { freepik: { api_key: 'fpk-live-key-123', base_url: 'https://api.freepik.com' } };

describe('simulators at start', () => {
  it('simulates every provider with no upstream key', async () => {
    expect(await startWith({})).toEqual({ freepik: 'simulated', kling3api: 'simulated', 'kling-legacy': 'simulated' });
  });

  it('disables the keyless providers once one has a key, unless sandbox.simulators is always', async () => {
    expect(await startWith({ providers: FREEPIK_LIVE })).toEqual({ freepik: 'live', kling3api: 'disabled', 'kling-legacy': 'disabled' });
    expect(await startWith({ providers: FREEPIK_LIVE, sandbox: { simulators: 'always' } })).toEqual({
      freepik: 'live',
      kling3api: 'simulated',
      'kling-legacy': 'simulated',
    });
  });

  it('runs no simulator with sandbox.simulators never, and none for a provider turned off', async () => {
    expect(await startWith({ sandbox: { simulators: 'never' } })).toEqual({ freepik: 'disabled', kling3api: 'disabled', 'kling-legacy': 'disabled' });
    expect(await startWith({ providers: { kling3api: { enabled: false } } })).toEqual({ freepik: 'simulated', kling3api: 'off', 'kling-legacy': 'simulated' });
  });

  it('asks no simulator host (sandbox.simulators_url) when no provider needs a simulator', async () => {
    // Compose sets the URL always: a live deployment whose simulator host is not running starts at
    // once, rather than failing after ten seconds of asking a host it has no use for.
    const closed = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const started = Date.now();
    expect(await startWith({ providers: FREEPIK_LIVE, sandbox: { simulators_url: `http://127.0.0.1:${closed}` } })).toEqual({
      freepik: 'live',
      kling3api: 'disabled',
      'kling-legacy': 'disabled',
    });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('keeps the sandbox when the only key belongs to a provider turned off: the others run their simulators', async () => {
    // The provider turned off keeps its key (its tasks in flight are still followed), and takes no new work.
    expect(await startWith({ providers: { freepik: { ...FREEPIK_LIVE.freepik, enabled: false } } })).toEqual({
      freepik: 'live',
      kling3api: 'simulated',
      'kling-legacy': 'simulated',
    });
  });
});
