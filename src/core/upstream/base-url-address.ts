/**
 * Where a base URL reaches, written one way: what tells two accounts of a provider apart by
 * address (the router: an address that is down is so for every account reached there; the
 * configuration: one key at one address is one upstream account).
 */

/**
 * A base URL written one way: scheme and host in lower case, a default port left out, no user
 * part (a credential, not a place), no trailing slash (the client trims it: `…/` and `…` reach
 * the same paths). One that does not parse is kept as written.
 */
export function addressOf(baseUrl: string): string {
  const trimmed = baseUrl.replace(/\/+$/, '');
  if (!URL.canParse(trimmed)) return trimmed;
  const url = new URL(trimmed);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}${url.search}`;
}
