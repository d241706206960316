/**
 * The gateway as a process of its own (`src/main.ts` through tsx, as `npm run dev` runs it) on a
 * free port. A port picked free can be taken by another test file before the gateway listens on
 * it (`EADDRINUSE`, and the gateway exits): it is then started again on another one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { freePorts } from '../../cluster/cluster.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TRIES = 3;

export interface GatewayProcess {
  child: ChildProcess;
  port: number;
  url: string;
}

/**
 * Starts the gateway with `env` (PORT is set here) and resolves once a line of its standard
 * output contains `readyText`. Every line goes to `onLine` (those of a start that failed too).
 */
export async function startGatewayProcess(
  env: Record<string, string>,
  readyText: string,
  onLine: (line: string) => void = () => undefined,
  timeoutMs = 60_000,
): Promise<GatewayProcess> {
  for (let tries = 1; ; tries += 1) {
    const [port] = (await freePorts(1)) as [number];
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src/main.ts')], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const outcome = await new Promise<'ready' | 'ended' | 'late'>((resolve) => {
      let rest = '';
      const timer = setTimeout(() => resolve('late'), timeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        const parts = (rest + chunk.toString()).split('\n');
        rest = parts.pop() ?? '';
        for (const part of parts) {
          onLine(part);
          if (part.includes(readyText)) {
            clearTimeout(timer);
            resolve('ready');
          }
        }
      });
      child.once('exit', () => {
        clearTimeout(timer);
        resolve('ended');
      });
    });
    if (outcome === 'ready') return { child, port, url: `http://127.0.0.1:${port}` };
    if (outcome === 'late') {
      child.kill('SIGKILL');
      throw new Error(`the gateway did not say "${readyText}" within ${timeoutMs} ms`);
    }
    if (tries === TRIES) throw new Error(`the gateway ended before it said "${readyText}" (${TRIES} starts)`);
  }
}
