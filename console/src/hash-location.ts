/**
 * Hash routes that carry their own query: `#/?status=failed&provider=freepik`. The page is the
 * part before `?` (what routes match), the query is the page's state (what `useSearch` reads), so
 * a reload, a shared link and the Back button all bring back the same filtered view. wouter's own
 * hash hook puts a query in the page's real URL instead, where it would stay on every other page.
 */
import { useEffect, useState } from 'preact/hooks';

const HASH_PREFIX = /^#?\/?/;

function currentHash(): string {
  return '/' + location.hash.replace(HASH_PREFIX, '');
}

function pathOf(hash: string): string {
  const query = hash.indexOf('?');
  return query === -1 ? hash : hash.slice(0, query);
}

function searchOf(hash: string): string {
  const query = hash.indexOf('?');
  return query === -1 ? '' : hash.slice(query + 1);
}

function useHash(): string {
  const [hash, setHash] = useState(currentHash);
  useEffect(() => {
    const changed = () => setHash(currentHash());
    addEventListener('hashchange', changed);
    // A change between the first render and this effect is not missed.
    changed();
    return () => removeEventListener('hashchange', changed);
  }, []);
  return hash;
}

/** Whether the page shown now was reached through the browser's history (Back, Forward), not a link. */
let cameThroughHistory = false;
addEventListener('popstate', () => {
  cameThroughHistory = true;
});

/** True when the last move was Back or Forward (or an address typed), false after a link or `navigate`. */
export function cameBackThroughHistory(): boolean {
  return cameThroughHistory;
}

/** Goes to `to` (`/tasks/x`, `/?status=failed`): a new history entry, or this one when `replace`. */
export function navigate(to: string, { replace = false }: { replace?: boolean } = {}): void {
  const oldURL = location.href;
  const url = new URL(oldURL);
  url.hash = '/' + to.replace(HASH_PREFIX, '');
  if (url.href === oldURL) return;
  cameThroughHistory = false;
  history[replace ? 'replaceState' : 'pushState'](null, '', url.href);
  dispatchEvent(new HashChangeEvent('hashchange', { oldURL, newURL: url.href }));
}

/** wouter's location hook: the page, and how to go elsewhere. */
export function useHashPageLocation(): [string, typeof navigate] {
  return [pathOf(useHash()), navigate];
}
useHashPageLocation.hrefs = (href: string) => '#' + href;

/** wouter's search hook: the page's query, without `?`. */
export function useHashSearch(): string {
  return searchOf(useHash());
}
