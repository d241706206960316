/**
 * Task commands: generate, get, wait, download, list, quote, cancel.
 */
import { randomUUID } from 'node:crypto';
import { InvalidArgumentError, Option, type Command } from 'commander';
import gatewayDocument from '../../openapi/gateway.json' with { type: 'json' };
import {
  formatChargesAtRisk,
  formatCost,
  formatCostShort,
  formatElapsed,
  formatMoney,
  formatMs,
  formatNumber,
  cancelPending,
  quoteOrderDrawn,
  GatewayError,
  GatewayUnreachableError,
  isTaskIdSegment,
  isTerminal,
  keyReused,
  keyStillInProgress,
  NoAnswerError,
  outputGone,
  UnexpectedAnswerError,
  WaitTimeoutError,
  type CreateVideoRequest,
  type GatewayClient,
  type Model,
  type ProviderId,
  type Task,
  type TaskStatus,
} from '../../packages/client/src/index.js';
import { formatTime, type CliOutput } from './cli-output.js';
import { CliError, ExitCode } from './exit-codes.js';
import { cliCommand } from './invocation.js';
import type { CliContext } from './cli-context.js';
import { fileInTheWayOf, namesExistingFile, namesStdout, refuseVideoOnTerminal, saveOutputs } from './output-download.js';
import { TaskProgressLine } from './progress-display.js';
import { addRequestFlags, promptArgument, requestFromFlags } from './request-flags.js';

const { TaskStatus: { enum: TASK_STATUSES }, Model: { enum: MODELS }, ProviderId: { enum: PROVIDER_IDS } } = (
  gatewayDocument as unknown as {
    components: { schemas: { TaskStatus: { enum: TaskStatus[] }; Model: { enum: Model[] }; ProviderId: { enum: ProviderId[] } } };
  }
).components.schemas;

/**
 * What an output's URL leads to when it is not the gateway's stored copy (undefined for that
 * copy, and for a provider's URL passed through while the provider keeps it): a URL that no
 * longer leads to the file is never printed as if it did.
 */
function outputState(output: Task['outputs'][number], now: number): string | undefined {
  if (output.storage === 'stored') return undefined;
  const why = output.storage_error ? ` (${output.storage_error})` : '';
  if (outputGone(output, now)) {
    const kept = output.storage === 'expired' ? `the gateway's copy was ${output.storage_error ?? 'deleted'}` : `the gateway kept no copy${why}`;
    return `no longer available: ${kept}, and the provider ${output.upstream_url_gone ? 'no longer has it' : `kept its copy until ${formatTime(output.upstream_url_expires_at)} only`}`;
  }
  switch (output.storage) {
    case 'pending':
      return "the provider's URL: the gateway is still storing its copy";
    case 'not_stored':
      return `the provider's URL: not stored by the gateway${why}`;
    case 'expired':
      return `the provider's URL: the gateway's copy was ${output.storage_error ?? 'deleted'}`;
    default:
      return undefined;
  }
}

/** A task for people: what it is, where it ran, what it cost, what came out, and every attempt. */
export function printTask(out: CliOutput, task: Task, now = Date.now()): void {
  out.line(`${task.id}  ${task.status}`);
  const row = (label: string, value: string) => out.line(`  ${label.padEnd(11)} ${value}`);
  row('model', `${task.model} · ${task.quality} · ${task.operation}`);
  const upstream = [task.provider_task_id ? `task ${task.provider_task_id}` : null, task.provider_status ? `upstream ${task.provider_status}` : null]
    .filter(Boolean)
    .join(', ');
  row('provider', task.provider ? `${task.provider}${upstream ? ` (${upstream})` : ''}` : '— (not accepted by a provider)');
  row('created', formatTime(task.created_at));
  if (task.completed_at) {
    row('completed', `${formatTime(task.completed_at)} (took ${formatElapsed(Date.parse(task.completed_at) - Date.parse(task.created_at))})`);
  }
  row('cost', formatCost(task.cost));
  const atRisk = formatChargesAtRisk(task.cost);
  if (atRisk) row('at risk', atRisk);
  const prompt = task.request.prompt;
  if (typeof prompt === 'string') {
    // One line, cut at a whole character (an emoji is two UTF-16 units).
    const characters = [...prompt.replace(/\s+/g, ' ').trim()];
    row('prompt', characters.length > 100 ? `${characters.slice(0, 99).join('')}…` : characters.join(''));
  }
  for (const [index, output] of task.outputs.entries()) {
    const state = outputState(output, now);
    row(`output ${index}`, `${output.type} ${output.url}${output.duration ? ` (${formatNumber(output.duration)} s)` : ''}${state ? ` — ${state}` : ''}`);
  }
  if (task.error) row('error', `${task.error.code}: ${task.error.message}${task.error.provider_code ? ` (upstream ${task.error.provider_code})` : ''}`);
  for (const warning of task.warnings) row('warning', warning);
  const metadata = Object.entries(task.metadata);
  if (metadata.length > 0) row('metadata', metadata.map(([key, value]) => `${key}=${value}`).join(' '));
  if (task.attempts.length > 0) {
    out.line('  attempts');
    out.table(
      task.attempts.map((attempt, index) => ({ ...attempt, index })),
      [
        { header: '    #', value: (a) => `    ${a.index + 1}` },
        { header: 'AT', value: (a) => formatTime(a.at) },
        { header: 'PROVIDER', value: (a) => a.provider },
        { header: 'OUTCOME', value: (a) => a.outcome },
        { header: 'HTTP', value: (a) => (a.http_status === null ? '—' : String(a.http_status)), right: true },
        { header: 'LATENCY', value: (a) => formatMs(a.latency_ms), right: true },
        { header: 'ERROR', value: (a) => [a.error_code, a.provider_code, a.message].filter(Boolean).join(' · ') || '—' },
      ],
    );
  }
}

interface FollowOptions {
  timeout?: number;
  output?: string;
  download?: boolean;
  force?: boolean;
}

/**
 * The flags of a command named to go on with a video (`wait <id>`, `download <id>`) that keep what
 * this one was told about its result: `-o fox.mp4` left out would save it as `./<id>.mp4` instead,
 * `--no-download` left out would download it. `download` takes no `--no-download`.
 */
function resultFlags(options: FollowOptions, command: 'wait' | 'download'): string {
  return [
    ...(options.output !== undefined ? ['-o', shellWord(options.output)] : []),
    ...(options.force === true ? ['--force'] : []),
    ...(command === 'wait' && options.download === false ? ['--no-download'] : []),
  ]
    .map((flag) => ` ${flag}`)
    .join('');
}

/**
 * Follows a task to its end with the live progress line, then downloads its outputs. Returns the
 * exit code: 0 when it succeeded (and was saved), 6 when it failed or was canceled.
 */
async function follow(context: CliContext, client: GatewayClient, out: CliOutput, first: Task, options: FollowOptions, startedAt: number): Promise<number> {
  const progress = new TaskProgressLine(context.progress, startedAt);
  progress.update(first);
  let task = first;
  try {
    if (!isTerminal(first)) {
      task = await waitThroughOutages(context, client, first, options.timeout, (update) => {
        task = update;
        progress.update(update);
      }, (note) => {
        progress.clear();
        out.note(note);
      });
      progress.update(task);
    }
  } catch (error) {
    progress.finish();
    // The task goes on at the gateway (and is billed): say which one and how to follow it again,
    // so it is followed again rather than made again, also when only the waiting ran out. With
    // --json, the task as last seen is still the result: `… --json | jq -r .id` gets its id.
    out.data(task);
    out.note(`video ${first.id} goes on at the gateway; follow it with: ${cliCommand()} wait ${first.id}${resultFlags(options, 'wait')}`);
    // What becomes of it, as last seen: one no provider had then can still be stopped, at no cost
    // unless a create already on its way was taken meanwhile (the cancel route's own rule: queued,
    // no provider task id); one a provider has is billed.
    if (!isTerminal(task)) {
      if (task.status === 'queued' && task.provider_task_id === null) {
        out.note(`  no provider had it when last seen: to stop it, at no cost unless one has taken it since, run: ${cliCommand()} cancel ${task.id}`);
      } else if (task.provider_task_id !== null) {
        out.note(`  ${task.provider ?? 'its provider'} has it: it runs to its end and is billed, followed or not`);
      }
    }
    throw error;
  }
  progress.finish();
  if (task.status !== 'succeeded') {
    out.data(task);
    printTask(out, task);
    out.note(`video ${task.id} ${task.status}${task.error ? `: ${task.error.code}: ${task.error.message}` : ''}`);
    return ExitCode.taskFailed;
  }
  if (options.download === false) {
    out.data(task);
    printTask(out, task);
    return ExitCode.ok;
  }
  let saved: string[] = [];
  if (task.outputs.length > 0) {
    try {
      saved = await saveOutputs(client, task, options.output, context.progress, { signal: context.signal, overwrite: options.force === true, stdout: context.stdout, pause: (ms) => context.pause(ms) });
    } catch (error) {
      // With --json, the task is still the result (`… --json | jq -r .id`), with nothing saved.
      out.data(task);
      // The video is made (and billed): say so, or the command run again makes a second one. A
      // file that cannot be written, and stdout closed early, already say how to save it.
      if (!(error instanceof CliError && (error.exitCode === ExitCode.usage || error.exitCode === ExitCode.outputClosed))) {
        out.note(`video ${task.id} succeeded but was not saved; save it with: ${cliCommand()} download ${task.id}${resultFlags(options, 'download')}`);
      }
      throw error;
    }
  }
  // The task as the API has it, and the files saved beside it, named as `download --json` names them.
  out.data({ ...task, saved });
  printTask(out, task);
  for (const path of saved) out.line(`  saved       ${path}`);
  return ExitCode.ok;
}

/**
 * Pauses before following a task again after the client's own polls gave up on a gateway that is
 * away (a restart, a deploy, a proxy answering 502/503 meanwhile): about half a minute in all.
 */
const OUTAGE_PAUSES_MS = [2_000, 4_000, 8_000, 16_000];

/** Whether `error` says the gateway is away for now (not that the task or the request is wrong). */
function gatewayAway(error: unknown): boolean {
  if (error instanceof UnexpectedAnswerError) return false; // something else answers there
  if (error instanceof GatewayUnreachableError) return true;
  return error instanceof GatewayError && [429, 502, 503, 504].includes(error.status);
}

/**
 * `client.waitForVideo`, followed again when the gateway stays away longer than the client's own
 * few polls (a restart takes seconds): the video is being made meanwhile, and "try again later"
 * would leave the user to find that out. Says so on stderr; `timeout` (seconds) bounds the whole.
 */
async function waitThroughOutages(
  context: CliContext,
  client: GatewayClient,
  first: Task,
  timeout: number | undefined,
  onUpdate: (task: Task) => void,
  note: (text: string) => void,
): Promise<Task> {
  const deadline = timeout ? Date.now() + timeout * 1000 : undefined;
  let last = first;
  for (let outage = 0; ; outage += 1) {
    const remaining = deadline === undefined ? undefined : deadline - Date.now();
    if (remaining !== undefined && remaining <= 0) throw new WaitTimeoutError(last, timeout! * 1000);
    try {
      return await client.waitForVideo(first.id, {
        // Without --timeout, until the task ends: the gateway ends every task by its deadline
        // (`tasks.deadline_ms`, which may be longer than the client's default 30 minutes).
        timeoutMs: remaining ?? Number.POSITIVE_INFINITY,
        onUpdate: (update) => {
          last = update;
          onUpdate(update);
        },
        signal: context.signal,
      });
    } catch (error) {
      const scheduled = OUTAGE_PAUSES_MS[outage];
      if (context.signal.aborted || !gatewayAway(error) || scheduled === undefined) throw error;
      const asked = error instanceof GatewayError && error.retryAfterSeconds !== null && error.retryAfterSeconds <= 30 ? error.retryAfterSeconds * 1000 : 0;
      // Never past --timeout: once it runs out the command says so (exit 8).
      const delay = Math.min(Math.max(scheduled, asked), deadline === undefined ? Number.POSITIVE_INFINITY : Math.max(0, deadline - Date.now()));
      const why = error instanceof GatewayError ? `${error.problem.title} (${error.status})${error.problem.detail ? `: ${error.problem.detail}` : ''}` : (error as Error).message;
      note(`the gateway is away (${why}); still following video ${first.id}, again in ${Math.round(delay / 1000)} s`);
      await context.pause(delay);
      if (context.signal.aborted) throw context.signal.reason;
    }
  }
}

/** Times `cancel` asks again while its cancel is kept undecided (409 cancel-pending), after its Retry-After. */
const CANCEL_PENDING_ROUNDS = 3;
/** The longest Retry-After of a pending cancel that `cancel` waits out before asking again. */
const CANCEL_PENDING_LONGEST_WAIT_S = 30;

/** Pauses between sends of one create whose answer was lost (then the command gives up). */
const CREATE_RETRY_DELAYS_MS = [500, 2_000];

/** The longest `Retry-After` a resend waits out; a gateway asking for more is left to the user. */
const LONGEST_RETRY_AFTER_MS = 30_000;

/**
 * Connection errors before anything was sent: no gateway (nor a proxy before it) took the request.
 * `ERR_SSL_WRONG_VERSION_NUMBER`: an https URL for a plain http server, whose TLS handshake failed.
 */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_SSL_WRONG_VERSION_NUMBER']);

/** Whether `error` says the request never left this machine (refused at connect, no such host), so it made nothing. */
function neverSent(error: unknown): boolean {
  if (!(error instanceof GatewayUnreachableError) || error instanceof NoAnswerError || error instanceof UnexpectedAnswerError) return false;
  return error.code !== undefined && NOT_SENT_CODES.has(error.code);
}

/** The create's answer never arrived (the connection dropped, the gateway restarted, a 5xx). */
function answerLost(error: unknown): boolean {
  if (error instanceof UnexpectedAnswerError) return false; // something else answered: not a gateway
  return error instanceof GatewayUnreachableError || (error instanceof GatewayError && error.status >= 500);
}

/**
 * How long to wait before resending the `retry`th time: the schedule's pause, or longer when the
 * gateway said when to come back (a 503 `Retry-After` while it stops or its store is away).
 * Undefined: give up (no pause left, or a `Retry-After` longer than a command should sit still).
 */
function resendDelay(error: unknown, retry: number): number | undefined {
  const scheduled = CREATE_RETRY_DELAYS_MS[retry];
  const asked = error instanceof GatewayError && error.retryAfterSeconds !== null ? error.retryAfterSeconds * 1000 : 0;
  if (scheduled === undefined || asked > LONGEST_RETRY_AFTER_MS) return undefined;
  return Math.max(scheduled, asked);
}

/**
 * `value` as a POSIX shell reads it back as one word: as it is when it holds only characters no
 * shell treats specially, else single-quoted. A key named to run again with (`order;42`) must
 * not be split or expanded into another key, which would make a second video.
 */
function shellWord(value: string): string {
  return /^[A-Za-z0-9_.,:\/=@%+-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Creates the task with an Idempotency-Key, sending it again with the same key when the answer
 * was lost: the gateway may have created the task already, and the same key then answers with
 * that task instead of making (and billing) a second video; a 409 whose `type` says the key's
 * first request is still being submitted upstream is sent again too (after its `Retry-After`). If
 * every send is lost, says which key to re-run with. A 409 saying the key was used with another
 * body is not sent again: the key can only ever answer that other body.
 */
async function createIdempotently(context: CliContext, client: GatewayClient, out: CliOutput, body: CreateVideoRequest, idempotencyKey: string): Promise<Task> {
  const { signal } = context;
  /** Whether a send may have made the video (its answer lost): until one may have, none was made. */
  let reached = false;
  for (let retry = 0; ; retry += 1) {
    try {
      return await client.createVideo(body, { idempotencyKey, signal });
    } catch (error) {
      // A 409 of the type saying the key's first request (a send whose answer was lost, or an
      // earlier run's) is still being submitted upstream. Its video may be made: resent, and the
      // key named at the end. On a resend, a gateway older than that type said it with its
      // generic 409 (the same key and body can only mean that).
      const stillSubmitting = keyStillInProgress(error, retry > 0);
      // A send whose answer was lost may have made the video; one refused at connect made nothing,
      // and one answered with a refusal made nothing either.
      if (stillSubmitting || ((answerLost(error) || signal.aborted) && !neverSent(error))) reached = true;
      const mayHaveMade = () =>
        out.note(
          reached
            ? `the gateway may have created this video: run the command again with --idempotency-key ${shellWord(idempotencyKey)} to get it rather than a second one`
            : 'no create reached the gateway (no connection could be made to it): no video was made',
        );
      if (!signal.aborted && !answerLost(error) && !stillSubmitting) {
        // A resend refused (a 429 while the unanswered send was not yet written, say): that send
        // may still make the video, so its key is named all the same. Not when the key turns out
        // to have made a task of another body: no send of this command made a video, and running
        // it again with that key would be refused again.
        if (retry > 0 && !keyReused(error)) mayHaveMade();
        throw error;
      }
      const delay = resendDelay(error, retry);
      // Ctrl-C while the create was on its way, or still no answer after the last resend.
      if (signal.aborted || delay === undefined) {
        mayHaveMade();
        throw error;
      }
      const wait = delay >= 1_000 ? ` in ${Math.round(delay / 1_000)} s` : '';
      const why = stillSubmitting
        ? 'the create sent before is still being submitted'
        : error instanceof GatewayError
          ? `the create was answered ${error.status} (${error.message})`
          : `no answer to the create (${error instanceof Error ? error.message : String(error)})`;
      out.note(`${why}; sending it again${wait} with the same Idempotency-Key`);
      await context.pause(delay);
      // Ctrl-C while waiting to send again: the send before may have made the video.
      if (signal.aborted) {
        mayHaveMade();
        throw signal.reason;
      }
    }
  }
}

/** A whole number from 1 to `max` (the most the API takes), checked before anything is sent. */
function positiveInteger(max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim()) || Number(value) === 0) throw new InvalidArgumentError('not a positive integer.');
    if (Number(value) > max) throw new InvalidArgumentError(`at most ${max}.`);
    return Number(value);
  };
}

/**
 * `--idempotency-key`: what the gateway takes, 1–255 visible ASCII characters. An empty one
 * (`"$ORDER_ID"` unset) would go unsent, and a create sent again after a lost answer could then
 * make a second video; one with a space or an accent would be sent and answered 400.
 */
function idempotencyKeyOf(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('is empty: give a key, or leave the flag out for a random one.');
  if (value.length > 255) throw new InvalidArgumentError(`is ${value.length} characters; at most 255.`);
  const refused = /[^\x21-\x7e]/u.exec(value);
  if (refused) {
    // A control character is named by its code point, never printed for the terminal to act on.
    const shown = /[\p{Cc}\p{Cf}]/u.test(refused[0]) ? `U+${refused[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}` : `“${refused[0]}”`;
    throw new InvalidArgumentError(`holds ${shown}: the gateway takes 1-255 visible ASCII characters (no spaces).`);
  }
  return value;
}

/**
 * `<id>`: `""`, `.` and `..` name no task; sent, a URL would resolve them into another route (the
 * list, `/v1/`), whose answer was read as a task.
 */
function taskId(value: string): string {
  if (!isTaskIdSegment(value)) throw new InvalidArgumentError('not a task id (a task id looks like vid_…).');
  return value;
}

/** `-o fox.mp4` or `--timeout` asks for the result: without --wait they would be ignored, and the video saved (by `wait`) under another name. */
function follows(options: Record<string, unknown>): boolean {
  return options.wait === true || options.output !== undefined || options.timeout !== undefined;
}

/** `-o` with `--no-download` names where to save a video it was told not to save: refused before anything is created. */
function refuseOutputWithoutDownload(options: { output?: unknown; download?: unknown }): void {
  if (options.download === false && options.output !== undefined) {
    throw new CliError(`-o ${String(options.output)} says where to save the video and --no-download says not to save it: give one of them`, ExitCode.usage);
  }
}

/**
 * What `-o` takes, as `targetPath` reads it: a path names a directory only when one exists there or
 * it ends in `/` (`-o videos` with no such directory is a file named `videos`), and a file name
 * given for a task of several outputs is numbered.
 */
const OUTPUT_TARGETS =
  'a file (several outputs: <name>-<n>.<ext>), or a directory that exists or is written with a trailing / (default: ./<task id>.<ext>); - for stdout';

function waitFlags(command: Command): Command {
  return command
    .option('--timeout <seconds>', 'stop waiting after this long (exit 8); without it, wait until the task ends', (value) => {
      const seconds = Number(value);
      if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError('not a positive number of seconds.');
      return seconds;
    })
    .option('-o, --output <path>', `where to save the result: ${OUTPUT_TARGETS}`)
    .option('--force', 'replace the file -o names if it exists')
    .option('--no-download', 'do not download the result');
}

export function registerVideoCommands(program: Command, context: CliContext): void {
  const generate = program
    .command('generate')
    .description('create a video; with --wait, follow it live and download the result')
    .argument('[prompt]', 'the prompt (same as --prompt)', promptArgument())
    .option('-w, --wait', 'follow the task until it ends, showing status, provider, elapsed time and cost, then download it (-o and --timeout imply it)')
    .option('--idempotency-key <key>', 'repeats with the same key return the same task (default: a new random key)', idempotencyKeyOf);
  waitFlags(generate);
  const generateFlags = addRequestFlags(generate);
  generate.action(async (prompt: string | undefined, _options: unknown, command: Command) => {
    const options = command.opts();
    refuseOutputWithoutDownload(options);
    const body = requestFromFlags(generateFlags, options);
    if (prompt !== undefined) {
      // Like --prompt, the argument overrides the prompt of --file; both on the command line is unclear.
      if (options.prompt !== undefined && options.prompt !== prompt) throw new CliError('give the prompt once: as an argument or as --prompt', ExitCode.usage);
      body.prompt = prompt;
    }
    const client = context.clientFor(command);
    const out = context.outputFor(command, follows(options) && options.download !== false && namesStdout(options.output as string | undefined));
    const following = follows(options);
    if (following && options.download !== false) refuseVideoOnTerminal(options.output as string | undefined, context.stdout);
    // Found out before the video is made (and paid for), not once it is ready.
    if (following && options.download !== false && !options.force && namesExistingFile(options.output as string | undefined)) {
      throw new CliError(`${String(options.output)} already exists: pass --force to replace it, or -o another path`, ExitCode.usage);
    }
    const inTheWay = following && options.download !== false ? fileInTheWayOf(options.output as string | undefined) : undefined;
    if (inTheWay !== undefined) {
      throw new CliError(`-o ${String(options.output)} cannot be written: ${inTheWay} is a file, not a directory (no video was created)`, ExitCode.usage);
    }
    const startedAt = Date.now();
    // An idempotency key makes a create sent again (after a dropped connection) safe.
    const idempotencyKey = (options.idempotencyKey as string | undefined) ?? `cli-${randomUUID()}`;
    const task = await createIdempotently(context, client, out, body as CreateVideoRequest, idempotencyKey);
    if (following) {
      // Named before the minutes of waiting: whatever ends the command (a closed terminal, a job
      // killed), the video it made (and is billed for) is followed again rather than made again.
      if (!isTerminal(task)) out.note(`video ${task.id} created; if this command stops, follow it with: ${cliCommand()} wait ${task.id}${resultFlags(options as FollowOptions, 'wait')}`);
      context.exit(await follow(context, client, out, task, options as FollowOptions, startedAt));
      return;
    }
    out.data(task);
    printTask(out, task);
    if (!isTerminal(task)) out.note(`follow it: ${cliCommand()} wait ${task.id}`);
    context.exit(task.status === 'failed' || task.status === 'canceled' ? ExitCode.taskFailed : ExitCode.ok);
  });

  program
    .command('get')
    .description('show one task: status, provider, cost, outputs, attempts')
    .argument('<id>', 'task id (vid_…)', taskId)
    .addOption(new Option('--wait <seconds>', 'hold until the task ends or this many seconds pass (≤ 60)').argParser(positiveInteger(60)))
    .action(async (id: string, options: { wait?: number }, command: Command) => {
      const out = context.outputFor(command);
      const task = await context.clientFor(command).getVideo(id, { ...(options.wait ? { wait: options.wait } : {}), signal: context.signal });
      out.data(task);
      printTask(out, task);
    });

  waitFlags(
    program
      .command('wait')
      .description('follow a task live until it ends, then download the result')
      .argument('<id>', 'task id (vid_…)', taskId),
  ).action(async (id: string, options: FollowOptions, command: Command) => {
    refuseOutputWithoutDownload(options);
    if (options.download !== false) refuseVideoOnTerminal(options.output, context.stdout);
    const client = context.clientFor(command);
    const task = await client.getVideo(id, { signal: context.signal });
    const out = context.outputFor(command, options.download !== false && namesStdout(options.output));
    context.exit(await follow(context, client, out, task, options, Date.parse(task.created_at)));
  });

  program
    .command('download')
    .description("save a succeeded task's outputs")
    .argument('<id>', 'task id (vid_…)', taskId)
    .option('-o, --output <path>', OUTPUT_TARGETS)
    .option('--force', 'replace the file -o names if it exists')
    .action(async (id: string, options: { output?: string; force?: boolean }, command: Command) => {
      const client = context.clientFor(command);
      refuseVideoOnTerminal(options.output, context.stdout);
      const out = context.outputFor(command, namesStdout(options.output));
      const task = await client.getVideo(id, { signal: context.signal });
      if (task.status !== 'succeeded') {
        // Ended without a result: say why. Still running: say how to get it once it is done.
        throw isTerminal(task)
          ? new CliError(`video ${id} ${task.status}${task.error ? ` (${task.error.code}: ${task.error.message})` : ''}; there is nothing to download`, ExitCode.taskFailed)
          : new CliError(`video ${id} is still ${task.status}; to save it once it is done: ${cliCommand()} wait ${id}`, ExitCode.timeout);
      }
      const saved = await saveOutputs(client, task, options.output, context.progress, { signal: context.signal, overwrite: options.force === true, stdout: context.stdout, pause: (ms) => context.pause(ms) });
      out.data({ id, saved });
      for (const path of saved) out.line(path);
    });

  program
    .command('list')
    .description('your tasks, newest first')
    .addOption(new Option('--status <status>', 'only this status').choices(TASK_STATUSES))
    .addOption(new Option('--provider <id>', 'only tasks served by this provider').choices(PROVIDER_IDS))
    .addOption(new Option('--model <model>', 'only tasks of this model').choices(MODELS))
    .addOption(new Option('--limit <n>', 'tasks per page (≤ 100)').default(20).argParser(positiveInteger(100)))
    .option('--cursor <cursor>', 'the page after this cursor (printed under a full page)')
    .option('--all', 'follow every page (from --cursor on, when given)')
    .action(async (options: { status?: TaskStatus; provider?: ProviderId; model?: Model; limit: number; cursor?: string; all?: boolean }, command: Command) => {
      const client = context.clientFor(command);
      const out = context.outputFor(command);
      const query = {
        ...(options.status ? { status: options.status } : {}),
        ...(options.provider ? { provider: options.provider } : {}),
        ...(options.model ? { model: options.model } : {}),
        limit: options.limit,
        // From --cursor on, when given (the rest of a listing), with --all too.
        ...(options.cursor ? { cursor: options.cursor } : {}),
      };
      // A cursor is a place in the list, not the filters: a command going on from one needs them again.
      const same = [
        ...(options.status ? ['--status', options.status] : []),
        ...(options.provider ? ['--provider', options.provider] : []),
        ...(options.model ? ['--model', options.model] : []),
        ...(options.limit !== 20 ? ['--limit', String(options.limit)] : []),
      ];
      let page;
      if (options.all) {
        const data: Task[] = [];
        const listing = client.listAllVideos(query, { signal: context.signal });
        try {
          for await (const task of listing) data.push(task);
        } catch (error) {
          // Pages were read before this one: the rest is had from where it stopped, not from the start.
          if (listing.cursor !== undefined && listing.cursor !== options.cursor && !context.signal.aborted) {
            out.note(`list --all stopped at a page the gateway did not give; go on from it with: ${cliCommand()} list --all ${[...same, '--cursor', listing.cursor].join(' ')}`);
          }
          throw error;
        }
        page = { data, next_cursor: null };
      } else {
        page = await client.listVideos(query, { signal: context.signal });
      }
      out.data(page);
      if (page.data.length === 0) {
        out.line('no tasks');
        return;
      }
      out.table(page.data, [
        { header: 'ID', value: (t) => t.id },
        { header: 'STATUS', value: (t) => t.status },
        { header: 'MODEL', value: (t) => `${t.model} ${t.quality}` },
        { header: 'OPERATION', value: (t) => t.operation },
        { header: 'PROVIDER', value: (t) => t.provider ?? '—' },
        { header: 'COST', value: (t) => formatCostShort(t.cost), right: true },
        { header: 'CREATED', value: (t) => formatTime(t.created_at) },
      ]);
      if (page.next_cursor) {
        out.note(`more: ${cliCommand()} list ${[...same, '--cursor', page.next_cursor].join(' ')}`);
      }
      if (page.data.some((task) => task.cost.estimated)) out.legend('~ = estimated cost (the provider has not reported its charge)');
    });

  const quote = program
    .command('quote')
    .description('who would serve a request, in which order, for how much (creates nothing); exits 3 when no provider can serve it')
    .argument('[prompt]', 'the prompt (same as --prompt)', promptArgument());
  const quoteFlags = addRequestFlags(quote);
  quote.action(async (prompt: string | undefined, _options: unknown, command: Command) => {
    const body = requestFromFlags(quoteFlags, command.opts());
    if (prompt !== undefined) body.prompt = prompt;
    const out = context.outputFor(command);
    const answer = await context.clientFor(command).quote(body as CreateVideoRequest, { signal: context.signal });
    out.data(answer);
    const rows = [...answer.providers].sort((a, b) => (a.order ?? 99) - (b.order ?? 99));
    // A weighted order is one draw: a create draws its own, so it is no promise of the order tried.
    const drawn = quoteOrderDrawn(answer) ? ' (one random draw; each create draws its own)' : '';
    out.line(`strategy ${answer.strategy}; try order${drawn}: ${answer.order.length > 0 ? answer.order.join(' → ') : 'none'}`);
    out.table(rows, [
      { header: 'ORDER', value: (p) => (p.order === null ? '—' : String(p.order)), right: true },
      { header: 'PROVIDER', value: (p) => p.provider },
      { header: 'ELIGIBLE', value: (p) => (p.eligible ? 'yes' : 'no') },
      { header: 'CREDITS', value: (p) => (p.estimated_credits === null ? '—' : formatNumber(p.estimated_credits)), right: true },
      { header: 'COST', value: (p) => (p.estimated_cost === null ? '—' : formatMoney(p.estimated_cost, p.currency)), right: true },
    ]);
    // Why not, and warnings, under the table, one a line after its provider: a column of them made
    // each row one line of hundreds of characters, and a reason's own `;` ran into the next.
    const said = rows.filter((p) => p.reasons.length + p.warnings.length > 0);
    if (said.length > 0) {
      const width = Math.max(...said.map((p) => p.provider.length));
      out.line('');
      for (const p of said) {
        [...p.reasons, ...p.warnings].forEach((text, index) => out.line(`${(index === 0 ? p.provider : '').padEnd(width)}  ${text}`));
      }
    }
    if (answer.order.length === 0) {
      // What a create of this request would be answered (422, exit 3): a script checking first with
      // `quote` learns it from the status, not by reading the table.
      out.note('no provider can serve this request as it is');
      context.exit(ExitCode.refused);
    }
  });

  program
    .command('cancel')
    .description('cancel a task still waiting at the gateway (queued, no provider task id), or one its provider can cancel (`providers` names those that cannot); otherwise 409')
    .argument('<id>', 'task id (vid_…)', taskId)
    .action(async (id: string, _options: unknown, command: Command) => {
      const out = context.outputFor(command);
      const client = context.clientFor(command);
      for (let round = 0; ; round++) {
        try {
          const task = await client.cancelVideo(id, { signal: context.signal });
          out.data(task);
          printTask(out, task);
          return;
        } catch (error) {
          // Kept, not decided yet (the create on its way is unanswered): asked again after its
          // Retry-After, a few times; then said so, as something to try again later, not a request to fix.
          if (!cancelPending(error) || context.signal.aborted) throw error;
          const delay = Math.min(Math.max(error.retryAfterSeconds ?? 1, 1), CANCEL_PENDING_LONGEST_WAIT_S) * 1000;
          if (round >= CANCEL_PENDING_ROUNDS) {
            throw new CliError(`${error.message}\nrun \`cancel ${id}\` again, or \`get ${id}\`, in a few seconds`, ExitCode.unreachable);
          }
          out.note(`the cancel is kept while the create on its way is undecided; asking again in ${Math.round(delay / 1000)} s`);
          await context.pause(delay);
        }
      }
    });

  program
    .command('webhooks')
    .description("the deliveries of a task's events to its webhook_url: tries, last status, last error")
    .argument('<id>', 'task id (vid_…)', taskId)
    .action(async (id: string, _options: unknown, command: Command) => {
      const out = context.outputFor(command);
      const answer = await context.clientFor(command).webhookDeliveries(id, { signal: context.signal });
      out.data(answer);
      if (answer.data.length === 0) {
        out.note(`no webhook events for ${id} (it was created without webhook_url, or none is due yet)`);
        return;
      }
      out.table(answer.data, [
        { header: 'EVENT', value: (d) => d.type },
        { header: 'STATUS', value: (d) => d.status },
        { header: 'TRIES', value: (d) => String(d.attempts), right: true },
        { header: 'LAST', value: (d) => (d.last_status === null ? '—' : String(d.last_status)), right: true },
        { header: 'WHEN', value: (d) => formatTime(d.delivered_at ?? d.next_attempt_at ?? d.created_at) },
        { header: 'ERROR', value: (d) => d.last_error ?? '—' },
      ]);
    });
}
