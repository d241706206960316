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
