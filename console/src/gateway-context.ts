/**
 * The signed-in session, given to every page through Preact context.
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { GatewayClient } from '../../packages/client/src/index.js';

export interface ConsoleSession {
  client: GatewayClient;
  /** Forgets the key; `reason` is shown on the sign-in page. */
  signOut(reason?: string): void;
  /** Reads out a short message to screen readers (a polite live region). */
  announce(message: string): void;
}

export const SessionContext = createContext<ConsoleSession | null>(null);

export function useSession(): ConsoleSession {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in console');
  return session;
}
