/**
 * The `kling-gateway` command run in the test's own process, through its entry point (`runCli`),
 * with what it writes to stdout and stderr captured.
 */
import { Writable } from 'node:stream';
import type { CliIo } from '../../src/cli/cli-context.js';
import { runCli } from '../../src/cli/main.js';

export interface CapturedRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `args` with `io` (its environment, a pause …) and gives back the exit code and the output. */
export async function runCliCaptured(args: string[], io: Partial<Omit<CliIo, 'stdout' | 'stderr'>>): Promise<CapturedRun> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        append(chunk.toString('utf8'));
        callback();
      },
    });
  const code = await runCli(args, { ...io, stdout: sink((text) => (stdout += text)), stderr: sink((text) => (stderr += text)) });
  return { code, stdout, stderr };
}
