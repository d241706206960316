/**
 * News between the replicas sharing one store, so that one replica's change reaches another's
 * waiting clients, queued tasks and cached provider standing at once instead of at its next
 * re-read. Over PostgreSQL `LISTEN/NOTIFY` (`store/notification-channel.ts`); a store only one
 * process uses (SQLite) has no other replica to tell (`LOCAL_ONLY_FEED`). Messages can be lost
 * (a dropped connection): whoever follows something also re-reads it after `onResync` and now
 * and then.
 */

export type ReplicaMessage =
  /** A task changed (its new version and phase). */
  | { kind: 'task'; id: string; version: number; phase: string }
  /** An upstream account's circuit or cool-down changed. */
  | { kind: 'account'; key: string };

export interface ReplicaFeed {
  /** Whether other replicas may be listening (false: publishing is pointless). */
  readonly connected: boolean;
  /** Tells every other replica. Never throws: a lost message is caught up by re-reads. */
  publish(message: ReplicaMessage): void;
  /** Calls `listener` with every message from another replica. */
  subscribe(listener: (message: ReplicaMessage) => void): () => void;
  /** Calls `listener` when messages may have been missed (after a reconnect). */
  onResync(listener: () => void): () => void;
}

/** For a store no other process shares. */
export const LOCAL_ONLY_FEED: ReplicaFeed = {
  connected: false,
  publish: () => undefined,
  subscribe: () => () => undefined,
  onResync: () => () => undefined,
};

/** A transport of text between replicas (a PostgreSQL notification channel). */
export interface TextChannel {
  readonly listening: boolean;
  publish(text: string): Promise<void>;
  subscribe(listener: (text: string) => void): () => void;
  onReconnect(listener: () => void): () => void;
}

/**
 * A feed over a text channel: messages as JSON stamped with this replica's id, so a replica
 * ignores its own (it has already acted on them).
 */
export function replicaFeedOver(channel: TextChannel, origin: string, onError: (error: unknown) => void): ReplicaFeed {
  return {
    get connected() {
      return channel.listening;
    },
    publish(message) {
      channel.publish(JSON.stringify({ ...message, from: origin })).catch(onError);
    },
    subscribe(listener) {
      return channel.subscribe((text) => {
        let parsed: (ReplicaMessage & { from?: unknown }) | undefined;
        try {
          parsed = JSON.parse(text) as ReplicaMessage & { from?: unknown };
        } catch {
          return;
        }
        if (!parsed || parsed.from === origin) return;
        if (parsed.kind === 'task' && typeof parsed.id === 'string' && typeof parsed.version === 'number') listener(parsed);
        else if (parsed.kind === 'account' && typeof parsed.key === 'string') listener(parsed);
      });
    },
    onResync: (listener) => channel.onReconnect(listener),
  };
}
