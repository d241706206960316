/**
 * `kling-gateway`: the command-line client (commander). API commands talk to a gateway through
 * the typed client (`packages/client`); operator commands read this machine's config and store.
 * Exit codes are listed in `exit-codes.ts` and at the end of `--help`.
 */
import { Command, CommanderError, Option } from 'commander';
import { EndpointNotAvailableError, GatewayError, namesDoubledPrefix, namesNoRoute } from '../../packages/client/src/index.js';
import { registerCatalogCommands } from './catalog-commands.js';
import { CliContext, DEFAULT_GATEWAY_URL, pause, requestTimeout, type CliIo } from './cli-context.js';
import { describeProblem, printable } from './cli-output.js';
import { CliError, EXIT_CODE_HELP, ExitCode, exitCodeFor } from './exit-codes.js';
import { noteInvocation } from './invocation.js';
import { addExamples, PROGRAM_HELP } from './help-examples.js';
import { registerOperatorCommands } from './operator-commands.js';
import { registerVideoCommands } from './video-commands.js';

const VERSION = '0.1.0';

/** How long a command has, after SIGTERM, to say what goes on and clean up before it is ended. */
const SIGTERM_GRACE_MS = 2_000;

/** Longest value commander's "argument '…' is invalid" quotes whole, in characters. */
const LONGEST_QUOTED_VALUE = 80;

/**
 * A command-line error as printed: a value that is too long (a 3000-character prompt) quoted by
 * its start and its length, not whole, and its terminal controls shown as U+FFFD.
 */
export function shortenQuotedValue(text: string): string {
  return text.replace(/^(error: (?:option '[^']*' argument|command-argument value) ')([\s\S]*)(' is invalid)/, (_all, head: string, value: string, tail: string) => {
    const characters = [...value];
    if (characters.length <= LONGEST_QUOTED_VALUE) return `${head}${printable(value)}${tail}`;
    return `${head}${printable(characters.slice(0, 60).join(''))}…' (${characters.length} characters)${tail.slice(1)}`;
  });
}

export function buildProgram(context: CliContext): Command {
  const program = new Command('kling-gateway')
    .description('Kling Gateway from the command line: create and follow videos, compare providers, check a config.')
    .version(VERSION)
    .addOption(new Option('--url <url>', `the gateway (default: $KLING_GATEWAY_URL or ${DEFAULT_GATEWAY_URL})`))
    .addOption(new Option('--key <key>', 'a gateway key (default: $KLING_GATEWAY_API_KEY)'))
    .addOption(new Option('--request-timeout <seconds>', 'longest wait for each answer of the gateway, 0 for none (default: $KLING_GATEWAY_REQUEST_TIMEOUT or 120)').argParser(requestTimeout))
    .option('--json', "print JSON instead of tables: the API's answer (download: the task id and the files saved; generate --wait, wait: the task, with the files saved in saved; check-config, migrate: what they found); progress and errors stay on stderr")
    .configureOutput(outputTo(context))
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\n${PROGRAM_HELP}\n\n${EXIT_CODE_HELP}`)
    .exitOverride();
  registerVideoCommands(program, context);
  registerCatalogCommands(program, context);
  registerOperatorCommands(program, context);
  for (const command of program.commands) {
    addExamples(command);
    command.exitOverride();
    command.configureOutput(outputTo(context));
  }
  return program;
}

/** Where commander writes help (stdout) and command-line errors (stderr, long values shortened). */
function outputTo(context: CliContext) {
  return {
    writeOut: (text: string) => context.stdout.write(text),
    writeErr: (text: string) => context.stderr.write(text),
    outputError: (text: string, write: (text: string) => void) => write(shortenQuotedValue(text)),
  };
}

/** Runs the CLI; resolves with the exit code (never calls process.exit itself). */
export async function runCli(argv: readonly string[], io: Partial<CliIo> = {}): Promise<number> {
  const context = new CliContext({ env: process.env, stdout: process.stdout, stderr: process.stderr, pause, ...io });
  noteInvocation(context.env, io.script ?? process.argv[1] ?? '');
  const program = buildProgram(context);
  // Ctrl-C, and SIGTERM (`timeout`, a CI job canceled, `kill`), end the command the same way: a
  // video already made is named so it is followed again rather than made again. A second one ends at once.
  const stopOn = (code: ExitCode, said: string) => () => {
    if (context.signal.aborted) process.exit(code);
    context.aborter.abort(new CliError(said, code));
  };
  const interrupt = stopOn(ExitCode.interrupted, 'interrupted');
  /** Whether the command has ended (and said so). */
  let ended = false;
  const terminate = () => {
    stopOn(ExitCode.terminated, 'terminated')();
    // Whoever sends SIGTERM sends it once and waits: a command that does not watch for it (migrate
    // waiting on a database) still ends, as it did when the signal was not handled.
    setTimeout(() => {
      if (ended) process.exit(); // with the status the command ended with
      context.stderr.write('\nterminated\n');
      process.exit(ExitCode.terminated);
    }, SIGTERM_GRACE_MS).unref();
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', terminate);
  // `help <typo>`: commander prints the whole help; said as the typo itself is (unknown command, did you mean …).
  const [first, second] = argv;
  const asked = first === 'help' && second !== undefined && !second.startsWith('-') && !program.commands.some((command) => command.name() === second || command.aliases().includes(second));
  try {
    await program.parseAsync(asked ? [second] : [...argv], { from: 'user' });
    return context.exitCode;
  } catch (error) {
    return report(error, context);
  } finally {
    ended = true;
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', terminate);
  }
}

function report(error: unknown, context: CliContext): number {
  const stderr = context.stderr;
  if (error instanceof CommanderError) {
    // Help and --version end here too; commander already printed them.
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  const reason = context.signal.aborted ? context.signal.reason : error;
  if (reason instanceof CliError && (reason.exitCode === ExitCode.interrupted || reason.exitCode === ExitCode.terminated)) {
    stderr.write(`\n${reason.message}\n`);
    return reason.exitCode;
  }
  if (error instanceof GatewayError) {
    const lines = describeProblem(error);
    if (namesNoRoute(error)) {
      // Said before the request id, which ends the lines.
      const hint = namesDoubledPrefix(error)
        ? "  the gateway's URL is given with /v1, which every path adds again: give it without (http://host:port)"
        : "  the gateway has no such path: are --url and KLING_GATEWAY_URL the gateway's own URL (http://host:port)?";
      lines.splice(lines.at(-1)?.startsWith('  request id: ') ? lines.length - 1 : lines.length, 0, hint);
    }
    for (const line of lines) stderr.write(`${printable(line)}\n`);
  } else if (error instanceof EndpointNotAvailableError) {
    stderr.write(`error: ${printable(error.message)} (a newer gateway has it)\n`);
  } else if (error instanceof Error) {
    stderr.write(`error: ${printable(error.message)}\n`);
    if (exitCodeFor(error) === ExitCode.unexpected && context.env.KLING_GATEWAY_DEBUG) stderr.write(`${error.stack}\n`);
  } else {
    stderr.write(`error: ${printable(String(error))}\n`);
  }
  return exitCodeFor(error);
}
