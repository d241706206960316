/**
 * What every command needs: a client for the gateway named by `--url`/`--key` (or
 * `KLING_GATEWAY_URL`/`KLING_GATEWAY_API_KEY`), how long an answer may take (`--request-timeout`
 * or `KLING_GATEWAY_REQUEST_TIMEOUT`), the output mode, a signal that Ctrl-C aborts, and
 * a way to set the exit code.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { GatewayClient, notHttpUrl, redactUrl, unsendableKeyCharacter, unusableUrlReason } from '../../packages/client/src/index.js';
import { CliOutput } from './cli-output.js';
import { CliError, ExitCode } from './exit-codes.js';
import { progressStreamFor, type ProgressStream } from './progress-display.js';

export const DEFAULT_GATEWAY_URL = 'http://127.0.0.1:8080';

/** Where the CLI reads its settings and writes (the process's own, unless a test gives others). */
export interface CliIo {
  env: NodeJS.ProcessEnv;
  /** The path the CLI was started as (`process.argv[1]`: `…/node_modules/.bin/kling-gateway` under `npx`). */
  script?: string;
  stdout: NodeJS.WritableStream & ProgressStream;
  stderr: NodeJS.WritableStream & ProgressStream;
  /** Waits `ms` or until `signal` aborts (tests pass one that records the wait and returns at once). */
  pause: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** `CliIo.pause` of a real run: a timer that Ctrl-C cuts short. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

export interface GlobalOptions {
  url?: string;
  key?: string;
  json?: boolean;
  requestTimeout?: number;
}

/**
 * `--request-timeout`: seconds, 0 for none. A gateway (or a proxy before it) that takes the
 * connection and never answers would otherwise hold a command for minutes.
 */
export function requestTimeout(value: string): number {
  const seconds = value.trim() === '' ? Number.NaN : Number(value);
  if (!Number.isFinite(seconds) || seconds < 0) throw new InvalidArgumentError('not a number of seconds (0 for no limit).');
  return seconds;
}

export class CliContext {
  readonly aborter = new AbortController();
  exitCode: number = ExitCode.ok;

  constructor(readonly io: CliIo) {}

  get env(): NodeJS.ProcessEnv {
    return this.io.env;
  }

  get stdout(): CliIo['stdout'] {
    return this.io.stdout;
  }

  get stderr(): CliIo['stderr'] {
    return this.io.stderr;
  }

  /** Where progress is drawn: stderr, as plain lines when it is a terminal with `TERM=dumb`. */
  get progress(): ProgressStream {
    return progressStreamFor(this.io.stderr, this.env);
  }

  pause(ms: number): Promise<void> {
    return this.io.pause(ms, this.signal);
  }

  get signal(): AbortSignal {
    return this.aborter.signal;
  }

  /** Sets the exit code a command ends with (without stopping it). */
  exit(code: number): void {
    this.exitCode = code;
  }

  globals(command: Command): GlobalOptions {
    return command.optsWithGlobals() as GlobalOptions;
  }

  /** How a command writes; `resultsToStderr` when its stdout carries a video (`-o -`). */
  outputFor(command: Command, resultsToStderr = false): CliOutput {
    return new CliOutput(this.globals(command).json === true, resultsToStderr ? this.io.stderr : this.io.stdout, this.io.stderr);
  }

  clientFor(command: Command): GatewayClient {
    const globals = this.globals(command);
    // Set but empty is unset (as `${VAR:-}` in config.yaml).
    const source = globals.url !== undefined ? '--url' : this.env.KLING_GATEWAY_URL ? 'KLING_GATEWAY_URL' : undefined;
    const url = globals.url ?? (this.env.KLING_GATEWAY_URL || DEFAULT_GATEWAY_URL);
    const key = globals.key ?? this.env.KLING_GATEWAY_API_KEY;
    if (!key) {
      throw new CliError(
        'no gateway key: pass --key or set KLING_GATEWAY_API_KEY (the sandbox from `npm start` takes dev-key)',
        ExitCode.usage,
      );
    }
    // Named by where it came from, never shown.
    const unsendable = unsendableKeyCharacter(key);
    if (unsendable) {
      throw new CliError(`the gateway key (${globals.key !== undefined ? '--key' : 'KLING_GATEWAY_API_KEY'}) holds ${unsendable}, which an HTTP header cannot carry`, ExitCode.usage);
    }
    // `localhost:8080` parses as a URL of scheme `localhost:`; fetch would then say "unknown
    // scheme", and of a port it blocks (`:1`, `:6000`) "bad port": both reported as an unreachable
    // gateway (exit 9, "try again later"), though no retry ever gets through. The URL is wrong.
    // A password written into the URL is never repeated (`***@`).
    const wrong = notHttpUrl(url);
    if (wrong?.credentials) {
      throw new CliError(
        `${source ?? '--url'} ${redactUrl(url)} holds a user name or password: give the URL without them, and the key with --key or KLING_GATEWAY_API_KEY`,
        ExitCode.usage,
      );
    }
    if (wrong?.blockedPort || wrong?.malformed) throw new CliError(`${source ?? '--url'} ${redactUrl(url)} ${unusableUrlReason(wrong)}`, ExitCode.usage);
    if (wrong) {
      const hint = wrong.meant ? `did you mean ${wrong.meant}?` : `e.g. ${DEFAULT_GATEWAY_URL}`;
      throw new CliError(`${source ?? '--url'} ${redactUrl(url)} is not an http(s) URL: ${hint}`, ExitCode.usage);
    }
    let seconds = globals.requestTimeout;
    if (seconds === undefined && this.env.KLING_GATEWAY_REQUEST_TIMEOUT) {
      try {
        seconds = requestTimeout(this.env.KLING_GATEWAY_REQUEST_TIMEOUT);
      } catch (error) {
        throw new CliError(`KLING_GATEWAY_REQUEST_TIMEOUT ${this.env.KLING_GATEWAY_REQUEST_TIMEOUT}: ${(error as Error).message}`, ExitCode.usage);
      }
    }
    return new GatewayClient({ baseUrl: url, apiKey: key, ...(seconds !== undefined ? { timeoutMs: seconds * 1000 } : {}) });
  }
}
