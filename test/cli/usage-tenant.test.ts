/**
 * `usage` for an admin key: every group key the API takes (`tenant` included) is in the help, and
 * `--tenant` reads one tenant, as `GET /v1/usage?tenant=` does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { loopbackServer } from '../support/raw-answer.js';

describe('kling-gateway usage for an admin key', () => {
  let server: { base: string; close: () => Promise<void> };
  const asked: URLSearchParams[] = [];

  beforeAll(async () => {
    server = await loopbackServer((req, res) => {
      req.resume();
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/v1/usage') {
        asked.push(url.searchParams);
        const groupBy = (url.searchParams.get('group_by') ?? '').split(',').filter(Boolean);
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            object: 'usage',
            from: '2026-11-01T00:00:00.000Z',
            to: '2026-12-01T00:00:00.000Z',
            group_by: groupBy,
            tenant: url.searchParams.get('tenant'),
            data: [
              {
                tenant: 'acme',
                provider: 'freepik',
                currency: 'USD',
                tasks: 2,
                succeeded: 2,
                failed: 0,
                canceled: 0,
                in_progress: 0,
                video_seconds: 10,
                credits: 112,
                currency_amount: 1.12,
                tasks_at_risk: 0,
              },
            ],
            budgets: [],
          }),
        );
        return;
      }
      res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404 }));
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('--tenant reads one tenant, grouped by tenant as asked', async () => {
    const result = await runCliCaptured(['usage', '--tenant', 'acme', '--group-by', 'tenant,provider'], {
      env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'admin-key-123' },
    });
    expect([result.code, result.stderr]).toEqual([0, 'usage from 2026-11-01 00:00:00Z to 2026-12-01 00:00:00Z (UTC, to excluded)\n']);
    expect(asked.at(-1)?.get('tenant')).toBe('acme');
    expect(asked.at(-1)?.get('group_by')).toBe('tenant,provider');
    expect(result.stdout).toMatch(/^TENANT\s+PROVIDER\s+TASKS/);
    expect(result.stdout).toMatch(/^acme\s+freepik\s+2/m);
  });

  it('--help names every group key the API takes, tenant with what it needs', async () => {
    const help = await runCliCaptured(['usage', '--help'], { env: {} });
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('comma-separated: provider, account, model, operation, quality, day, tenant (admin keys)');
    expect(help.stdout).toMatch(/--tenant <name>/);
  });

  it('a --group-by key the API does not have is a command-line error naming the flag and the keys (exit 2), asked of no gateway', async () => {
    const before = asked.length;
    const result = await runCliCaptured(['usage', '--group-by', 'provider,nope'], { env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'admin-key-123' } });
    // (Before, the gateway's 400 said so: exit 3.)
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe(
      "error: option '--group-by <fields>' argument 'provider,nope' is invalid. nope is not a group key: give provider, account, model, operation, quality, day, tenant (admin keys)",
    );
    expect(asked.length).toBe(before);
  });

  it('--csv with --json asks for two formats: a command-line error (exit 2) naming both, asked of no gateway', async () => {
    const before = asked.length;
    const result = await runCliCaptured(['usage', '--csv', '--json'], { env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'admin-key-123' } });
    // (Before, --json was ignored: CSV on stdout, exit 0, where a script expected JSON.)
    expect([result.code, result.stdout]).toEqual([2, '']);
    expect(result.stderr.split('\n')[0]).toBe('error: --csv and --json each ask for a format of their own: give one');
    expect(asked.length).toBe(before);
  });
});
