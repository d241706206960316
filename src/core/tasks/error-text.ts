/**
 * What an error that was thrown says, for a task's or a delivery's message: never empty. A host
 * name with several addresses that all refused the connection ends in node's `AggregateError`,
 * whose own message is empty (the reasons are its `errors`, one per address tried).
 */
export function errorText(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(errorText).join('; ');
  if (error instanceof Error) return error.message || (error as NodeJS.ErrnoException).code || error.name;
  return String(error) || 'failed without a reason';
}
