/**
 * The exit status a script branches on: "fix the request" (3) only for what the request itself
 * got wrong; "try again later" (9) for what waiting cures, a 429 included.
 */
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../packages/client/src/index.js';
import { ExitCode, exitCodeFor, EXIT_CODE_HELP } from '../../src/cli/exit-codes.js';
import { runCliCaptured } from '../support/cli-run.js';
import { fakeTaskGateway, succeededTask } from '../support/fake-task-gateway.js';

const problem = (status: number) => new GatewayError(status, { type: 'about:blank', title: 'x', status }, 'req_1', status === 429 ? 12 : null);

describe('exit codes of gateway problems', () => {
  it.each([
    [400, ExitCode.refused],
    [402, ExitCode.refused],
    [409, ExitCode.refused],
    [422, ExitCode.refused],
    [401, ExitCode.auth],
    [404, ExitCode.notFound],
    [429, ExitCode.unreachable],
    [500, ExitCode.unreachable],
    [503, ExitCode.unreachable],
  ])('%i exits %i', (status, code) => {
    expect(exitCodeFor(problem(status))).toBe(code);
  });

  it('--help says that 9 covers a 429 (too many requests: retry later)', () => {
    expect(EXIT_CODE_HELP).toMatch(/^ {2}9 {3}.*429/m);
    expect(EXIT_CODE_HELP).not.toMatch(/^ {2}3 {3}.*429/m);
  });

  it('--help says that 9 covers a cancel still undecided after its tries (409 cancel-pending: ask again later)', () => {
    const tryLater = EXIT_CODE_HELP.slice(EXIT_CODE_HELP.indexOf('\n  9 '), EXIT_CODE_HELP.indexOf('\n  78 ')).replace(/\s+/g, ' ');
    expect(tryLater).toContain('cancel: the cancel is kept but not decided yet');
  });

  it('--help lists every status that exits 3, a budget refusal (402) included', () => {
    const refusedLine = EXIT_CODE_HELP.split('\n').find((line) => /^ {2}3 {3}/.test(line)) ?? '';
    for (const status of [400, 402, 409, 413, 415, 422]) {
      expect(exitCodeFor(problem(status))).toBe(ExitCode.refused);
      expect(refusedLine).toContain(String(status));
    }
  });

  it('--help says that quote exits 3 when no provider can serve the request', () => {
    const refused = EXIT_CODE_HELP.slice(EXIT_CODE_HELP.indexOf('\n  3 '), EXIT_CODE_HELP.indexOf('\n  4 '));
    expect(refused).toMatch(/quote: no provider can\s+serve the request/);
  });

  it('--help says a missing key exits 2 (nothing is sent), and 4 only for a key the gateway refused', async () => {
    const line = (code: number) => EXIT_CODE_HELP.split('\n').find((text) => text.startsWith(`  ${code} `)) ?? '';
    expect(line(2)).toContain('no key');
    expect(line(4)).not.toMatch(/missing/);
    expect(line(4)).toMatch(/refused the key.*401, 403/);
    const missing = await runCliCaptured(['list'], { env: { KLING_GATEWAY_URL: 'http://127.0.0.1:2' } });
    expect([missing.code, missing.stderr]).toEqual([ExitCode.usage, expect.stringMatching(/^error: no gateway key/)]);
  });

  it('--help says which commands exit 6 for a failed video: wait does, get shows it and exits 0', async () => {
    const failed = (base: string) => ({ ...succeededTask(base, 'vid_failed'), status: 'failed', outputs: [], error: { code: 'provider_error', message: 'upstream failed', provider_code: null } });
    const gateway = await fakeTaskGateway(failed);
    try {
      const env = { KLING_GATEWAY_URL: gateway.base, KLING_GATEWAY_API_KEY: 'test-key-123' };
      const [got, waited, downloaded] = await Promise.all([
        runCliCaptured(['get', 'vid_failed'], { env }),
        runCliCaptured(['wait', 'vid_failed'], { env }),
        runCliCaptured(['download', 'vid_failed'], { env }),
      ]);
      expect([got.code, waited.code, downloaded.code]).toEqual([ExitCode.ok, ExitCode.taskFailed, ExitCode.taskFailed]);
    } finally {
      await gateway.close();
    }
    const taskFailed = EXIT_CODE_HELP.slice(EXIT_CODE_HELP.indexOf('\n  6 '), EXIT_CODE_HELP.indexOf('\n  7 ')).replace(/\s+/g, ' ');
    expect(taskFailed).toContain('generate, wait, download:');
    expect(taskFailed).toContain('get shows such a task and exits 0');
  });
});
