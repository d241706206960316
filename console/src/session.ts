/**
 * The signed-in gateway key. Kept in sessionStorage only: it lasts while the tab is open, is not
 * shared with other tabs, and is gone when the tab closes. Never in localStorage or a cookie.
 */
import { GatewayClient } from '../../packages/client/src/index.js';

const STORAGE_KEY = 'kling-gateway.console.key';

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function storeKey(key: string): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // Storage refused (private mode): the key lives in memory until the page is reloaded.
  }
}

export function forgetKey(): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
    // What was typed in New video belongs to who signed in: it goes with the key.
    sessionStorage.removeItem(DRAFT_KEY);
  } catch {
    // Nothing stored.
  }
}

const DRAFT_KEY = 'kling-gateway.console.new-video';

/**
 * New video's form as last left in this tab, with the Idempotency-Key of a create sent from it,
 * so leaving the page (a link, Back, a reload) loses neither what was typed nor the key a create
 * whose answer was lost must be sent again with. Same storage and lifetime as the key.
 */
export function storedDraft(): unknown {
  try {
    const text = sessionStorage.getItem(DRAFT_KEY);
    return text === null ? null : (JSON.parse(text) as unknown);
  } catch {
    return null;
  }
}

export function storeDraft(draft: unknown): void {
  try {
    sessionStorage.setItem(DRAFT_KEY, JSON.stringify(draft));
  } catch {
    // Storage refused or full: the form is kept while the page stays open.
  }
}

export function forgetDraft(): void {
  try {
    sessionStorage.removeItem(DRAFT_KEY);
  } catch {
    // Nothing stored.
  }
}

/**
 * The gateway's base URL as seen from the console: the console lives at `<base>/console/`, so a
 * gateway behind a path prefix (`/video-gateway/console/`) is reached at that prefix.
 */
export function gatewayBaseUrl(location: Location = window.location): string {
  const prefix = location.pathname.replace(/\/console(\/.*)?$/, '');
  return `${location.origin}${prefix}`;
}

/**
 * A client with `key`. `onRefused` is called whenever the gateway answers 401 (the key was revoked
 * or the gateway restarted without it), whichever page asked: a quote, a create, a cancel, a read.
 */
export function clientFor(key: string, onRefused?: () => void): GatewayClient {
  const watching: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (response.status === 401) onRefused?.();
    return response;
  };
  return new GatewayClient({ baseUrl: gatewayBaseUrl(), apiKey: key, ...(onRefused ? { fetch: watching } : {}) });
}
