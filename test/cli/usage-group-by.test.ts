/**
 * `usage --group-by` a gateway would refuse is a command line to fix, as a bad `--from` is: exit 2
 * naming the flag, nothing sent. Before, `account` without `provider` and a key named twice
 * reached the gateway and exited 3 after its 400 ("the gateway refused the request").
 */
import { expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { REFUSED_PORT } from '../support/refused-port.js';

// Nothing listens here: a command that sent anything would exit with a connection error instead.
const offline = { env: { KLING_GATEWAY_URL: `http://127.0.0.1:${REFUSED_PORT}`, KLING_GATEWAY_API_KEY: 'dev-key' } };

it.each([
  ['account', 'account ids are per provider: group by provider too (provider,account)'],
  ['model,account', 'account ids are per provider: group by provider too (provider,account)'],
  ['provider,provider', 'provider is named twice: give each key once'],
  ['model, day ,model', 'model is named twice: give each key once'],
])('--group-by %s exits 2 naming the flag, before anything is sent', async (value, said) => {
  for (const extra of [[], ['--csv'], ['--json']]) {
    const result = await runCliCaptured(['usage', '--group-by', value, ...extra], offline);
    expect([result.code, result.stdout]).toEqual([2, '']);
    expect(result.stderr).toContain(`option '--group-by <fields>' argument '${value}' is invalid. ${said}`);
  }
});

it('a grouping the gateway takes is not refused here (it goes on to the gateway)', async () => {
  const result = await runCliCaptured(['usage', '--group-by', 'provider, account,day'], offline);
  expect(result.stderr).toContain('cannot reach');
});
