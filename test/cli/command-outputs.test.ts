/**
 * What README's CLI section promises a user sees from `generate` (without --wait), `get --wait`,
 * `list`, `quote`, `usage` and `KLING_GATEWAY_REQUEST_TIMEOUT`, against a stand-in gateway that
 * records what it was asked.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { succeededTask } from '../support/fake-task-gateway.js';
import { loopbackServer } from '../support/raw-answer.js';

/** The quote's warnings under weighted, as the gateway words them. */
const TRIAL_WARNING =
  'in doubt after a failed call: one call at a time goes to it, and one is under way (for at most until 2026-12-06T23:30:00.000Z); tried after the providers that can take it now';
const drawnFirst = (percent: number, weight: number) =>
  `weighted: drawn first in about ${percent} % of creates (weight ${weight} of 4); this order is one random draw, and each create draws its own`;

describe('kling-gateway command outputs', () => {
  let server: { base: string; close: () => Promise<void> };
  /** Each request's method, path and query, as the stand-in got it. */
  const requests: string[] = [];

  const queued = (base: string) => ({
    ...succeededTask(base, 'vid_queued'),
    status: 'queued',
    completed_at: null,
    outputs: [],
    provider: null,
    provider_task_id: null,
    provider_status: null,
    cost: { credits: 56, estimated: true, currency_amount: 0.56, currency: 'USD' },
  });

  beforeAll(async () => {
    server = await loopbackServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      requests.push(`${req.method} ${req.url}`);
      const path = (req.url ?? '').split('?')[0]!;
      const json = (body: unknown) => req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
      if (req.method === 'POST' && path === '/v1/videos') return json(queued(server.base));
      if (req.method === 'GET' && path === '/v1/videos' && (req.url ?? '').includes('cursor=cur_busy')) {
        req.on('end', () => res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '5' }).end(JSON.stringify({ type: 'about:blank', title: 'Service unavailable', status: 503 })));
        return;
      }
      if (req.method === 'GET' && path === '/v1/videos') return json({ object: 'list', data: [queued(server.base)], next_cursor: null });
      if (req.method === 'POST' && path === '/v1/videos/quote') {
        // Providers in the answer's own order, not the try order.
        const provider = (id: string, order: number | null) => ({
          provider: id,
          order,
          eligible: order !== null,
          estimated_credits: order === null ? null : 10 * order,
          estimated_cost: order === null ? null : 0.1 * order,
          currency: 'USD',
          reasons: order === null ? ['model not served'] : [],
          warnings: [],
        });
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        const answer = (quote: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(quote));
        req.on('end', () => {
          // A quote of "drawn fox": one draw of weighted, freepik also in doubt with its one trial call under way.
          if ((JSON.parse(body) as { prompt?: string }).prompt === 'drawn fox') {
            return answer({
              strategy: 'weighted',
              order: ['kling3api', 'freepik'],
              providers: [
                { ...provider('freepik', 2), warnings: [TRIAL_WARNING, drawnFirst(25, 1)] },
                { ...provider('kling3api', 1), warnings: [drawnFirst(75, 3)] },
                provider('legacy', null),
              ],
            });
          }
          return answer({ strategy: 'priority', order: ['freepik', 'kling3api'], providers: [provider('legacy', null), provider('kling3api', 2), provider('freepik', 1)] });
        });
        return;
      }
      if (path === '/v1/videos/vid_done') return json(succeededTask(server.base, 'vid_done'));
      req.on('end', () => res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404 })));
    });
  });

  afterAll(async () => {
    await server?.close();
  });

  const run = (args: string[], env: Record<string, string> = {}) =>
    runCliCaptured(args, { env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123', ...env }, pause: async () => undefined });

  it('generate without --wait prints the task and names the command that follows it', async () => {
    const result = await run(['generate', 'a fox', '--model', 'kling-v3']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('vid_queued  queued');
    expect(result.stderr).toMatch(/follow it: .*kling-gateway wait vid_queued\n/);
  });

  it('get --wait 30 asks the gateway to hold the read (?wait=30)', async () => {
    requests.length = 0;
    const result = await run(['get', 'vid_done', '--wait', '30']);
    expect(result.code).toBe(0);
    expect(requests).toEqual(['GET /v1/videos/vid_done?wait=30']);
  });

  it('list marks an estimated cost with ~ and says what ~ means on stderr', async () => {
    const result = await run(['list']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/vid_queued\s+queued\s.*\$0\.56~/);
    expect(result.stderr).toContain('~ = estimated cost');
  });

  it('quote lists the providers in the try order, those that cannot serve it last', async () => {
    const result = await run(['quote', 'a fox', '--model', 'kling-v3']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('try order: freepik → kling3api');
    const rows = result.stdout.split('\n').filter((line) => /^\s*(\d|—)\s/.test(line)).map((line) => line.trim().split(/\s+/)[1]);
    expect(rows).toEqual(['freepik', 'kling3api', 'legacy']);
  });

  it('quote under weighted says its order is one random draw, and prints each reason and warning whole on a line of its own after its provider; --json carries them', async () => {
    const result = await run(['quote', 'drawn fox', '--model', 'kling-v3']);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe('strategy weighted; try order (one random draw; each create draws its own): kling3api → freepik');
    // The table: short rows, no reason in them.
    const rows = lines.filter((line) => /^\s*(\d|—)\s/.test(line));
    expect(rows.map((line) => line.trim().split(/\s+/)[1])).toEqual(['kling3api', 'freepik', 'legacy']);
    for (const row of rows) expect(row.length).toBeLessThan(60);
    // Each reason and warning whole, its provider named once, the next ones under it.
    expect(lines).toContain(`kling3api  ${drawnFirst(75, 3)}`);
    expect(lines).toContain(`freepik    ${TRIAL_WARNING}`);
    expect(lines).toContain(`           ${drawnFirst(25, 1)}`);
    expect(lines).toContain('legacy     model not served');
    const json = await run(['--json', 'quote', 'drawn fox', '--model', 'kling-v3']);
    const quote = JSON.parse(json.stdout) as { providers: { provider: string; warnings: string[] }[] };
    expect(quote.providers.find((p) => p.provider === 'freepik')?.warnings).toEqual([TRIAL_WARNING, drawnFirst(25, 1)]);
  });

  it('usage --from equal to --to exits 2 naming both flags, before anything is sent', async () => {
    requests.length = 0;
    const result = await run(['usage', '--from', '2026-12-01', '--to', '2026-12-01']);
    expect([result.code, result.stderr]).toEqual([2, expect.stringContaining('--from 2026-12-01 must be before --to 2026-12-01')]);
    expect(requests).toEqual([]);
  });

  it('a KLING_GATEWAY_REQUEST_TIMEOUT that is not a number of seconds is a command-line error (2) naming the variable', async () => {
    const result = await run(['get', 'vid_done'], { KLING_GATEWAY_REQUEST_TIMEOUT: 'soon' });
    expect([result.code, result.stderr]).toEqual([2, expect.stringContaining('KLING_GATEWAY_REQUEST_TIMEOUT soon: not a number of seconds')]);
  });

  it('list --all --cursor whose first page fails names no command to go on with: it would be the same command', async () => {
    const result = await run(['list', '--all', '--cursor', 'cur_busy']);
    expect(result.code).toBe(9);
    expect(result.stderr).toContain('Service unavailable (503)');
    expect(result.stderr).not.toContain('go on from it');
  });

  it('a gateway URL holding only a password (http://:secret@host) is a command-line error that never shows it', async () => {
    const result = await run(['--url', 'http://:s3cret-pw@127.0.0.1:8080', 'get', 'vid_done']);
    expect([result.code, result.stderr]).toEqual([2, expect.stringContaining('holds a user name or password')]);
    expect(result.stderr + result.stdout).not.toContain('s3cret-pw');
  });
});
