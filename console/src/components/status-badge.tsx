/**
 * A task's status as a badge: a word and a shape, never color alone.
 */
import type { TaskStatus } from '../../../packages/client/src/index.js';

const MARKS: Record<TaskStatus, string> = {
  queued: '◷',
  processing: '◔',
  succeeded: '✓',
  failed: '✕',
  canceled: '⊘',
};

export function StatusBadge({ status }: { status: TaskStatus }) {
  return (
    <span class={`badge status-${status}`}>
      <span aria-hidden="true">{MARKS[status] ?? '•'} </span>
      {status}
    </span>
  );
}

/** A provider circuit as a badge: closed is healthy, open is skipped, half-open is probing. */
export function CircuitBadge({ circuit }: { circuit: string }) {
  const label = circuit.replace('_', '-');
  return <span class={`badge circuit-${circuit}`}>{label}</span>;
}
