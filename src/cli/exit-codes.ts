/**
 * What the CLI's exit status means, so scripts can branch on it without parsing text. Listed in
 * `kling-gateway --help` and the README.
 */
import {
  EndpointNotAvailableError,
  GatewayError,
  GatewayUnreachableError,
  namesNoRoute,
  OutputUnavailableError,
  WaitTimeoutError,
} from '../../packages/client/src/index.js';

export const ExitCode = {
  /** Done as asked (for generate --wait: the video succeeded and was saved). */
  ok: 0,
  /** Something unexpected (a bug): the message says what. */
  unexpected: 1,
  /**
   * The command line is wrong: unknown flag, missing argument, unreadable --file, no key, a gateway
   * URL no request can go to (or one the gateway has no route under, such as …/v1); or an output
   * that cannot be written (a full disk included).
   */
  usage: 2,
  /**
   * The gateway refused the request (400, 402, 409, 413, 415, 422 …): fix the request (or the
   * budget). For `quote`: no provider can serve the request, so a create of it would be refused.
   */
  refused: 3,
  /** The gateway refused the key (401, 403): not valid, or not allowed what was asked. (No key at all is `usage`: nothing is sent.) */
  auth: 4,
  /** No such task for this key (404). */
  notFound: 5,
  /**
   * generate, wait, download: the video ended failed or canceled, or its output is no longer to be
   * had. `get` shows such a task and exits 0: it did what was asked.
   */
  taskFailed: 6,
  /** This gateway does not have the endpoint (an older gateway). */
  notAvailable: 7,
  /** Waiting timed out, or download of a task not done yet; the task is still running. */
  timeout: 8,
  /**
   * Try again later: the gateway (or, for migrate, the database) cannot be reached, answered 5xx,
   * or 429 (too many requests: the message says when to retry); for cancel, the cancel is kept but
   * still undecided (409 cancel-pending) after it asked again.
   */
  unreachable: 9,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
  /** Stopped by SIGTERM (`timeout`, a CI job canceled): 128 + 15, as a shell shows it; said as Ctrl-C is. */
  terminated: 143,
  /**
   * `-o -`: stdout closed before the video was written whole (`| head -c 100`: its reader quit).
   * 128 + SIGPIPE, the status the shell shows for `cat` or a Go program in the same place, so a
   * `pipefail` script that lets a reader quit early (`|| [ $? -eq 141 ]`) already knows it; not 0,
   * since the video was not all written, nor 2 or 9, which would say the command or the gateway
   * were at fault.
   */
  outputClosed: 141,
  /** check-config / migrate: the configuration file is not valid (EX_CONFIG). */
  badConfig: 78,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure the CLI explains itself, with the exit code that goes with it. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}

export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof EndpointNotAvailableError) return ExitCode.notAvailable;
  if (error instanceof WaitTimeoutError) return ExitCode.timeout;
  if (error instanceof OutputUnavailableError) return ExitCode.taskFailed;
  if (error instanceof GatewayUnreachableError) return ExitCode.unreachable;
  if (error instanceof GatewayError) {
    if (error.status === 401 || error.status === 403) return ExitCode.auth;
    // The gateway's router found no such path: the URL is wrong (one ending in /v1), not the task.
    if (error.status === 404 && namesNoRoute(error)) return ExitCode.usage;
    if (error.status === 404) return ExitCode.notFound;
    if (error.status >= 500 || error.status === 429) return ExitCode.unreachable;
    return ExitCode.refused;
  }
  return ExitCode.unexpected;
}

/** The table printed at the end of `--help`. */
export const EXIT_CODE_HELP = `Exit codes:
  0   done (generate --wait: the video succeeded and was saved)
  2   wrong command line (unknown flag, missing argument, unreadable --file, no key, a gateway
      URL no request can go to: not http(s), a port past 65535, one fetch blocks, or one the
      gateway has no route under, such as …/v1), or an output that cannot be written (a full
      disk included)
  3   the gateway refused the request (400, 402, 409, 413, 415, 422); quote: no provider can
      serve the request (its create would be refused), the table still printed
  4   the gateway refused the key (401, 403): not valid, or not allowed what was asked
  5   no such task for this key (404)
  6   generate, wait, download: the video ended failed or canceled, or its output is no longer
      to be had (get shows such a task and exits 0)
  7   this gateway does not have the endpoint
  8   timed out waiting (or download of a task not done yet); the task is still running
  9   try again later: cannot reach the gateway (or the database), it answered 5xx, or 429
      (too many requests); cancel: the cancel is kept but not decided yet (the create on its
      way is unanswered), still so after it asked again
  78  check-config, migrate: the configuration is not valid
  130 interrupted (Ctrl-C); a video already created goes on at the gateway
  141 -o -: stdout closed before the video was written whole (| head: its reader quit)
  143 stopped by SIGTERM (timeout, a CI job canceled), said as Ctrl-C is
  1   anything else (a bug)`;
