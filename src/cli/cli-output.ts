/**
 * How the CLI writes: results on stdout (a table or text for people, the API's JSON with
 * `--json`), everything else (progress, hints, errors) on stderr, so `kling-gateway … --json | jq`
 * always gets clean JSON.
 */
import { detailRepeatsItsField, reasonsNotByField, type GatewayError } from '../../packages/client/src/index.js';

export interface Column<Row> {
  header: string;
  value: (row: Row) => string;
  /** Right-align (numbers). */
  right?: boolean;
}

/**
 * Control characters a terminal acts on: C0 but tab and newline (a carriage return redraws the
 * line), DEL, and C1 (U+009B is a CSI on its own); and the bidirectional marks, embeddings,
 * overrides and isolates, which make a terminal show the text after them in another order.
 */
const TERMINAL_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** What `--json` escapes beyond JSON's own (C0): DEL, C1 and the bidirectional controls, the same value. */
const JSON_ESCAPED = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text as printed for people, each terminal control shown as U+FFFD. What the CLI prints comes
 * partly from upstreams (error messages, status words): an escape sequence in one would run in
 * the reader's terminal (rewrite the screen, its title or the clipboard, or fake a line).
 */
export function printable(text: string): string {
  return text.replace(TERMINAL_CONTROLS, '\uFFFD');
}

export class CliOutput {
  constructor(
    readonly json: boolean,
    private readonly stdout: NodeJS.WritableStream,
    private readonly stderr: NodeJS.WritableStream,
  ) {}

  /** A result line for people (skipped with --json). */
  line(text = ''): void {
    if (!this.json) this.stdout.write(`${printable(text)}\n`);
  }

  /** The machine-readable result (only with --json). */
  data(value: unknown): void {
    if (!this.json) return;
    // JSON escapes C0 controls itself; DEL, C1 (a terminal acts on U+009B) and bidi controls are escaped too: the same value.
    const text = JSON.stringify(value, null, 2).replace(JSON_ESCAPED, (control) => `\\u${control.charCodeAt(0).toString(16).padStart(4, '0')}`);
    this.stdout.write(`${text}\n`);
  }

  /** Progress, hints and errors: stderr, in both modes. */
  note(text: string): void {
    this.stderr.write(`${printable(text)}\n`);
  }

  /** A line explaining a table's marks or columns (stderr): skipped with --json, which prints no table. */
  legend(text: string): void {
    if (!this.json) this.note(text);
  }

  /** Aligned columns, like `docker ps`: easy to read and to cut. */
  table<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): void {
    if (this.json) return;
    // Made printable before the widths are taken: a replaced control is one column wide.
    const cells = rows.map((row) => columns.map((column) => printable(column.value(row))));
    const widths = columns.map((column, index) => Math.max(column.header.length, ...cells.map((row) => row[index]!.length)));
    const render = (values: string[]) =>
      values
        .map((value, index) => (columns[index]!.right ? value.padStart(widths[index]!) : value.padEnd(widths[index]!)))
        .join('  ')
        .trimEnd();
    this.line(render(columns.map((column) => column.header)));
    for (const row of cells) this.line(render(row));
  }
}

/** `2026-11-22 12:00:05` in UTC: sortable, and the same for everyone reading a pasted log. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : `${date.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** A problem as the lines a person needs: title, detail, each invalid field, each provider's reasons. */
export function describeProblem(error: GatewayError): string[] {
  const { problem } = error;
  const providers = problem.providers ?? [];
  let detail = problem.detail ?? '';
  // The detail repeats each provider's reasons on one line (for clients that show only it); they
  // are printed below, one line each.
  const reasons = providers.length > 0 ? detail.indexOf(`${providers[0]!.provider}: `) : -1;
  if (reasons >= 0) detail = detail.slice(0, reasons).trim();
  if (detail.replace(/\.$/, '') === problem.title) detail = '';
  if (detailRepeatsItsField(problem, detail)) detail = '';
  const lines = [`error: ${problem.title} (${error.status})${detail ? `: ${detail}` : ''}`];
  for (const field of problem.errors ?? []) lines.push(`  ${field.path}: ${field.message}`);
  // A capability 422's reasons about one field are said under that field, not again by provider.
  for (const provider of reasonsNotByField(problem)) lines.push(`  ${provider.provider}: ${provider.reasons.join('; ')}`);
  // `Retry-After` (429, 503) is in a header, which a detail such as "send the request again after
  // Retry-After seconds" cannot show; said here unless the detail already names the wait.
  const wait = error.retryAfterSeconds;
  if (wait !== null && !new RegExp(`\\b${wait} ?s\\b`).test(problem.detail ?? '')) lines.push(`  retry after: ${wait} s`);
  if (error.requestId) lines.push(`  request id: ${error.requestId}`);
  return lines;
}
