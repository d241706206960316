/**
 * With `WORKERS`, a worker that dies is replaced. The replacement read `config.yaml` again, as
 * the file stood then: an operator preparing the next restart's change (a half-written file, a
 * new tenant key) had the replacement refuse it — and the primary stop the whole gateway with
 * exit 78 after it had served for days — or serve with a configuration the other workers did not
 * have. Every worker, a replacement too, now serves with the configuration the start read.
 */
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { startGatewayProcess, workerPidsOf, type GatewayProcess } from '../support/gateway-process.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const running: GatewayProcess[] = [];
afterEach(() => {
  for (const gateway of running.splice(0)) if (gateway.child.exitCode === null && gateway.child.signalCode === null) gateway.child.kill('SIGKILL');
});

/** Resolves once `test` holds (the gateway's lines are read as they come), or fails when the gateway ends first. */
async function until(gateway: GatewayProcess, test: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (gateway.child.exitCode !== null) throw new Error(`the gateway ended with exit ${gateway.child.exitCode}`);
    if (Date.now() > deadline) throw new Error('not logged in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

it('replaces a dead worker with the configuration the start read, though config.yaml was changed since', { timeout: 180_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-config-edited-'));
  const configFile = join(folder, 'config.yaml');
  copyFileSync(join(REPO, 'config.yaml'), configFile);
  const lines: { msg: string }[] = [];
  const gateway = await startGatewayProcess(
    {
      WORKERS: '2',
      CONFIG_FILE: configFile,
      HOST: '127.0.0.1',
      DATABASE_URL: `sqlite:${join(folder, 'gateway.db')}`,
      STORAGE_PATH: join(folder, 'outputs'),
      LOG_LEVEL: 'info',
      GATEWAY_API_KEYS: 'acme:acme-key-123456',
    },
    (line) => lines.push(JSON.parse(line)),
    90_000,
  );
  running.push(gateway);

  // The operator starts on the next change: the file is not valid yet.
  writeFileSync(configFile, 'server:\n  port: [\n');
  const [killed] = workerPidsOf(gateway.child);
  const serving = () => lines.filter((line) => / serving$/.test(line.msg)).length;
  const before = serving();
  process.kill(killed!, 'SIGKILL');
  await until(gateway, () => serving() > before);

  // The gateway goes on serving, the replacement with the keys the start read.
  expect(gateway.child.exitCode).toBeNull();
  for (let i = 0; i < 4; i++) {
    const answer = await fetch(`${gateway.url}/v1/videos?limit=1`, { headers: { authorization: 'Bearer acme-key-123456' } });
    expect(answer.status).toBe(200);
  }
});
