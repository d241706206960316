/**
 * What `generate --wait` shows while it waits and downloads, on stderr. On a terminal: one live
 * line (status, provider, elapsed time, cost) redrawn in place, then a byte progress bar
 * (cli-progress). Elsewhere (a pipe, CI logs, a terminal with `TERM=dumb`): one plain line per
 * change, no control characters.
 */
import cliProgress from 'cli-progress';
import { formatBytes, formatCost, formatElapsed, type Task } from '../../packages/client/src/index.js';
import { printable } from './cli-output.js';

export interface ProgressStream {
  write(text: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

/**
 * Where progress goes: `stream` itself, unless it is a terminal that says it cannot move its
 * cursor (`TERM=dumb`: Emacs' shell, some CI consoles), which is then written to as a pipe is
 * (plain lines, no control codes).
 */
export function progressStreamFor(stream: ProgressStream, env: NodeJS.ProcessEnv): ProgressStream {
  if (stream.isTTY !== true || env.TERM !== 'dumb') return stream;
  return { write: (text) => stream.write(text), isTTY: false };
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * The words of the status line, shared by both renderings. A finished task shows the time it took
 * (as `get` does), not the time since it was made: `wait` on a task done an hour ago would say 1:00:05.
 */
export function describeProgress(task: Task, elapsedMs: number): string {
  const took = task.completed_at && task.created_at ? Date.parse(task.completed_at) - Date.parse(task.created_at) : Number.NaN;
  const parts = [task.status, task.provider ?? 'no provider yet', formatElapsed(Number.isFinite(took) ? took : elapsedMs), formatCost(task.cost)];
  if (task.status === 'failed' && task.error) parts.push(`${task.error.code}: ${task.error.message}`);
  // One line, redrawn in place: an upstream's newline would break it, its escape sequences run.
  return printable(parts.join(' · ').replace(/\n/g, ' '));
}

/** The live status line while a task runs. */
export class TaskProgressLine {
  private task: Task | undefined;
  private frame = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastPlain = '';

  constructor(
    private readonly stream: ProgressStream,
    private readonly startedAt: number = Date.now(),
    private readonly now: () => number = Date.now,
  ) {}

  private get live(): boolean {
    return this.stream.isTTY === true;
  }

  update(task: Task): void {
    this.task = task;
    if (this.live) {
      this.render();
      this.timer ??= setInterval(() => this.render(), 250);
      this.timer.unref?.();
      return;
    }
    // Plain output: a line when the status, provider or cost changes (not every tick).
    const key = `${task.status}|${task.provider}|${task.cost.credits}|${task.cost.estimated}`;
    if (key === this.lastPlain) return;
    this.lastPlain = key;
    this.stream.write(`${describeProgress(task, this.now() - this.startedAt)}\n`);
  }

  private render(): void {
    if (!this.task) return;
    const text = `${SPINNER[this.frame++ % SPINNER.length]} ${describeProgress(this.task, this.now() - this.startedAt)}`;
    // A terminal that cannot tell its width says 0 (script, serial consoles): taken as unknown.
    const width = Math.max(20, (this.stream.columns || 100) - 1);
    // \r and erase-line: the line is redrawn in place.
    this.stream.write(`\r\x1b[2K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
  }

  /** Clears the live line, so that a note written next starts at the left edge (redrawn after it). */
  clear(): void {
    if (this.live && this.task) this.stream.write('\r\x1b[2K');
  }

  /** Stops redrawing and leaves the final state on its own line. */
  finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.live && this.task) {
      const mark = this.task.status === 'succeeded' ? '✔' : '✖';
      this.stream.write(`\r\x1b[2K${mark} ${describeProgress(this.task, this.now() - this.startedAt)}\n`);
    }
  }
}

/** A byte progress bar for one download (a plain line at the end when not on a terminal). */
export class DownloadProgress {
  private readonly bar: cliProgress.SingleBar | undefined;
  private readonly started = Date.now();
  private readonly before: number;

  constructor(
    private readonly stream: ProgressStream,
    label: string,
    private readonly total: number | null,
    /** Bytes already had (a download resumed where it broke off): counted, not in the speed. */
    private received = 0,
  ) {
    this.before = received;
    if (stream.isTTY !== true) return;
    this.bar = new cliProgress.SingleBar(
      {
        stream: stream as unknown as NodeJS.WritableStream,
        format: total
          ? `${label} [{bar}] {percentage}% | {done} / {size} | {speed}`
          : `${label} {done} | {speed}`,
        barCompleteChar: '█',
        barIncompleteChar: '░',
        hideCursor: true,
        clearOnComplete: false,
        fps: 10,
        formatValue: (value, _options, type) => (type === 'percentage' ? String(value).padStart(3) : String(value)),
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total ?? 0, total ? Math.min(received, total) : received, { done: formatBytes(received), size: total ? formatBytes(total) : '?', speed: '' });
  }

  add(bytes: number): void {
    this.received += bytes;
    const seconds = Math.max(0.001, (Date.now() - this.started) / 1000);
    this.bar?.update(this.total ? Math.min(this.received, this.total) : this.received, {
      done: formatBytes(this.received),
      speed: `${formatBytes((this.received - this.before) / seconds)}/s`,
    });
  }

  finish(savedTo: string): void {
    this.bar?.stop();
    this.stream.write(`saved ${savedTo} (${formatBytes(this.received)})\n`);
  }

  fail(): void {
    this.bar?.stop();
  }
}
