/**
 * `usage` says which figures are the price list's estimates (a provider that has not reported its
 * charge, as Freepik never does), as `list` marks a task's (`~`), and the period the report covers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { loopbackServer } from '../support/raw-answer.js';

const FIGURES = { currency: 'USD', succeeded: 0, failed: 0, canceled: 0, in_progress: 0, video_seconds: 0, tasks_at_risk: 0, credits_at_risk: 0, currency_amount_at_risk: 0 };

/** A row of `tasks` tasks, `estimated` of them (credits and money) estimated and the rest reported. */
function row(keys: Record<string, string>, estimated: { credits: number; amount: number }, reported: { credits: number; amount: number }, tasks: number) {
  return {
    ...keys,
    ...FIGURES,
    tasks,
    succeeded: tasks,
    credits: estimated.credits + reported.credits,
    currency_amount: Math.round((estimated.amount + reported.amount) * 1e6) / 1e6,
    credits_estimated: estimated.credits,
    credits_reported: reported.credits,
    currency_amount_estimated: estimated.amount,
    currency_amount_reported: reported.amount,
  };
}

describe('kling-gateway usage: estimates and period', () => {
  let server: { base: string; close: () => Promise<void> };
  let rows: unknown[] = [];

  beforeAll(async () => {
    server = await loopbackServer((req, res) => {
      req.resume();
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/v1/usage') {
        res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404 }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          object: 'usage',
          from: '2026-11-01T00:00:00.000Z',
          to: '2026-12-06T00:00:00.000Z',
          group_by: (url.searchParams.get('group_by') ?? '').split(',').filter(Boolean),
          tenant: 'acme',
          data: rows,
          budgets: [],
          format: 'json',
        }),
      );
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  const env = () => ({ KLING_GATEWAY_URL: server?.base ?? '', KLING_GATEWAY_API_KEY: 'key-123' });

  it('marks the credits and cost of a provider that reported no charge with ~, as list does, a mixed row too, and says what ~ means', async () => {
    rows = [
      row({ provider: 'freepik' }, { credits: 56, amount: 0.56 }, { credits: 0, amount: 0 }, 1),
      row({ provider: 'kling3api' }, { credits: 0, amount: 0 }, { credits: 400, amount: 0.4 }, 1),
    ];
    const byProvider = await runCliCaptured(['usage', '--group-by', 'provider'], { env: env() });
    expect(byProvider.code).toBe(0);
    expect(byProvider.stdout).toMatch(/^freepik\s+1\s+1\s+0\s+0\s+56~\s+\$0\.56~$/m);
    expect(byProvider.stdout).toMatch(/^kling3api\s+1\s+1\s+0\s+0\s+400\s+\$0\.40$/m);
    expect(byProvider.stderr).toContain('~ = estimated, wholly or in part (the provider has not reported its charge)');

    // Both providers' tasks in one row: part of its figure is an estimate.
    rows = [row({ model: 'kling-v3' }, { credits: 56, amount: 0.56 }, { credits: 400, amount: 0.4 }, 2)];
    const byModel = await runCliCaptured(['usage', '--group-by', 'model'], { env: env() });
    expect(byModel.stdout).toMatch(/^kling-v3\s+2\s+2\s+0\s+0\s+456~\s+\$0\.96~$/m);

    // Nothing estimated: no mark, no legend.
    rows = [row({ provider: 'kling3api' }, { credits: 0, amount: 0 }, { credits: 400, amount: 0.4 }, 1)];
    const reported = await runCliCaptured(['usage', '--group-by', 'provider'], { env: env() });
    expect(reported.stdout).not.toContain('~');
    expect(reported.stderr).not.toContain('~');
  });

  it('says the period the report covers, from the gateway\'s answer, with or without rows', async () => {
    rows = [row({ provider: 'kling3api' }, { credits: 0, amount: 0 }, { credits: 400, amount: 0.4 }, 1)];
    const result = await runCliCaptured(['usage', '--group-by', 'provider'], { env: env() });
    expect(result.stderr).toContain('from 2026-11-01 00:00:00Z to 2026-12-06 00:00:00Z (UTC, to excluded)');
    // The table stays the first thing on stdout, for scripts that cut it.
    expect(result.stdout).toMatch(/^PROVIDER\s+TASKS/);

    rows = [];
    const empty = await runCliCaptured(['usage'], { env: env() });
    expect(empty.stdout).toContain('no usage from 2026-11-01 00:00:00Z to 2026-12-06 00:00:00Z (UTC, to excluded)');
  });
});
