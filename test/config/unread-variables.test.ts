/**
 * A variable the operator meant for the gateway but misspelt (`FREEPIK_APIKEY`) is read by
 * nothing: without a warning, a misspelt upstream key silently leaves the gateway in the sandbox,
 * answering with simulated videos. These are the variables the start and `check-config` warn about.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { unreadVariables, unreadVariableWarning } from '../../src/config/unread-variables.js';

const SHIPPED = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), '../../config.yaml'), 'utf8');

describe('variables the configuration does not read', () => {
  it('names a misspelt variable with the one the shipped config.yaml reads', () => {
    expect(
      unreadVariables(SHIPPED, {
        FREEPIK_APIKEY: 'fpk-live-secret-value',
        GATEWAY_API_KEY: 'acme:acme-key-123456',
        KLING3API_API_KYE: 'k3-secret',
        metrics_token: 'token-123456',
        DATABASE_URI: 'postgres://db/gateway',
        GATEWAY_WEBHOOK_SECRET: 'acme:whsec_abc',
      }),
    ).toEqual([
      { name: 'DATABASE_URI', meant: 'DATABASE_URL' },
      { name: 'FREEPIK_APIKEY', meant: 'FREEPIK_API_KEY' },
      { name: 'GATEWAY_API_KEY', meant: 'GATEWAY_API_KEYS' },
      { name: 'GATEWAY_WEBHOOK_SECRET', meant: 'GATEWAY_WEBHOOK_SECRETS' },
      { name: 'KLING3API_API_KYE', meant: 'KLING3API_API_KEY' },
      { name: 'metrics_token', meant: 'METRICS_TOKEN' },
    ]);
  });

  it('leaves alone the variables it reads, those read directly, empty ones and unrelated ones', () => {
    expect(
      unreadVariables(SHIPPED, {
        FREEPIK_API_KEY: 'fpk',
        GATEWAY_API_KEYS: 'acme:acme-key-123456',
        PUBLIC_URL: 'https://gateway.example.com',
        WORKERS: '2',
        KLING_GATEWAY_API_KEY: 'acme-key-123456',
        KLING_GATEWAY_URL: 'https://gateway.example.com',
        SIMULATORS_PORT: '9100',
        FREEPIK_APIKEY: '',
        PATH: '/usr/bin',
        HOSTNAME: 'box',
        NODE_OPTIONS: '--max-old-space-size=160',
        AWS_REGION: 'eu-west-1',
        PGPASSWORD: 'x',
      }),
    ).toEqual([]);
  });

  it('reads the names of the file it is given, defaults and quoted flow values included, not its comments', () => {
    const file = [
      'server:',
      '  public_url: ${PUBLIC_URL:-http://127.0.0.1:${GATEWAY_PORT:-8080}}',
      '# tenants: { acme: { webhook_secret: ${ACME_WEBHOOK_SECRET} } }',
      'providers:',
      '  freepik:',
      '    accounts:',
      '      - { id: main, api_key: "${FREEPIK_KEY_1}" }',
    ].join('\n');
    expect(unreadVariables(file, { GATEWAY_PORTS: '1', FREEPIK_KEY_2: 'k', ACME_WEBHOOK_SECRETS: 'whsec_x' })).toEqual([
      { name: 'FREEPIK_KEY_2', meant: 'FREEPIK_KEY_1' },
      { name: 'GATEWAY_PORTS', meant: 'GATEWAY_PORT' },
    ]);
    expect(unreadVariables('server: [unclosed', { FREEPIK_APIKEY: 'k' })).toEqual([]);
  });

  it('names a variable written with its underscores left out or added, however many', () => {
    expect(unreadVariables(SHIPPED, { FREEPIKAPIKEY: 'fpk-live-secret-value', KLING_3_API_API_KEY: 'k3-secret' })).toEqual([
      { name: 'FREEPIKAPIKEY', meant: 'FREEPIK_API_KEY' },
      { name: 'KLING_3_API_API_KEY', meant: 'KLING3API_API_KEY' },
    ]);
  });

  it('says which variable is ignored and which was meant, never the value', () => {
    const warning = unreadVariableWarning({ name: 'FREEPIK_APIKEY', meant: 'FREEPIK_API_KEY' }, 'config.yaml');
    expect(warning).toBe('environment variable FREEPIK_APIKEY is set, but config.yaml reads no such variable (did you mean FREEPIK_API_KEY?): it is ignored');
  });
});
