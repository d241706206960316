/**
 * The line a gateway process logs once it serves: how a process started on `PORT=0` (a port the
 * system picks when it listens) tells where it is. A port picked free beforehand could be taken
 * by another process before the gateway listens on it. The line is logged at `info`, so the
 * process's `LOG_LEVEL` must be `info` or lower.
 */
import type { ChildProcess } from 'node:child_process';

/** What the gateway logs once it serves (every worker, with `WORKERS`). */
export const READY = 'kling-gateway listening on';

/** The ready line's fields read here. */
export interface ReadyLine {
  url: string;
  public_url: string;
}

/**
 * Resolves with the ready line of `child` (its standard output piped). Every line of that output
 * goes to `onLine`; it rejects when the process ends first, or says nothing of serving within
 * `timeoutMs` (then the process is killed).
 */
export function readyLine(child: ChildProcess, timeoutMs: number, onLine: (line: string) => void = () => undefined): Promise<ReadyLine> {
  return new Promise<ReadyLine>((resolve, reject) => {
    let rest = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway did not say "${READY}" within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop() ?? '';
      for (const part of parts) {
        onLine(part);
        if (!part.includes(READY)) continue;
        clearTimeout(timer);
        resolve(JSON.parse(part) as ReadyLine);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the gateway ended (${code ?? signal}) before it said "${READY}"`));
    });
  });
}
