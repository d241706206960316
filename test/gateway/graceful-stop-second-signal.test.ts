/**
 * A second SIGTERM or SIGINT while the gateway drains (up to `server.drain_timeout_ms`, 35 s by
 * default): an operator pressing Ctrl-C again, or a supervisor repeating its signal. It was
 * ignored without a word, so the terminal looked hung. It now says the stop is under way and how
 * long the drain may still take, and it does not cut the drain (a create on its way to the
 * provider would be left unrecorded; `npm start` also passes one Ctrl-C on as a second SIGINT):
 * SIGKILL ends the process at once.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { compiledBuild, intoLogLines, startGatewayProcess } from '../support/gateway-process.js';
import { silentServer, type SilentServer } from '../support/silent-server.js';

const DRAIN_MS = 4_000;
const HEADERS = { authorization: 'Bearer ops-key-7f3a91c2', 'content-type': 'application/json' };
const request = { model: 'kling-v3', prompt: 'a create the provider never answers', duration: 5, routing: { providers: ['kling3api'] } };

let child: ChildProcess | undefined;
let upstream: SilentServer | undefined;
beforeAll(() => compiledBuild(), 120_000);
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await new Promise((resolve) => child!.once('exit', resolve));
  }
  await upstream?.close();
  child = upstream = undefined;
});

type Line = { level?: number | string; msg?: string; signal?: string };

/** The compiled gateway on a live kling3api that never answers, holding one create on its way there (which holds a drain open). */
async function drainingGateway(lines: Line[]): Promise<ChildProcess> {
  upstream = await silentServer();
  const dir = mkdtempSync(join(tmpdir(), 'kg-second-signal-'));
  const shipped = readFileSync(new URL('../../config.yaml', import.meta.url), 'utf8');
  writeFileSync(join(dir, 'config.yaml'), shipped.replace(/# drain_timeout_ms: \d+/, `drain_timeout_ms: ${DRAIN_MS}`));
  const started = await startGatewayProcess(
    {
      HOST: '127.0.0.1',
      CONFIG_FILE: join(dir, 'config.yaml'),
      DATABASE_URL: `sqlite:${join(dir, 'gw.db')}`,
      STORAGE_PATH: join(dir, 'outputs'),
      GATEWAY_API_KEYS: 'ops:ops-key-7f3a91c2',
      KLING3API_BASE_URL: `http://127.0.0.1:${upstream.port}`,
      KLING3API_API_KEY: 'k3-live-key-for-a-silent-upstream',
      LOG_LEVEL: 'info',
    },
    intoLogLines(lines),
    60_000,
    { compiled: true },
  );
  child = started.child;
  void fetch(`${started.url}/v1/videos`, { method: 'POST', headers: HEADERS, body: JSON.stringify(request) }).catch(() => undefined);
  await expect.poll(() => upstream!.received().includes('POST'), { timeout: 10_000 }).toBe(true);
  return child;
}

const exitOf = (process: ChildProcess) => new Promise<number | null>((resolve) => process.once('exit', (code) => resolve(code)));

it('says it is already stopping, and how long the drain may take, when a second signal comes during the drain', { timeout: 60_000 }, async () => {
  const lines: Line[] = [];
  const gateway = await drainingGateway(lines);
  const exited = exitOf(gateway);
  gateway.kill('SIGTERM');
  await expect.poll(() => lines.some((line) => line.msg === 'stopping'), { timeout: 10_000 }).toBe(true);
  gateway.kill('SIGINT');
  await expect.poll(() => lines.some((line) => line.signal === 'SIGINT'), { timeout: 10_000 }).toBe(true);
  const again = lines.find((line) => line.signal === 'SIGINT')!;
  expect(again.msg).toMatch(
    /^already stopping: the drain ends within [1-4] s \(server\.drain_timeout_ms\), then the process exits; a repeated signal does not cut it short \(a create on its way to a provider would go unrecorded\); SIGKILL ends the process at once$/,
  );
  // The drain ran on to its end: the process still exits cleanly.
  expect(await exited).toBe(0);
});

it('takes one Ctrl-C that `npm start` passes on (the same signal again right after) as one stop, saying nothing more', { timeout: 60_000 }, async () => {
  const lines: Line[] = [];
  const gateway = await drainingGateway(lines);
  const exited = exitOf(gateway);
  gateway.kill('SIGINT');
  // npm passes it on once its own handler has run: the gateway has begun its stop by then.
  await expect.poll(() => lines.some((line) => line.msg === 'stopping'), { timeout: 10_000, interval: 5 }).toBe(true);
  gateway.kill('SIGINT');
  expect(await exited).toBe(0);
  expect(lines.filter((line) => line.signal !== undefined).map((line) => line.msg)).toEqual(['stopping']);
});
