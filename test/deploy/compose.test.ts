/**
 * `deploy/` read as Docker Compose would (no engine here): the services the scale-out needs,
 * the migration before the replicas, health checks, and every file and command it names.
 * `npm run deploy:check` also runs the deployment with local processes.
 */
import { mkdtempSync, cpSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkDeployment, composeDurationMs } from '../../scripts/deploy-check.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('deploy/docker-compose.yml', () => {
  it('describes PostgreSQL, a migration that runs once first, three replicas and a balancer, all checked', () => {
    const { deployment, problems } = checkDeployment(ROOT);
    expect(problems).toEqual([]);
    expect(deployment.gateways).toEqual(['gateway-1', 'gateway-2', 'gateway-3']);
    expect(deployment.upstreams).toEqual(['gateway-1:8080', 'gateway-2:8080', 'gateway-3:8080']);
    expect(deployment.services['gateway-2']!.environment?.SIMULATORS_URL).toBe('http://simulators:9100');
  });

  it('reads Compose durations', () => {
    expect([composeDurationMs('40s'), composeDurationMs('1m30s'), composeDurationMs('500ms'), composeDurationMs('1h')]).toEqual([40_000, 90_000, 500, 3_600_000]);
    expect(composeDurationMs('forty')).toBeNaN();
  });

  it('finds what is wrong with a broken copy', () => {
    const copy = mkdtempSync(join(tmpdir(), 'kling-deploy-test-'));
    for (const part of ['deploy', 'src', 'bin', 'Dockerfile', 'config.yaml']) cpSync(join(ROOT, part), join(copy, part), { recursive: true });
    const compose = readFileSync(join(copy, 'deploy/docker-compose.yml'), 'utf8')
      .replace('condition: service_completed_successfully', 'condition: service_started')
      .replace('"bin/kling-gateway.js", "migrate"', '"dist/src/migrations-runner.js"');
    writeFileSync(
      join(copy, 'deploy/docker-compose.yml'),
      compose.replace(/^\s*stop_grace_period: .*\n/m, '').replace(/^\s*KLING_LEGACY_BASE_URL: .*\n/m, '').replace(/^\s*S3_SECRET_ACCESS_KEY: .*\n/m, ''),
    );
    writeFileSync(join(copy, 'deploy/nginx.conf'), readFileSync(join(copy, 'deploy/nginx.conf'), 'utf8').replace('server gateway-3:8080', 'server gateway-4:8080'));
    const { problems } = checkDeployment(copy);
    expect(problems).toEqual(
      expect.arrayContaining([
        'gateway-1 does not wait for the migration to complete',
        'migrate: dist/src/migrations-runner.js is built from src/migrations-runner.ts, which does not exist',
        'nginx.conf does not send traffic to gateway-3:8080',
        'nginx.conf names gateway-4:8080, which is no gateway service',
        'gateway-1: stop_grace_period (Docker default 10s) is shorter than its graceful stop (44s); Docker would kill the drain',
        'gateway-3 is not given S3_SECRET_ACCESS_KEY, KLING_LEGACY_BASE_URL (config.yaml reads them)',
      ]),
    );
  });
});
