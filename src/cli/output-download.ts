/**
 * Saving a task's outputs to disk with a byte progress bar. Written to `<file>.part` and renamed
 * when complete, so a file under the final name is always whole. A `-o` naming something that is
 * not a regular file (`/dev/null`, a named pipe, `/dev/stdout`) is written into as it is, never
 * replaced.
 */
import { once } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { createWriteStream, type WriteStream } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { GatewayClient, OutputDownload, Task } from '../../packages/client/src/index.js';
import { DownloadProgress, type ProgressStream } from './progress-display.js';
import { printable } from './cli-output.js';
import { CliError, ExitCode } from './exit-codes.js';
import { cliCommand } from './invocation.js';

const EXTENSIONS: Record<string, string> = { 'video/mp4': '.mp4', 'video/quicktime': '.mov', 'video/webm': '.webm', 'image/png': '.png', 'image/jpeg': '.jpg', 'image/webp': '.webp' };

function extensionFor(contentType: string | null, url: string, type: 'video' | 'image'): string {
  const known = contentType ? EXTENSIONS[contentType.split(';')[0]!.trim().toLowerCase()] : undefined;
  if (known) return known;
  const fromUrl = extname(new URL(url).pathname);
  if (/^\.[a-z0-9]{2,5}$/i.test(fromUrl)) return fromUrl.toLowerCase();
  return type === 'image' ? '.png' : '.mp4';
}

/**
 * What a task id must look like to name a file: the gateway's ids (`vid_` and base64url) and the
 * like, never a path. The id comes from the gateway's answer, and whatever answers at its URL
 * must not make the CLI write outside the place it was told (`../`, an absolute path, a
 * backslash), nor under a name holding a terminal's control characters.
 */
const FILE_NAME_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;

/**
 * Where output `index` of `count` goes: `--output` as a file (one output), a directory (existing,
 * or ending in /), or the current directory; named `<task id>[-<index>]<ext>`.
 */
function targetPath(output: string | undefined, task: Task, index: number, extension: string): string {
  const name = `${task.id}${task.outputs.length > 1 ? `-${index}` : ''}${extension}`;
  if (!output) return name;
  const isDirectory = output.endsWith('/') || (existsSync(output) && statSync(output).isDirectory());
  if (isDirectory) return join(output, name);
  if (task.outputs.length === 1) return output;
  const extensionOfOutput = extname(output);
  return `${output.slice(0, output.length - extensionOfOutput.length)}-${index}${extensionOfOutput || extension}`;
}

/**
 * Whether `path` is something that takes bytes but is no regular file: a device (`/dev/null`), a
 * named pipe, a socket, or the terminal (`/dev/stdout`, a link to one of those). Saving writes
 * into it; renaming a `.part` over it would replace it (for root, `/dev/null` with a file).
 */
function isSpecialFile(path: string): boolean {
  try {
    const stats = statSync(path);
    return !stats.isFile() && !stats.isDirectory();
  } catch {
    return false;
  }
}

/**
 * Whether `-o` asks for the bytes on stdout (`-`, or `/dev/stdout`, which cannot be opened when
 * stdout is a socket): written to the process's own stdout, and the lines that would go there
 * go to stderr.
 */
export function namesStdout(output: string | undefined): boolean {
  return output === '-' || output === '/dev/stdout';
}

/**
 * `-o -` with stdout on a terminal: a video's bytes would fill the screen with garbage (and may
 * hold escape sequences the terminal acts on). Refused before anything is made, as curl does.
 */
export function refuseVideoOnTerminal(output: string | undefined, stdout: { isTTY?: boolean }): void {
  if (namesStdout(output) && stdout.isTTY === true) {
    throw new CliError(`-o ${output} writes the video to stdout, which is a terminal: pipe it (| ffprobe -) or give a file name`, ExitCode.usage);
  }
}

/** Whether `-o` names an existing regular file, which saving would replace. */
export function namesExistingFile(output: string | undefined): boolean {
  return output !== undefined && !output.endsWith('/') && existsSync(output) && statSync(output).isFile();
}

/**
 * The file in the way of the directory `-o` would save into (`taken` of `-o taken/fox.mp4`, or of
 * `-o taken/videos/`), which no save can get past; undefined when there is none.
 */
export function fileInTheWayOf(output: string | undefined): string | undefined {
  if (output === undefined || output === '' || output === '-') return undefined;
  let directory = output.endsWith('/') ? output : existsSync(output) && statSync(output).isDirectory() ? output : dirname(output);
  for (;;) {
    if (existsSync(directory)) return statSync(directory).isDirectory() ? undefined : directory.replace(/\/+$/, '');
    const parent = dirname(directory);
    if (parent === directory) return undefined;
    directory = parent;
  }
}

/** How `saveOutputs` reaches the world besides the client: Ctrl-C, `--force`, stdout, the pause between tries. */
export interface SaveOptions {
  signal?: AbortSignal;
  /** `--force`: replace a file `-o` names. */
  overwrite?: boolean;
  /** Where `-o -` (or `/dev/stdout`) writes. */
  stdout?: NodeJS.WritableStream;
  /** Waits before a download that broke off is resumed: the CLI's own pause, which Ctrl-C cuts short (tests record it and return at once). */
  pause: (ms: number) => Promise<void>;
}

/**
 * How often a download that broke off is resumed from the byte it reached (by HTTP Range, as
 * `curl -C -` would be run by hand), and the pause before each: a connection cut in the middle of
 * a large video then costs seconds, not the whole file again or a failed command.
 */
export const RESUME_PAUSES_MS = [1_000, 2_000, 4_000] as const;

/**
 * Downloads every output of a succeeded task; returns the paths written. A file `-o` names that
 * already exists is replaced only with `overwrite` (`--force`); files named after the task are
 * that task's own output, written again.
 */
export async function saveOutputs(
  client: GatewayClient,
  task: Task,
  output: string | undefined,
  progressStream: ProgressStream,
  options: SaveOptions,
): Promise<string[]> {
  const { signal, overwrite = false, stdout } = options;
  if (!FILE_NAME_ID.test(task.id)) {
    throw new CliError(`the gateway answered with a task id that is not a file name (${printable(JSON.stringify(task.id))}); nothing was saved`, ExitCode.unexpected);
  }
  if (namesStdout(output) && stdout) return [await writeToStdout(client, task, output!, progressStream, stdout, options)];
  // A device or pipe takes one output as it is (a second would be made as a file beside it).
  if (output && task.outputs.length > 1 && isSpecialFile(output)) {
    throw new CliError(`video ${task.id} has ${task.outputs.length} outputs; -o ${output} takes one: save them with -o <directory>/`, ExitCode.usage);
  }
  const saved: string[] = [];
  for (const [index, described] of task.outputs.entries()) {
    let download = await client.downloadOutput(task.id, { index, ...(signal ? { signal } : {}) });
    let whole = download.size;
    // What the file begun is, for each resume to ask for the rest of that file only.
    let validator = download.validator;
    const path = targetPath(output, task, index, extensionFor(download.contentType, download.url, described.type));
    const intoItself = isSpecialFile(path);
    if (!overwrite && !intoItself && !basename(path).startsWith(task.id) && existsSync(path)) {
      await download.body.cancel().catch(() => undefined);
      throw new CliError(`${path} already exists: pass --force to replace it, or save elsewhere with: ${cliCommand()} download ${task.id} -o <path>`, ExitCode.usage);
    }
    const partial = intoItself ? path : `${path}.part`;
    let progress = new DownloadProgress(progressStream, basename(path), whole);
    let written = 0;
    for (let resumes = 0; ; resumes++) {
      let readError: Error | undefined;
      let writeError: Error | undefined;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          written += chunk.length;
          progress.add(chunk.length);
          callback(null, chunk);
        },
      });
      let file: WriteStream | undefined;
      try {
        // `-o new/dir/` or `-o new/dir/fox.mp4`: made as asked.
        await mkdir(dirname(partial), { recursive: true });
        // A resumed download adds to what the `.part` holds.
        file = createWriteStream(partial, { flags: written > 0 && !intoItself ? 'a' : 'w' });
        // What the file side failed with (a full disk: ENOSPC on write, which names no path), and
        // what the download did (a cut connection), which pipeline then hands the file too.
        file.on('error', (error) => (writeError ??= error));
        const source = Readable.fromWeb(download.body as NodeReadableStream<Uint8Array>);
        // The file's own failure comes back here too (the pipeline tears the source down with it).
        source.on('error', (error) => {
          if (error !== writeError) readError ??= error;
        });
        await pipeline(source, counter, file, signal ? { signal } : {});
        if (whole !== null && written !== whole) throw brokeOff(task.id, index, written, whole);
        if (!intoItself) await rename(partial, path);
        break;
      } catch (error) {
        progress.fail();
        let failure: unknown;
        if ((error instanceof CliError && error.exitCode !== ExitCode.unreachable) || signal?.aborted) {
          failure = error;
        } else if (error instanceof Error && error !== readError && ('path' in error || error === writeError)) {
          // A file this machine cannot write (or a disk that is full) is not the gateway's fault: exit
          // 9 would say "try again later", and trying generate again makes a second video.
          // Said of the path the user gave, not of the `.part` it is written to first (a failed
          // rename names both, and is left as it is).
          const renaming = (error as NodeJS.ErrnoException).syscall === 'rename';
          const said = intoItself || renaming ? error.message : error.message.split(`'${partial}'`).join(`'${path}'`);
          failure = new CliError(`cannot save output ${index} of video ${task.id}: ${said} (save it with: ${cliCommand()} download ${task.id} -o <path>)`, ExitCode.usage);
        } else {
          if (!intoItself && file) written = await bytesKept(file, partial);
          const broken = error instanceof CliError ? error : brokeOff(task.id, index, written, whole, error);
          // A device or pipe was closed under the cut: its reader saw an end, and more bytes would
          // not follow on from it.
          const rest = intoItself ? null : await resumed(client, task.id, index, written, whole, validator, resumes, broken, progressStream, options);
          if (rest) {
            if (rest.start < written) {
              // The file changed since the download began (If-Range answered with all of it): the
              // `.part` is written over from its first byte, never the new file's rest spliced on.
              progressStream.write(`output ${index} of video ${task.id} changed since the download began: starting over from byte 0\n`);
              written = 0;
              whole = rest.size;
              validator = rest.validator;
            }
            download = rest;
            progress = new DownloadProgress(progressStream, basename(path), whole, written);
            continue;
          }
          failure = broken;
        }
        if (!intoItself) await rm(partial, { force: true }).catch(() => undefined);
        throw failure;
      }
    }
    progress.finish(path);
    saved.push(path);
  }
  return saved;
}

/**
 * How many bytes the `.part` holds once its stream has closed: where a resumed download goes on.
 * Not the bytes counted through: a cut tears the file stream down with writes still queued in it.
 */
async function bytesKept(file: WriteStream, partial: string): Promise<number> {
  if (!file.closed) await once(file, 'close').catch(() => undefined);
  try {
    return (await stat(partial)).size;
  } catch {
    return 0;
  }
}

/**
 * After output `index` broke off at byte `written` (of `whole`, when known): the rest of it, asked
 * from that byte after a pause, or null when no try is left, the rest cannot be had (the gateway
 * or the host gone, a 4xx) or the file is no longer the one begun (another size). Each try says
 * on `progressStream` how far the download got and that it goes on.
 *
 * The request carries `validator` (the ETag or Last-Modified the download began with) as
 * If-Range: a file that changed since, even to one of the same size, comes whole, starting at
 * byte 0 (`start` below `written`), for the caller to start over with or give up on.
 */
async function resumed(
  client: GatewayClient,
  id: string,
  index: number,
  written: number,
  whole: number | null,
  validator: string | null,
  resumes: number,
  broken: CliError,
  progressStream: ProgressStream,
  options: SaveOptions,
): Promise<OutputDownload | null> {
  const pause = RESUME_PAUSES_MS[resumes];
  if (pause === undefined || options.signal?.aborted) return null;
  progressStream.write(`${broken.message}; resuming from byte ${written} (try ${resumes + 1} of ${RESUME_PAUSES_MS.length})\n`);
  await options.pause(pause);
  if (options.signal?.aborted) return null;
  let rest: OutputDownload;
  try {
    rest = await client.downloadOutput(id, { index, from: written, ...(validator !== null ? { ifRange: validator } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  } catch {
    return null;
  }
  // All of a changed file is no rest of the old one: its size is its own.
  if (rest.start === written && whole !== null && rest.total !== null && rest.total !== whole) {
    await rest.body.cancel().catch(() => undefined);
    progressStream.write(`output ${index} of video ${id} is now ${rest.total} bytes, not the ${whole} begun: not resumed\n`);
    return null;
  }
  return rest;
}

/** `-o -`: the task's one output, written to stdout (for `| ffprobe -`), resumed where it broke off. */
async function writeToStdout(client: GatewayClient, task: Task, output: string, progressStream: ProgressStream, stdout: NodeJS.WritableStream, options: SaveOptions): Promise<string> {
  const { signal } = options;
  if (task.outputs.length !== 1) {
    throw new CliError(`video ${task.id} has ${task.outputs.length} outputs; -o ${output} takes one: save them with -o <directory>/`, ExitCode.usage);
  }
  let download = await client.downloadOutput(task.id, signal ? { signal } : {});
  const whole = download.size;
  const validator = download.validator;
  let progress = new DownloadProgress(progressStream, 'stdout', whole);
  let written = 0;
  // What stdout failed with (EPIPE: its reader quit). Listening here also tells the `kling-gateway`
  // entry point, which ends the process quietly when a reader of text goes away, that this
  // command says it itself: a video cut short must not end as one saved.
  let closed: Error | undefined;
  const onError = (error: Error) => (closed ??= error);
  stdout.on('error', onError);
  try {
    for (let resumes = 0; ; resumes++) {
      try {
        await pipeline(
          Readable.fromWeb(download.body as NodeReadableStream<Uint8Array>),
          async (chunks: AsyncIterable<Buffer>) => {
            // stdout is not ended: it is the process's own. Each write's callback says whether the
            // bytes went out; the last one is awaited, so a reader that quits at the end is seen too.
            let last: Promise<void> = Promise.resolve();
            for await (const chunk of chunks) {
              if (closed) throw closed;
              written += chunk.length;
              progress.add(chunk.length);
              let accepted = true;
              last = new Promise<void>((resolve) => {
                accepted = stdout.write(chunk, (error) => {
                  if (error) closed ??= error;
                  resolve();
                });
              });
              if (!accepted) await Promise.race([once(stdout, 'drain'), last]);
            }
            await last;
            if (closed) throw closed;
          },
          signal ? { signal } : {},
        );
        if (whole !== null && written !== whole) throw brokeOff(task.id, 0, written, whole);
        break;
      } catch (error) {
        progress.fail();
        if ((error instanceof CliError && error.exitCode !== ExitCode.unreachable) || signal?.aborted) throw error;
        if (closed) throw stdoutFailed(task.id, closed);
        const broken = error instanceof CliError ? error : brokeOff(task.id, 0, written, whole, error);
        // What went out stays out: the rest follows on from the byte reached.
        const rest = await resumed(client, task.id, 0, written, whole, validator, resumes, broken, progressStream, options);
        if (!rest) throw broken;
        if (rest.start < written) {
          // What went out is of the old file, and cannot be taken back.
          await rest.body.cancel().catch(() => undefined);
          progressStream.write(`output 0 of video ${task.id} changed since the download began: not resumed\n`);
          throw broken;
        }
        download = rest;
        progress = new DownloadProgress(progressStream, 'stdout', whole, written);
      }
    }
  } finally {
    stdout.off('error', onError);
  }
  const named = output === '-' ? 'stdout' : output;
  progress.finish(named);
  return named;
}

/**
 * stdout failing under a video: its reader quit (a closed pipe: exit 141, as a process SIGPIPE
 * ends), or it cannot be written (a full disk: exit 2, as `-o` a file on one).
 */
function stdoutFailed(id: string, error: Error): CliError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED') {
    return new CliError(`stdout closed before video ${id} was written whole (its reader quit); save it with: ${cliCommand()} download ${id} -o <file>`, ExitCode.outputClosed);
  }
  return new CliError(`cannot write video ${id} to stdout: ${error.message} (save it with: ${cliCommand()} download ${id} -o <path>)`, ExitCode.usage);
}

/**
 * A download that ended before its last byte (the connection cut, the host gone): how far it got,
 * and why in the words under fetch's own ("terminated" says little, its cause "other side
 * closed" more). Exit 9: trying again can get it.
 */
function brokeOff(id: string, index: number, written: number, size: number | null, error?: unknown): CliError {
  const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
  const why = error === undefined ? '' : `: ${error instanceof Error ? error.message : String(error)}${cause}`;
  return new CliError(`download of output ${index} of video ${id} broke off after ${written}${size !== null ? ` of ${size}` : ''} bytes${why}`, ExitCode.unreachable);
}
