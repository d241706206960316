/**
 * Why the gateway could not listen at `server.host`, naming the field: node's own words
 * (`getaddrinfo ENOTFOUND …`) name neither the setting nor what to do.
 */

/** Codes of a host name that resolves to no address (getaddrinfo's). */
const NO_ADDRESS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_NODATA', 'EAI_FAIL']);
const WHAT_TO_DO = 'set HOST to a name or address of this machine (0.0.0.0: every one)';

/** `error` (from listening on `host`) as one naming `server.host` when the host is its cause; else `error` itself. */
export function listenFailure(error: unknown, host: string): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const words = error instanceof Error ? error.message : String(error);
  if (code !== undefined && NO_ADDRESS.has(code)) return new Error(`server.host "${host}" has no address (${words}): ${WHAT_TO_DO}`, { cause: error });
  if (code === 'EADDRNOTAVAIL') return new Error(`server.host "${host}" is not an address of this machine (${words}): ${WHAT_TO_DO}`, { cause: error });
  return error;
}
